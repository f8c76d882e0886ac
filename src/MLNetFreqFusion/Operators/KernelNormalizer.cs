using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Operators;

/// <summary>
/// Turns predicted kernel logits into CARAFE kernels: a softmax over each k² kernel, optionally shaped by a 2-D
/// Hamming window and renormalised to sum 1 (the paper's ALPF/AHPF kernel normalisation).
/// </summary>
internal static class KernelNormalizer
{
    /// <summary>Set by the benchmarks' <c>profile ab --experiment reference-normaliser</c> only: the reference's product, sum and quotient.</summary>
    internal static bool ReferenceOrderForBenchmark { get; set; }

    /// <summary>Normalises kernel logits [B, G·k²·s², H, W] into kernels [B, G·k², s·H, s·W].</summary>
    /// <param name="logits">Kernel logits, channels ordered group-major then window offset (row-major).</param>
    /// <param name="kernelSize">Odd window size k.</param>
    /// <param name="window">Null, a one-element tensor (no shaping), or a positive [1, 1, k, k] window the softmax is multiplied by before renormalising.</param>
    /// <param name="scaleFactor">When above 1, the logits are first pixel-shuffled by this factor.</param>
    public static Tensor Normalize(Tensor logits, int kernelSize, Tensor? window = null, int scaleFactor = 1)
    {
        if (logits.dim() != 4)
            throw new ArgumentException($"Kernel logits must be [B, C, H, W]; got {Carafe.Shape(logits)}.", nameof(logits));
        if (scaleFactor < 1)
            throw new ArgumentOutOfRangeException(nameof(scaleFactor), scaleFactor, "The kernel scale factor must be at least 1.");
        return OperatorProfile.Section("kernel normaliser", logits, l => Compute(l, kernelSize, window, scaleFactor));
    }

    static Tensor Compute(Tensor logits, int kernelSize, Tensor? window, int scaleFactor)
    {
        long k2 = (long)kernelSize * kernelSize;
        using var scope = NewDisposeScope();
        var mask = scaleFactor > 1 ? nn.functional.pixel_shuffle(logits, scaleFactor) : logits;
        long n = mask.shape[0], channels = mask.shape[1], h = mask.shape[2], w = mask.shape[3];
        if (channels % k2 != 0 || channels == 0)
            throw new ArgumentException($"Kernel logits for {kernelSize}×{kernelSize} kernels need a multiple of {k2} channels; got {Carafe.Shape(mask)}.", nameof(logits));
        var grouped = mask.view(n, channels / k2, k2, h, w);
        if (window is not null && window.numel() != k2 && window.numel() != 1)
            throw new ArgumentException($"A window for {kernelSize}×{kernelSize} kernels must have {k2} entries (or 1); got {Carafe.Shape(window)}.", nameof(window));
        // The reference multiplies the softmax by the window and divides by the sum: e^x·w / Σ e^x·w, which is
        // softmax(x + ln w) for a positive window. One softmax over shifted logits is two passes over the kernels
        // where the product, sum and quotient took four more (and as many autograd nodes); a one-element window
        // cancels out. Rounding differs from the reference's order by a few float32 ulps.
        if (ReferenceOrderForBenchmark)
        {
            var shaped = grouped.softmax(2) * (window ?? ones(1, dtype: grouped.dtype)).reshape(1, 1, -1, 1, 1);
            return (shaped / shaped.sum(2, keepdim: true)).view(n, channels, h, w).MoveToOuterDisposeScope();
        }
        if (window is not null && window.numel() == k2)
            grouped = grouped + window.log().reshape(1, 1, k2, 1, 1);
        var kernels = grouped.softmax(2);
        return kernels.view(n, channels, h, w).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The outer product of two symmetric Hamming windows of length <paramref name="size"/>
    /// (0.54 − 0.46·cos(2πn/(size−1)), as numpy's <c>hamming</c>), shaped [1, 1, size, size], float32.
    /// </summary>
    public static Tensor HammingWindow2D(int size)
    {
        if (size < 1)
            throw new ArgumentOutOfRangeException(nameof(size), size, "A Hamming window needs a positive length.");
        var oneD = new double[size];
        for (int n = 0; n < size; n++)
            oneD[n] = size == 1 ? 1.0 : 0.54 - 0.46 * Math.Cos(2 * Math.PI * n / (size - 1));
        var values = new float[size * size];
        for (int i = 0; i < size; i++)
            for (int j = 0; j < size; j++)
                values[i * size + j] = (float)(oneD[i] * oneD[j]);
        return tensor(values, new long[] { 1, 1, size, size }, ScalarType.Float32);
    }
}
