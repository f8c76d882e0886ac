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
    /// <returns>An estimator that needs no training.</returns>
    public static SegmentationMaskLoadingEstimator LoadSegmentationMasks(this TransformsCatalog catalog, string outputColumnName,
        string? imageFolder, string? inputColumnName = null, MaskDecodeOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentException.ThrowIfNullOrEmpty(outputColumnName);
        var env = Microsoft.ML.Data.CatalogUtils.GetEnvironment(catalog);
        var transformer = new SegmentationMaskLoadingTransformer(env, imageFolder, options ?? new MaskDecodeOptions(),
            (outputColumnName, inputColumnName ?? outputColumnName));
        return new SegmentationMaskLoadingEstimator(env, transformer);
    }
}
