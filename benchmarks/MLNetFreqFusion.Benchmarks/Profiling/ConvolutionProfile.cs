using System.Diagnostics;
using MLNetFreqFusion.Operators;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Benchmarks.Profiling;

/// <summary>
/// <c>profile convolutions [--steps N] [--serving]</c>: the three formulations <see cref="SpatialConvolution"/>
/// chooses from, 3×3 with padding 1, on the shapes FreqFusion's kernel encoders and offset scopes see at 96² batch 8
/// (compressed width 64 for the sample's decoder width 128, 128 for the FPN head at the library's 256, 256 for the
/// concat head's last stage) and at 512² batch 1 and 2: ATen's im2col convolution (the module's forward), bands of
/// rows at the shipped budget, and tap products. Median of N calls after two warm-ups, inference (no autograd) and
/// forward + backward, in ms; with the trainer's allocator, or glibc's defaults with --serving.
/// </summary>
static class ConvolutionProfile
{
    static readonly (long Batch, long In, long Size, long Out)[] Shapes =
    [
        (8, 64, 24, 25), (8, 64, 24, 9), (8, 64, 12, 25), (8, 64, 12, 32), (8, 64, 24, 8),
        (8, 128, 24, 25), (8, 128, 24, 9), (8, 128, 12, 25), (8, 128, 12, 32), (8, 128, 24, 8),
        (8, 256, 24, 25), (8, 256, 12, 32),
        (1, 256, 128, 25), (1, 256, 128, 9), (2, 128, 128, 25), (2, 128, 128, 8),
    ];

    public static void Run(int steps)
    {
        // The library switches oneDNN's convolutions off when its first network is built; no network is built here.
        using (zeros(1))
            Native.LibTorchRuntime.EnsureConfigured();
        Console.WriteLine($"# oneDNN convolutions on: {Native.LibTorchRuntime.OneDnnEnabled}");
        Console.WriteLine("| x → out channels | columns | ATen (module) | bands (8 MB) | tap products | bands / tap products |");
        Console.WriteLine("|---|---:|---|---|---|---:|");
        manual_seed(16);
        foreach (var (batch, inChannels, size, outChannels) in Shapes)
        {
            using var scope = NewDisposeScope();
            using var conv = nn.Conv2d(inChannels, outChannels, 3, padding: 1);
            var x = randn(batch, inChannels, size, size).requires_grad_();
            var upstream = randn(batch, outChannels, size, size);
            var module = Measure(conv, x, upstream, steps, input => conv.call(input));
            var bands = Measure(conv, x, upstream, steps, input => BandedConvolution.Forward(conv, input));
            var taps = Measure(conv, x, upstream, steps, input => TapConvolution.Forward(conv, input));
            double columns = batch * inChannels * 9 * size * size * 4 / 1e6;
            Console.WriteLine($"| [{batch}, {inChannels}, {size}²] → {outChannels} | {columns:F0} MB | {module.Inference:F1} / {module.Training:F1} | " +
                $"{bands.Inference:F1} / {bands.Training:F1} | {taps.Inference:F1} / {taps.Training:F1} | " +
                $"{bands.Inference / taps.Inference:F2} / {bands.Training / taps.Training:F2} |");
        }
    }

    static (double Inference, double Training) Measure(Conv2d conv, Tensor x, Tensor upstream, int steps, Func<Tensor, Tensor> forward)
    {
        double inference = Median(steps, () =>
        {
            using var noGrad = no_grad();
            forward(x);
        });
        double training = Median(steps, () =>
        {
            forward(x).backward(new[] { upstream });
            x.grad = null;
            foreach (var p in conv.parameters())
                p.grad = null;
        });
        return (inference, training);
    }

    static double Median(int steps, Action call)
    {
        var times = new List<double>();
        for (int i = -2; i < steps; i++)
        {
            using var scope = NewDisposeScope();
            long start = Stopwatch.GetTimestamp();
            call();
            if (i >= 0)
                times.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
        return StepProfile.Median(times);
    }
}
