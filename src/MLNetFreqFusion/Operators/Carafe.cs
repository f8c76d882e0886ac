using MLNetFreqFusion.Fusion;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Operators;

/// <summary>
/// CARAFE content-aware reassembly (Wang et al., ICCV 2019) as FreqFusion uses it: output pixel (y, x) is the
/// weighted sum of the k×k window of <c>x</c> centred on source pixel (y / up, x / up), with weights
/// <c>kernels[:, g·k² + t, y, x]</c> for the channel group g. Channels are split into G equal groups, G = kernels
/// channels / k² (mmcv's <c>group_size</c>; FreqFusion's <c>up_group</c>).
/// </summary>
internal static class Carafe
{
    /// <summary>
    /// The memory-lean formulation: accumulates over the k² window offsets, each a view of the padded input, and
    /// computes the up² sub-pixel phases at source resolution before interleaving them. Extra memory is the padded
    /// input, the phase-ordered kernels and the output (no k²-times larger unfolded tensor).
    /// </summary>
    /// <param name="x">Source features [B, C, h, w].</param>
    /// <param name="kernels">Normalised reassembly kernels [B, G·k², up·h, up·w].</param>
    /// <param name="kernelSize">Odd window size k.</param>
    /// <param name="upFactor">Up-sampling factor (1 keeps the resolution).</param>
    /// <param name="padding">What the window reads outside the map.</param>
    /// <returns>The reassembled features [B, C, up·h, up·w].</returns>
    public static Tensor Lean(Tensor x, Tensor kernels, int kernelSize, int upFactor, CarafePadding padding)
    {
        var (b, c, h, w, groups) = CheckShapes(x, kernels, kernelSize, upFactor, padding);
        int k = kernelSize, pad = kernelSize / 2, up = upFactor;
        long channelsPerGroup = c / groups, phases = (long)up * up;

        using var padded = Pad(x, pad, padding);
        using var grouped = padded.view(b, groups, channelsPerGroup, 1, h + 2 * pad, w + 2 * pad);
        // Phase-major kernels at source resolution: [B, G, 1, k², up², h, w]; for up = 1 this is only a view.
        using var unshuffled = up == 1 ? kernels.alias() : nn.functional.pixel_unshuffle(kernels, up);
        using var phased = unshuffled.view(b, groups, 1, (long)k * k, phases, h, w);

        var acc = zeros(new[] { b, groups, channelsPerGroup, phases, h, w }, dtype: x.dtype, device: x.device);
        for (int i = 0; i < k; i++)
        {
            for (int j = 0; j < k; j++)
            {
                using var window = grouped[.., .., .., .., i..(i + (int)h), j..(j + (int)w)];
                using var weight = phased[.., .., .., i * k + j];
                acc.addcmul_(window, weight, 1);
            }
        }

        if (up == 1)
        {
            using (acc)
                return acc.view(b, c, h, w);
        }
        using (acc)
        using (var stacked = acc.view(b, c * phases, h, w))
            return nn.functional.pixel_shuffle(stacked, up);
    }

    /// <summary>
    /// The unfold formulation of the reference's pure-PyTorch CARAFE: unfold the padded input into k² planes per
    /// channel, nearest-upsample them and weight. Memory k²·up² times the input; kept as the test oracle and the
    /// benchmark baseline.
    /// </summary>
    /// <param name="x">Source features [B, C, h, w].</param>
    /// <param name="kernels">Normalised reassembly kernels [B, G·k², up·h, up·w].</param>
    /// <param name="kernelSize">Odd window size k.</param>
    /// <param name="upFactor">Up-sampling factor (1 keeps the resolution).</param>
    /// <param name="padding">What the window reads outside the map.</param>
    /// <returns>The reassembled features [B, C, up·h, up·w].</returns>
    public static Tensor Unfold(Tensor x, Tensor kernels, int kernelSize, int upFactor, CarafePadding padding)
    {
        var (b, c, h, w, groups) = CheckShapes(x, kernels, kernelSize, upFactor, padding);
        long k2 = (long)kernelSize * kernelSize, outH = h * upFactor, outW = w * upFactor;
        using var scope = NewDisposeScope();
        var padded = Pad(x, kernelSize / 2, padding);
        var columns = nn.functional.unfold(padded, kernelSize).view(b, c * k2, h, w);
        if (upFactor > 1)
            columns = nn.functional.interpolate(columns, size: new[] { outH, outW }, mode: InterpolationMode.Nearest);
        var weighted = columns.view(b, groups, c / groups, k2, outH, outW) * kernels.view(b, groups, 1, k2, outH, outW);
        return weighted.sum(3).view(b, c, outH, outW).MoveToOuterDisposeScope();
    }

    static Tensor Pad(Tensor x, int pad, CarafePadding padding)
    {
        if (pad == 0)
            return x.alias();
        var sides = new long[] { pad, pad, pad, pad };
        return padding == CarafePadding.Reflect
            ? nn.functional.pad(x, sides, PaddingModes.Reflect)
            : nn.functional.pad(x, sides, PaddingModes.Constant, 0);
    }

    static (long B, long C, long H, long W, long Groups) CheckShapes(Tensor x, Tensor kernels, int kernelSize, int upFactor, CarafePadding padding)
    {
        if (kernelSize < 1 || kernelSize % 2 == 0)
            throw new ArgumentOutOfRangeException(nameof(kernelSize), kernelSize, "CARAFE needs an odd, positive kernel size.");
        if (upFactor < 1)
            throw new ArgumentOutOfRangeException(nameof(upFactor), upFactor, "CARAFE needs an up factor of at least 1.");
        if (x.dim() != 4 || kernels.dim() != 4)
            throw new ArgumentException($"CARAFE needs 4-D features and kernels [B, C, H, W]; got features {Shape(x)} and kernels {Shape(kernels)}.");
        long b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
        long k2 = (long)kernelSize * kernelSize;
        if (kernels.shape[0] != b || kernels.shape[2] != h * upFactor || kernels.shape[3] != w * upFactor || kernels.shape[1] % k2 != 0 || kernels.shape[1] == 0)
            throw new ArgumentException(
                $"CARAFE with a {kernelSize}×{kernelSize} kernel and up factor {upFactor} needs kernels [{b}, G·{k2}, {h * upFactor}, {w * upFactor}] for features {Shape(x)}; got kernels {Shape(kernels)}.");
        long groups = kernels.shape[1] / k2;
        if (c % groups != 0)
            throw new ArgumentException($"CARAFE splits the {c} feature channels into {groups} kernel groups, which needs the channel count to be a multiple of the group count (features {Shape(x)}, kernels {Shape(kernels)}).");
        int pad = kernelSize / 2;
        if (padding == CarafePadding.Reflect && (pad >= h || pad >= w))
            throw new ArgumentException($"Reflect padding by {pad} for a {kernelSize}×{kernelSize} CARAFE kernel needs features larger than {pad}×{pad}; got {Shape(x)}. Use larger inputs or CarafePadding.Zeros.");
        return (b, c, h, w, groups);
    }

    internal static string Shape(Tensor t) => "[" + string.Join(", ", t.shape) + "]";
}
