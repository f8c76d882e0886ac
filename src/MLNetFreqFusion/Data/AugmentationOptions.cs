namespace MLNetFreqFusion;

/// <summary>
/// Training-time augmentation, mmsegmentation's standard pipeline: random resize by a ratio of a base scale (aspect ratio
/// kept), random crop with <see cref="CatMaxRatio"/>, horizontal flip, photometric distortion, then padding to the crop
/// size. Images are resized bilinearly, masks always by nearest neighbour, so no class value is ever invented.
/// </summary>
public sealed class AugmentationOptions
{
    /// <summary>Smallest random scale ratio. Default 0.5.</summary>
    public float MinScaleRatio = 0.5f;

    /// <summary>Largest random scale ratio. Default 2.0.</summary>
    public float MaxScaleRatio = 2.0f;

    /// <summary>
    /// The scale the ratio multiplies, as (long edge, short edge), like mmsegmentation's <c>img_scale</c> (ADE20K uses
    /// (2048, 512)): the image is resized, keeping its aspect ratio, to the largest size whose edges fit both. Null (the
    /// default) multiplies the image's own size by the ratio.
    /// </summary>
    public (int LongEdge, int ShortEdge)? BaseScale;

    /// <summary>Height of the training crop in pixels; smaller images are padded. The trainer sets it and <see cref="CropWidth"/> from its <c>CropSize</c> (or from the training images' size when that is null).</summary>
    public int CropHeight = 512;

    /// <summary>Width of the training crop in pixels; smaller images are padded. Default 512.</summary>
    public int CropWidth = 512;

    /// <summary>
    /// A crop in which one class covers this fraction of the labelled (non-ignored) pixels or more, or that holds a single
    /// class, is drawn again, up to 10 times. 1 disables the check. Default 0.75.
    /// </summary>
    public float CatMaxRatio = 0.75f;

    /// <summary>Probability of a horizontal flip. Default 0.5.</summary>
    public float FlipProbability = 0.5f;

    /// <summary>
    /// Random brightness (±32), contrast (×0.5–1.5), saturation (×0.5–1.5) and hue (±36°) changes, each applied with
    /// probability 0.5, as mmsegmentation's <c>PhotoMetricDistortion</c>. Default true.
    /// </summary>
    public bool PhotometricDistortion = true;

    /// <summary>
    /// No resizing, no crop redraws, no photometric distortion: only horizontal flips with the given probability (0
    /// for none) and the crop — <see cref="TrainingRecipe.ShortRun"/>'s augmentation.
    /// </summary>
    /// <param name="flipProbability">Probability of a horizontal flip, in [0, 1]; 0 for data whose mirror images differ (text, digits).</param>
    public static AugmentationOptions FlipsOnly(float flipProbability) => new()
    {
        MinScaleRatio = 1, MaxScaleRatio = 1, CatMaxRatio = 1, PhotometricDistortion = false, FlipProbability = flipProbability,
    };

    /// <summary>A copy with the trainer's crop: its CropSize, or the size it chose from the images.</summary>
    internal AugmentationOptions WithCrop(int height, int width)
    {
        var copy = (AugmentationOptions)MemberwiseClone();
        copy.CropHeight = height;
        copy.CropWidth = width;
        return copy;
    }

    internal void Validate()
    {
        if (!(MinScaleRatio > 0) || !(MaxScaleRatio >= MinScaleRatio) || float.IsInfinity(MaxScaleRatio))
            throw new ArgumentOutOfRangeException(nameof(MinScaleRatio), $"The scale ratio range must satisfy 0 < MinScaleRatio <= MaxScaleRatio; got {MinScaleRatio}..{MaxScaleRatio}.");
        if (BaseScale is { } s && (s.LongEdge <= 0 || s.ShortEdge <= 0))
            throw new ArgumentOutOfRangeException(nameof(BaseScale), $"BaseScale edges must be positive; got ({s.LongEdge}, {s.ShortEdge}).");
        if (CropHeight <= 0 || CropWidth <= 0)
            throw new ArgumentOutOfRangeException(nameof(CropHeight), $"The crop size must be positive; got {CropHeight}×{CropWidth} (height×width).");
        if (!(CatMaxRatio > 0 && CatMaxRatio <= 1))
            throw new ArgumentOutOfRangeException(nameof(CatMaxRatio), CatMaxRatio, "CatMaxRatio must be in (0, 1]; 1 disables the check.");
        if (!(FlipProbability >= 0 && FlipProbability <= 1))
            throw new ArgumentOutOfRangeException(nameof(FlipProbability), FlipProbability, "FlipProbability must be in [0, 1].");
    }
}
