using MLNetFreqFusion;
using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Decoders;

namespace MLNetFreqFusion.Networks;

/// <summary>
/// What <see cref="SegmentationNetwork.Create"/> builds: backbone, decoder head, class count and head widths.
/// </summary>
public sealed class SegmentationNetworkOptions
{
    /// <summary>The encoder. Default: <see cref="SegmentationBackbone.ResNet18"/>.</summary>
    public SegmentationBackbone Backbone { get; set; } = SegmentationBackbone.ResNet18;

    /// <summary>The decoder head. Default: <see cref="SegmentationDecoder.FreqFusion"/>.</summary>
    public SegmentationDecoder Decoder { get; set; } = SegmentationDecoder.FreqFusion;

    /// <summary>Number of classes (the classifier's output channels), at least 1. No default: it must be set.</summary>
    public int NumberOfClasses { get; set; }

    /// <summary>
    /// Width of the decoder. Default (null): 256 for the FPN heads; for the concat and MLP heads SegFormer's embedding
    /// width per backbone, 256 for MiT-B0/B1 and the ResNets and 768 for MiT-B2…B5.
    /// </summary>
    public int? DecoderChannels { get; set; }

    /// <summary>
    /// FreqFusion's channel compression: its compressed width is (hr + lr channels) / this ratio. Default 4, the
    /// SegNeXt/SegFormer + FreqFusion setting. Ignored by the bilinear baselines.
    /// </summary>
    public int CompressRatio { get; set; } = 4;

    /// <summary>Dropout probability (whole channels) before the classifier. Default 0.1.</summary>
    public double DropoutRatio { get; set; } = 0.1;

    /// <summary>
    /// Keep the backbone's batch-norm layers in eval mode while training (running statistics used, not updated;
    /// affine weights still trained), the usual choice when fine-tuning with small batches. Default false.
    /// </summary>
    public bool FreezeBatchNorm { get; set; }

    /// <summary>
    /// Which backbone stages (0 = stride 4 … 3 = stride 32) feed the decoder, in increasing order. Default (null): all
    /// four. Logits are predicted at the stride of the first selected stage and upsampled to the input size.
    /// </summary>
    public int[]? DecoderInputStages { get; set; }

    /// <summary>
    /// Pretrained backbone weights, applied by <see cref="SegmentationNetwork.Create"/>. For
    /// <see cref="SegmentationBackbone.ResNet18ImageNet"/>: the ResNet18.onnx of the NuGet package
    /// Microsoft.ML.DnnImageFeaturizer.ResNet18 (when null, the copy in the application's build output is used, see
    /// <see cref="PretrainedModels.FindResNet18Onnx"/>). For every backbone: a PyTorch checkpoint (.pt, .pth, .bin,
    /// .safetensors) with torchvision ResNet or HuggingFace SegformerModel names. Default null: random initialisation
    /// (except for ResNet18ImageNet, which always loads its ONNX weights).
    /// </summary>
    public string? PretrainedWeightsPath { get; set; }

    internal SegmentationNetworkOptions Clone()
    {
        var copy = (SegmentationNetworkOptions)MemberwiseClone();
        copy.DecoderInputStages = DecoderInputStages?.ToArray();
        return copy;
    }
}
