namespace MLNetFreqFusion.Decoders;

/// <summary>
/// The decoder head that fuses the backbone's four feature maps into per-pixel class logits at 1/4 scale.
/// </summary>
public enum SegmentationDecoder
{
    /// <summary>
    /// FreqFusion concat head (SegFormer/SegNeXt style): from deep to shallow, FreqFusion fuses the running feature with
    /// the next higher-resolution one and the two are concatenated; then a 1×1 fuse convolution and the classifier.
    /// </summary>
    FreqFusion,
    /// <summary>FPN head in which every top-down 2× upsampling and addition is a FreqFusion.</summary>
    FreqFusionFpn,
    /// <summary>Baseline: SegFormer's all-MLP head (per-stage linear projection, bilinear upsampling to 1/4, concat, fuse).</summary>
    Bilinear,
    /// <summary>Baseline: FPN head with bilinear top-down upsampling and the same widths as <see cref="FreqFusionFpn"/>.</summary>
    BilinearFpn,
}
