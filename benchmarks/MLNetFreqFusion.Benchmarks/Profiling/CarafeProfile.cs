using MLNetFreqFusion.Fusion;
using MLNetFreqFusion.Operators;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Benchmarks.Profiling;

/// <summary>
/// <c>profile carafe [--steps N]</c>: CARAFE as <see cref="CarafeLoops"/> (A) against the ATen formulations the
/// library keeps for float64 and narrow maps (B: k² passes at ×1, batched products at ×2), on the shapes of the
/// FreqFusion heads at width 256: the concat head's lr stages (256, 512, 768 channels) and hr maps at 96² batch 8 and
/// 512² batch 2. A and B alternate call by call; medians of N pairs after two warm-up pairs, in ms, and the median
/// of B / A; inference (no autograd) and forward + backward; the trainer's allocator; libtorch's threads.
/// </summary>
static class CarafeProfile
{
    static readonly (long Batch, long Channels, long Size, int Kernel, int Up)[] Shapes =
    [
        (8, 256, 12, 5, 2), (8, 512, 12, 5, 2), (8, 768, 12, 5, 2),
        (8, 256, 24, 3, 1), (8, 128, 24, 3, 1), (8, 256, 12, 3, 1),
        (2, 256, 32, 5, 2), (2, 512, 32, 5, 2), (2, 256, 64, 5, 2), (2, 768, 64, 5, 2),
        (2, 256, 128, 3, 1), (2, 128, 128, 3, 1),
    ];

    public static void Run(int steps)
    {
        Console.WriteLine("| x, kernel, up | inference A / B ms | B / A | forward + backward A / B ms | B / A |");
        Console.WriteLine("|---|---|---:|---|---:|");
        manual_seed(16);
        foreach (var (batch, channels, size, kernel, up) in Shapes)
        {
            using var scope = NewDisposeScope();
            var x = randn(batch, channels, size, size);
            var kernels = randn(batch, kernel * kernel, up * size, up * size).softmax(1);
            var upstream = randn(batch, channels, up * size, up * size);
            var inference = LoopsAgainstAten.Alternate(steps, Toggle, () =>
            {
                using var noGrad = no_grad();
                Carafe.Lean(x, kernels, kernel, up, CarafePadding.Zeros);
            });
            var training = LoopsAgainstAten.Alternate(steps, Toggle, () =>
            {
                var features = x.detach().requires_grad_();
                var weights = kernels.detach().requires_grad_();
                Carafe.Lean(features, weights, kernel, up, CarafePadding.Zeros).backward(new[] { upstream });
            });
            Console.WriteLine($"| [{batch}, {channels}, {size}²], {kernel}×{kernel}, ×{up} | {inference.A:F1} / {inference.B:F1} | {inference.Ratio:F2} | " +
                $"{training.A:F1} / {training.B:F1} | {training.Ratio:F2} |");
        }
    }

    static void Toggle(bool loops) => CarafeLoops.OffForBenchmark = !loops;
}
