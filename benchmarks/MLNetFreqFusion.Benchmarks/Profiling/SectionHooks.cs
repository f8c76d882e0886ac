using System.Text.RegularExpressions;
using MLNetFreqFusion.Fusion;
using MLNetFreqFusion.Networks;
using MLNetFreqFusion.Operators;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Benchmarks.Profiling;

/// <summary>
/// Module hooks that make the network's modules timed sections of the calling thread's
/// <see cref="OperatorProfile.Recorder"/>, grouped into the rows of the profile table by their state-dict path.
/// </summary>
static partial class SectionHooks
{
    public const string NetworkRest = "network rest (normalise, pad, logits upsampling)";

    /// <summary>The profile row of the module at <paramref name="path"/>, or null when its time belongs to its parent's row.</summary>
    static string? Row(string path)
    {
        string last = path[(path.LastIndexOf('.') + 1)..];
        if (path == "backbone")
            return "backbone";
        if (LateralPattern().IsMatch(path))
            return "lateral convs / MLP projections";
        if (last is "hr_channel_compressor" or "lr_channel_compressor")
            return "compressors";
        if (last is "content_encoder" or "content_encoder2")
            return "content encoders";
        if (path.Contains(".dysampler.", StringComparison.Ordinal) && last is "offset" or "direct_scale" or "hr_offset" or "hr_direct_scale" or "norm_hr" or "norm_lr")
            return "offset generator convs + group norms";
        if (last == "dysampler")
            return "offset generator rest (offset arithmetic, grid)";
        if (FreqFusionPattern().IsMatch(path))
            return "FreqFusion rest (element-wise, nearest)";
        if (path == "decode_head")
            return "head rest (bilinear upsampling, concat)";
        if (path is "decode_head.fuse" or "decode_head.fpn_conv" or "decode_head.linear_fuse" or "decode_head.batch_norm")
            return "fuse / FPN conv";
        if (path is "decode_head.classifier" or "decode_head.dropout")
            return "dropout + classifier";
        return null;
    }

    [GeneratedRegex(@"^decode_head\.(lateral_convs|linear_c)\.\d+$")]
    private static partial Regex LateralPattern();

    [GeneratedRegex(@"^decode_head\.freqfusions\.\d+$")]
    private static partial Regex FreqFusionPattern();

    /// <summary>Registers the hooks on every module that starts a row; they record nothing while no recorder is installed.</summary>
    public static void Install(SegmentationNetwork network)
    {
        foreach (var (path, module) in network.named_modules())
        {
            if (Row(path) is not string row)
                continue;
            // SpatialConvolution computes some convolutions without calling the module (tap products, bands); it times them in this row too.
            OperatorProfile.NameModuleSection(module, row);
            int id = -1;
            switch (module)
            {
                case nn.Module<Tensor, Tensor> m:
                    m.register_forward_pre_hook((_, x) => (id = Begin(row)) < 0 ? x : Recorder!.Input(id, x));
                    m.register_forward_hook((_, _, y) => id < 0 ? y : Recorder!.End(id, y));
                    break;
                case nn.Module<Tensor, Tensor[]> m:
                    m.register_forward_pre_hook((_, x) => (id = Begin(row)) < 0 ? x : Recorder!.Input(id, x));
                    m.register_forward_hook((_, _, y) => id < 0 ? y : y.Select(t => Recorder!.End(id, t)).ToArray());
                    break;
                case nn.Module<Tensor[], Tensor> m:
                    m.register_forward_pre_hook((_, x) => (id = Begin(row)) < 0 ? x : x.Select(t => Recorder!.Input(id, t)).ToArray());
                    m.register_forward_hook((_, _, y) => id < 0 ? y : Recorder!.End(id, y));
                    break;
                case nn.Module<Tensor, Tensor, (Tensor MaskLr, Tensor Hr, Tensor Lr)> m:
                    m.register_forward_pre_hook((_, a, b) => (id = Begin(row)) < 0 ? (a, b) : (Recorder!.Input(id, a), Recorder!.Input(id, b)));
                    // The heads use the filtered hr and the up-sampled lr feature; the kernels are not in the loss's graph.
                    m.register_forward_hook((_, _, _, y) => id < 0 ? y : (y.MaskLr, Recorder!.End(id, y.Hr), Recorder!.End(id, y.Lr)));
                    break;
                case nn.Module<Tensor, Tensor, Tensor, Tensor> m:
                    m.register_forward_pre_hook((_, a, b, c) => (id = Begin(row)) < 0 ? (a, b, c) : (Recorder!.Input(id, a), Recorder!.Input(id, b), Recorder!.Input(id, c)));
                    m.register_forward_hook((_, _, _, _, y) => id < 0 ? y : Recorder!.End(id, y));
                    break;
                default:
                    throw new InvalidOperationException($"No profile hook for module '{path}' of type {module.GetType().Name}.");
            }
        }
    }

    static IOperatorRecorder? Recorder => OperatorProfile.Recorder;

    static int Begin(string row) => Recorder?.Begin(row) ?? -1;
}
