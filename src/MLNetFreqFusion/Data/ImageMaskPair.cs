namespace MLNetFreqFusion;

/// <summary>
/// One row of a segmentation data set: an image file and its mask file. The loaders in
/// <see cref="Microsoft.ML.SegmentationDataCatalog"/> produce these as the text columns <c>ImagePath</c> and <c>MaskPath</c>.
/// </summary>
public sealed class ImageMaskPair
{
    /// <summary>Full path of the image file.</summary>
    public string ImagePath { get; set; } = "";

    /// <summary>Full path of the mask file (class indices, see <see cref="SegmentationMask.FromFile"/>).</summary>
    public string MaskPath { get; set; } = "";
}
