using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MLNetFreqFusion.Decoders;

/// <summary>
/// FPN head with bilinear top-down upsampling (the <see cref="SegmentationDecoder.BilinearFpn"/> baseline):
/// lateral 1×1 convolutions to a common width, y_n = x_n, y_i = x_i + up(y_(i+1)), then a 3×3 convolution and the
/// classifier on y_1. Same widths as <see cref="FreqFusionFpnHead"/>, so only the upsampling differs.
/// </summary>
internal sealed class BilinearFpnHead : DecodeHead
{
    private readonly ModuleList<ConvModule> lateral_convs;
    private readonly ConvModule fpn_conv;

    public BilinearFpnHead(IReadOnlyList<int> inChannels, int channels, int numberOfClasses, double dropoutRatio)
        : base(nameof(BilinearFpnHead))
    {
        lateral_convs = new ModuleList<ConvModule>(inChannels.Select(c => new ConvModule(c, channels, 1)).ToArray());
        fpn_conv = new ConvModule(channels, channels, 3);
        AddClassifier(channels, numberOfClasses, dropoutRatio);
    }

    public override Tensor ForwardFeatures(Tensor[] features)
    {
        CheckFeatures(features, lateral_convs.Count, "bilinear FPN");
        var y = lateral_convs[features.Length - 1].call(features[^1]);
        for (int i = features.Length - 2; i >= 0; i--)
        {
            var lateral = lateral_convs[i].call(features[i]);
            y = lateral + functional.interpolate(y, [lateral.shape[2], lateral.shape[3]], mode: InterpolationMode.Bilinear, align_corners: false);
        }
        return fpn_conv.call(y);
    }
}
