using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Operators;

/// <summary>
/// A convolution module's forward computed over bands of output rows when its input is large. With oneDNN off
/// (docs/decisions.md) libtorch's CPU convolution is im2col + one matrix product, with one column buffer of
/// batch × in-channels × kernel area × output pixels. Measured on the CI host: on glibc's defaults a buffer of a few
/// tens of megabytes is mapped and faulted in afresh on every call, 6–28× the time of bands whose buffers stay small
/// (docs/benchmarks.md §11); with freed memory reused, as the trainer sets it, the forward costs the same either way
/// but the whole backward is still up to 3.6× the banded one at 144 MB of columns (§12). Each output is the same dot
/// product either way, so the forward result is identical; gradients differ only in the order their band sums are
/// added.
/// </summary>
internal static class BandedConvolution
{
    /// <summary>Column buffer per band; whole convolutions up to twice this run as they are.</summary>
    internal const long MaxColumnBytes = 8L << 20;

    /// <summary>
    /// <paramref name="conv"/>(<paramref name="x"/>) in bands of output rows when the convolution is spatial,
    /// ungrouped, zero-padded with explicit padding, and its column buffer exceeds 2 × <paramref name="maxColumnBytes"/>;
    /// otherwise the module's own forward. The networks call <see cref="SpatialConvolution.Forward(Conv2d, Tensor)"/>, which decides.
    /// </summary>
    public static Tensor Forward(Conv2d conv, Tensor x, long maxColumnBytes = MaxColumnBytes)
    {
        var bands = Bands(conv, x, maxColumnBytes);
        return bands.Count < 2 ? conv.call(x) : Banded(conv, conv.weight!, conv.bias, x, bands);
    }

    /// <summary>A convolution of <paramref name="conv"/>'s geometry with <paramref name="weight"/> and <paramref name="bias"/> in the bands <see cref="Bands"/> gives.</summary>
    internal static Tensor Forward(Conv2d conv, Tensor weight, Tensor? bias, Tensor x, long maxColumnBytes = MaxColumnBytes)
    {
        var bands = Bands(conv, x, maxColumnBytes);
        return Banded(conv, weight, bias, x, bands);
    }

    static Tensor Banded(Conv2d conv, Tensor weight, Tensor? bias, Tensor x, IReadOnlyList<(long Start, long End)> bands)
    {
        using var scope = NewDisposeScope();
        long ph = conv.padding![0], pw = conv.padding[1], sh = conv.stride[0], dh = conv.dilation[0], kh = conv.kernel_size[0];
        var padded = ph == 0 && pw == 0 ? x : nn.functional.pad(x, new[] { pw, pw, ph, ph });
        // The input rows split into one chunk per band, each band its chunk plus the halo rows of the next one (Bands
        // keeps a band at least a halo long): the backward of a slice of the whole input zero-fills a gradient the size
        // of the whole input for every band (docs/benchmarks.md §11).
        long[] starts = bands.Select(b => b.Start * sh).ToArray();
        var lengths = starts.Select((s, i) => (i + 1 < starts.Length ? starts[i + 1] : padded.shape[2]) - s).ToArray();
        var chunks = padded.split(lengths, 2);
        var parts = new List<Tensor>(bands.Count);
        for (int i = 0; i < bands.Count; i++)
        {
            long need = (bands[i].End - 1 - bands[i].Start) * sh + dh * (kh - 1) + 1;
            var band = need <= lengths[i] ? chunks[i].narrow(2, 0, need) : cat(new[] { chunks[i], chunks[i + 1].narrow(2, 0, need - lengths[i]) }, 2);
            parts.Add(nn.functional.conv2d(band, weight, bias, strides: conv.stride, padding: new long[] { 0, 0 }, dilation: conv.dilation));
        }
        return scope.MoveToOuter(cat(parts, 2));
    }

    /// <summary>The output-row ranges [Start, End) the forward computes one at a time; one range when it is not banded.</summary>
    internal static IReadOnlyList<(long Start, long End)> Bands(Conv2d conv, Tensor x, long maxColumnBytes)
    {
        long kh = conv.kernel_size[0], kw = conv.kernel_size[1];
        if (x.dim() != 4 || kh * kw == 1 || conv.groups != 1 || conv.padding_type is not null || conv.padding_mode != PaddingModes.Zeros
            || conv.padding is not { Length: 2 } || conv.weight is null)
            return [(0, long.MaxValue)];
        long outH = (x.shape[2] + 2 * conv.padding[0] - conv.dilation[0] * (kh - 1) - 1) / conv.stride[0] + 1;
        long outW = (x.shape[3] + 2 * conv.padding[1] - conv.dilation[1] * (kw - 1) - 1) / conv.stride[1] + 1;
        long rowBytes = x.shape[0] * x.shape[1] * kh * kw * outW * x.element_size();
        if (outH < 2 || rowBytes * outH <= 2 * maxColumnBytes)
            return [(0, outH)];
        // At least the kernel's reach in output rows, so a band's halo lies within the next band's chunk.
        long rows = Math.Max(Math.Max(1, maxColumnBytes / rowBytes), (conv.dilation[0] * (kh - 1) + conv.stride[0] - 1) / conv.stride[0]);
        var bands = new List<(long, long)>();
        for (long start = 0; start < outH; start += rows)
            bands.Add((start, Math.Min(outH, start + rows)));
        return bands;
    }
}
