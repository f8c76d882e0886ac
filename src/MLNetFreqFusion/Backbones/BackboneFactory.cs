namespace MLNetFreqFusion.Backbones;

/// <summary>Builds the randomly initialised encoder for a <see cref="SegmentationBackbone"/>.</summary>
internal static class BackboneFactory
{
    public static Backbone Create(SegmentationBackbone backbone, bool freezeBatchNorm) => backbone switch
    {
        SegmentationBackbone.ResNet18 => new ResNet(false, [2, 2, 2, 2], 64, freezeBatchNorm, InputNormalization.ImageNet),
        SegmentationBackbone.ResNet34 => new ResNet(false, [3, 4, 6, 3], 64, freezeBatchNorm, InputNormalization.ImageNet),
        SegmentationBackbone.ResNet50 => new ResNet(true, [3, 4, 6, 3], 64, freezeBatchNorm, InputNormalization.ImageNet),
        SegmentationBackbone.ResNet101 => new ResNet(true, [3, 4, 23, 3], 64, freezeBatchNorm, InputNormalization.ImageNet),
        SegmentationBackbone.ResNet18ImageNet => new ResNet(false, ResNet18OnnxWeights.Depths, 64, freezeBatchNorm, InputNormalization.MLNetResNet18),
        SegmentationBackbone.MiTB0 => new MixTransformer(MixTransformerConfig.B0, freezeBatchNorm),
        SegmentationBackbone.MiTB1 => new MixTransformer(MixTransformerConfig.B1, freezeBatchNorm),
        SegmentationBackbone.MiTB2 => new MixTransformer(MixTransformerConfig.B2, freezeBatchNorm),
        SegmentationBackbone.MiTB3 => new MixTransformer(MixTransformerConfig.B3, freezeBatchNorm),
        SegmentationBackbone.MiTB4 => new MixTransformer(MixTransformerConfig.B4, freezeBatchNorm),
        SegmentationBackbone.MiTB5 => new MixTransformer(MixTransformerConfig.B5, freezeBatchNorm),
        _ => throw new ArgumentOutOfRangeException(nameof(backbone), backbone, "Unknown segmentation backbone."),
    };

    public static bool IsMixTransformer(SegmentationBackbone backbone) =>
        backbone is >= SegmentationBackbone.MiTB0 and <= SegmentationBackbone.MiTB5;
}
