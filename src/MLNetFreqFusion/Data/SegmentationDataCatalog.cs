using MLNetFreqFusion;
using MLNetFreqFusion.Data;

namespace Microsoft.ML;

/// <summary>
/// <c>mlContext.Data</c> loaders for semantic-segmentation data sets. Each returns an <see cref="IDataView"/> with two
/// text columns, <c>ImagePath</c> and <c>MaskPath</c> (<see cref="ImageMaskPair"/>), one row per pair, in a stable order.
/// </summary>
/// <remarks>
/// Every path in the result is <b>absolute</b>, whatever the layout, so the columns can go straight to
/// <c>LoadImages</c> and <c>LoadSegmentationMasks</c> with no <c>imageFolder</c> (an <c>imageFolder</c> does no harm:
/// absolute paths ignore it). Files without their partner are reported in one exception that lists them; nothing is
/// dropped silently.
/// </remarks>
public static class SegmentationDataCatalog
{
    /// <summary>
    /// Loads pairs from a CSV or TSV file. With a header, the columns named <c>ImagePath</c> and <c>MaskPath</c> are used
    /// (otherwise the first two); relative paths are relative to the text file's folder.
    /// </summary>
    /// <param name="catalog">The data catalog (<c>mlContext.Data</c>).</param>
    /// <param name="path">The text file, e.g. digits-seg's <c>train.csv</c>.</param>
    /// <param name="separator">The column separator: ',' for CSV, '\t' for TSV.</param>
    /// <param name="hasHeader">Whether the first line holds column names.</param>
    /// <returns>A data view with the text columns <c>ImagePath</c> and <c>MaskPath</c>, holding absolute paths.</returns>
    /// <exception cref="FileNotFoundException">The file, or files it names, do not exist (all missing files are listed with their line).</exception>
    public static IDataView LoadSegmentationPairsFromTextFile(this DataOperationsCatalog catalog, string path, char separator = ',', bool hasHeader = true)
        => Load(catalog, DatasetLayouts.FromTextFile(path, separator, hasHeader));

    /// <summary>
    /// Loads pairs from an image folder and a mask folder (both searched recursively) whose files share relative folder
    /// and name, with any extensions (e.g. <c>a.jpg</c> with <c>a.png</c>). Optional name suffixes are removed before
    /// pairing, e.g. Cityscapes' <c>"_leftImg8bit"</c> and <c>"_gtFine_labelIds"</c>; files without the suffix are not part
    /// of the data set.
    /// </summary>
    /// <param name="catalog">The data catalog (<c>mlContext.Data</c>).</param>
    /// <param name="imageFolder">The folder of images.</param>
    /// <param name="maskFolder">The folder of masks.</param>
    /// <param name="imageNameSuffix">End of every image file name (before the extension) to remove; "" for none.</param>
    /// <param name="maskNameSuffix">End of every mask file name (before the extension) to remove; "" for none.</param>
    /// <returns>A data view with the text columns <c>ImagePath</c> and <c>MaskPath</c>, holding absolute paths.</returns>
    /// <exception cref="InvalidDataException">Images without masks or masks without images; the message lists them.</exception>
    public static IDataView LoadSegmentationPairsFromFolders(this DataOperationsCatalog catalog, string imageFolder, string maskFolder,
        string imageNameSuffix = "", string maskNameSuffix = "")
        => Load(catalog, DatasetLayouts.FromFolders(imageFolder, maskFolder, imageNameSuffix, maskNameSuffix));

    /// <summary>
    /// Loads a PASCAL VOC segmentation split: ids from <c>ImageSets/Segmentation/{split}.txt</c>, images from
    /// <c>JPEGImages/{id}.jpg</c>, masks from <c>SegmentationClass/{id}.png</c>. The masks are palette PNGs, which
    /// <c>LoadSegmentationMasks</c> reads as their palette indices (21 classes, 255 = boundary, ignored).
    /// </summary>
    /// <param name="catalog">The data catalog (<c>mlContext.Data</c>).</param>
    /// <param name="root">The VOC2012 folder (inside VOCdevkit).</param>
    /// <param name="split">The split list name: "train", "val" or "trainval".</param>
    /// <returns>A data view with the text columns <c>ImagePath</c> and <c>MaskPath</c>, holding absolute paths.</returns>
    public static IDataView LoadSegmentationPairsFromPascalVoc(this DataOperationsCatalog catalog, string root, string split = "train")
        => Load(catalog, DatasetLayouts.FromPascalVoc(root, split));

    /// <summary>
    /// Loads an ADE20K (SceneParsing, ADEChallengeData2016) split: <c>images/{split}/*.jpg</c> paired with
    /// <c>annotations/{split}/*.png</c>. ADE20K's masks use 0 for "other" and 1..150 for the classes, so read them with
    /// <see cref="MaskDecodeOptions.ReduceZeroLabel"/> = true (0 becomes the ignore index, classes become 0..149).
    /// </summary>
    /// <param name="catalog">The data catalog (<c>mlContext.Data</c>).</param>
    /// <param name="root">The ADEChallengeData2016 folder.</param>
    /// <param name="split">"training" or "validation" ("train" and "val" are accepted).</param>
    /// <returns>A data view with the text columns <c>ImagePath</c> and <c>MaskPath</c>, holding absolute paths.</returns>
    public static IDataView LoadSegmentationPairsFromAde20k(this DataOperationsCatalog catalog, string root, string split = "training")
        => Load(catalog, DatasetLayouts.FromAde20k(root, split));

    static IDataView Load(DataOperationsCatalog catalog, List<ImageMaskPair> pairs)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return catalog.LoadFromEnumerable(pairs);
    }
}
