using MLNetFreqFusion;

namespace Microsoft.ML;

/// <summary>Segmentation transforms on <c>mlContext.Transforms</c>.</summary>
public static class SegmentationTransformsCatalog
{
    /// <summary>
    /// Reads segmentation masks (index PNGs, palette PNGs, 16-bit PNGs, colour-coded masks with a colour map) from
    /// the paths in a text column into a <see cref="SegmentationMask"/> column, keeping class indices exact.
    /// </summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="outputColumnName">Name of the mask column to add (type <see cref="SegmentationMaskDataViewType"/>).</param>
    /// <param name="imageFolder">Folder that relative paths are resolved against; null to use the paths as they are.</param>
    /// <param name="inputColumnName">Text column holding the mask paths; defaults to <paramref name="outputColumnName"/>.</param>
    /// <param name="options">How pixels encode classes: format, colour map, value map, ReduceZeroLabel. Default: <see cref="MaskFormat.Auto"/>.</param>
    /// <param name="classNames">The names of the classes, index by index (background first when it is class 0), carried
    /// on the output column as the <see cref="SegmentationAnnotations.ClassNames"/> annotation, as ML.NET's key columns
    /// carry their values. The trainer takes the model's class names and number of classes from it, and
    /// <c>Evaluate</c> its per-class names, unless they are given there. Default null: no names.</param>
    /// <returns>An estimator that needs no training.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="classNames"/> has fewer than 2 names, a null or empty
    /// name, or a name at the ignore index.</exception>
    public static SegmentationMaskLoadingEstimator LoadSegmentationMasks(this TransformsCatalog catalog, string outputColumnName,
        string? imageFolder, string? inputColumnName = null, MaskDecodeOptions? options = null, IReadOnlyList<string>? classNames = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentException.ThrowIfNullOrEmpty(outputColumnName);
        var env = Microsoft.ML.Data.CatalogUtils.GetEnvironment(catalog);
        var transformer = new SegmentationMaskLoadingTransformer(env, imageFolder, options ?? new MaskDecodeOptions(), classNames,
            (outputColumnName, inputColumnName ?? outputColumnName));
        return new SegmentationMaskLoadingEstimator(env, transformer);
    }
}
