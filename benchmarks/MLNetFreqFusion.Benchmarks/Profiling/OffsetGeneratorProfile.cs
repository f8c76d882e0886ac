using MLNetFreqFusion.Operators;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Benchmarks.Profiling;

/// <summary>
/// <c>profile offsets [--steps N]</c>: the offset generator's two operators as loops (A) against ATen (B) on the concat
/// FreqFusion head's shapes at width 256 (<see cref="LoopsAgainstAten"/>): <c>grid_sample</c> over the up-sampled
/// feature in groups of 4 (64, 128 and 192 channels a group at the three stages) and the local similarity of the
/// compressed features (128, 192 and 256 channels), at 96² batch 8 and 512² batch 2; inference and forward + backward;
/// the trainer's allocator; libtorch's threads.
/// </summary>
static class OffsetGeneratorProfile
{
    static readonly (long Images, long Channels, long Size)[] SamplingShapes =
        [(32, 64, 6), (32, 128, 12), (32, 192, 24), (8, 64, 32), (8, 128, 64), (8, 192, 128)];

    static readonly (long Batch, long Channels, long Size)[] SimilarityShapes =
        [(8, 192, 12), (8, 256, 12), (8, 256, 24), (2, 128, 32), (2, 192, 32), (2, 192, 64), (2, 256, 64), (2, 256, 128)];

    public static void Run(int steps)
    {
        manual_seed(16);
        Console.WriteLine("| operator, input | inference A / B ms | B / A | forward + backward A / B ms | B / A |");
        Console.WriteLine("|---|---|---:|---|---:|");
        foreach (var (images, channels, size) in SamplingShapes)
        {
            using var scope = NewDisposeScope();
            var x = randn(images, channels, size, size);
            // Source-pixel centres plus offsets of about a pixel, the offset generator's range.
            var centres = (arange(size, float32) + 0.5f) * 2 / size - 1;
            var grid = (stack(new[] { centres.view(1, size).expand(size, size), centres.view(size, 1).expand(size, size) }, -1).unsqueeze(0)
                + randn(images, size, size, 2) * (2.0f / size)).clamp(-1, 1);
            var upstream = randn(images, channels, size, size);
            Report($"grid_sample [{images}, {channels}, {size}²]", steps, on => GridSampleLoops.OffForBenchmark = !on,
                () => GridSample.Bilinear(x, grid),
                () => GridSample.Bilinear(x.detach().requires_grad_(), grid.detach().requires_grad_()).backward(new[] { upstream }));
        }
        foreach (var (batch, channels, size) in SimilarityShapes)
        {
            using var scope = NewDisposeScope();
            var x = randn(batch, channels, size, size);
            var upstream = randn(batch, 8, size, size);
            Report($"local similarity [{batch}, {channels}, {size}²]", steps, on => LocalSimilarityLoops.OffForBenchmark = !on,
                () => LocalSimilarity.Cosine(x),
                () => LocalSimilarity.Cosine(x.detach().requires_grad_()).backward(new[] { upstream }));
        }
    }

    static void Report(string what, int steps, Action<bool> useLoops, Action inferenceCall, Action trainingCall)
    {
        var inference = LoopsAgainstAten.Alternate(steps, useLoops, () =>
        {
            using var noGrad = no_grad();
            inferenceCall();
        });
        var training = LoopsAgainstAten.Alternate(steps, useLoops, trainingCall);
        Console.WriteLine($"| {what} | {inference.A:F1} / {inference.B:F1} | {inference.Ratio:F2} | {training.A:F1} / {training.B:F1} | {training.Ratio:F2} |");
    }
}
