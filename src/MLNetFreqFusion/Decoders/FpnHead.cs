using MLNetFreqFusion.Fusion;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MLNetFreqFusion.Decoders;

/// <summary>
/// FPN head: lateral 1×1 convolutions to a common width, y_n = x_n', y_i = x_i' ⊕ y_(i+1), then a 3×3 convolution,
/// dropout and the classifier on y_1. The top-down step ⊕ is what sets the two FPN decoders apart:
/// <see cref="SegmentationDecoder.BilinearFpn"/> adds the bilinearly upsampled y_(i+1);
/// <see cref="SegmentationDecoder.FreqFusionFpn"/> lets FreqFusion fuse x_i' (hr) with y_(i+1) (lr) and adds its two
/// outputs. Everything else is shared, so the comparison between them isolates the upsampling.
/// </summary>
internal sealed class FpnHead : DecodeHead
{
    private readonly ModuleList<ConvModule> lateral_convs;
    // Null in the bilinear FPN, which has no weights in its top-down step.
    private readonly ModuleList<FreqFusion>? freqfusions;
    private readonly ConvModule fpn_conv;
    private readonly string _head;

    private FpnHead(IReadOnlyList<int> inChannels, int channels, int numberOfClasses, double dropoutRatio, int? compressRatio)
        : base(nameof(FpnHead))
    {
        _head = compressRatio is null ? "bilinear FPN" : "FreqFusion FPN";
        lateral_convs = new ModuleList<ConvModule>(inChannels.Select(c => new ConvModule(c, channels, 1)).ToArray());
        if (compressRatio is int ratio)
        {
            // freqfusions[j] fuses lateral j (hr) with the top-down feature from level j + 1 (lr).
            freqfusions = new ModuleList<FreqFusion>(Enumerable.Range(0, inChannels.Count - 1)
                .Select(_ => FreqFusionHeadSettings.Create(channels, channels, ratio)).ToArray());
        }
        fpn_conv = new ConvModule(channels, channels, 3);
        AddClassifier(channels, numberOfClasses, dropoutRatio);
    }

    /// <summary>The <see cref="SegmentationDecoder.BilinearFpn"/> head.</summary>
    public static FpnHead Bilinear(IReadOnlyList<int> inChannels, int channels, int numberOfClasses, double dropoutRatio) =>
        new(inChannels, channels, numberOfClasses, dropoutRatio, compressRatio: null);

    /// <summary>The <see cref="SegmentationDecoder.FreqFusionFpn"/> head.</summary>
    public static FpnHead WithFreqFusion(IReadOnlyList<int> inChannels, int channels, int numberOfClasses, double dropoutRatio, int compressRatio) =>
        new(inChannels, channels, numberOfClasses, dropoutRatio, compressRatio);

    public override Tensor ForwardFeatures(Tensor[] features)
    {
        CheckFeatures(features, lateral_convs.Count, _head);
        var y = lateral_convs[features.Length - 1].call(features[^1]);
        for (int i = features.Length - 2; i >= 0; i--)
            y = TopDown(i, lateral_convs[i].call(features[i]), y);
        return fpn_conv.call(y);
    }

    private Tensor TopDown(int level, Tensor lateral, Tensor coarser)
    {
        if (freqfusions is null)
            return lateral + functional.interpolate(coarser, [lateral.shape[2], lateral.shape[3]], mode: InterpolationMode.Bilinear, align_corners: false);
        var (_, hrOut, lrOut) = freqfusions[level].call(lateral, coarser);
        return hrOut + lrOut;
    }
}
