using System.Globalization;
using System.Text;
using BenchmarkDotNet.Attributes;
using MLNetFreqFusion.Benchmarks.Infrastructure;
using MLNetFreqFusion.Networks;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Benchmarks;

/// <summary>
/// Issue 9, item 6 (target: no training memory growth over 100 steps): a small network (ResNet-18 + FreqFusion head,
/// 11 classes, 128×128, batch 2, AdamW) trained for 10 steps per invocation; the cleanup then trains 100 more steps and
/// records the resident set size every 10 steps into BenchmarkDotNet.Artifacts/results/TrainingMemoryGrowth.md.
/// </summary>
public class TrainingMemoryGrowthBenchmarks
{
    const int Steps = 100, Every = 10;
    SegmentationNetwork _network = null!;
    AdamW _optimizer = null!;
    Tensor _images = null!, _labels = null!;

    /// <summary>Builds the network, optimiser and random data.</summary>
    [GlobalSetup]
    public void Setup()
    {
        manual_seed(9);
        _network = BenchmarkNetwork.Create(SegmentationBackbone.ResNet18, SegmentationDecoder.FreqFusion, 11);
        _optimizer = optim.AdamW(_network.parameters(), lr: 1e-4);
        _images = rand(2, 3, 128, 128) * 255;
        _labels = randint(0, 11, [2, 128, 128], dtype: int64);
    }

    /// <summary>Ten training steps (forward, cross-entropy, backward, AdamW step).</summary>
    [Benchmark]
    public void TenTrainingSteps()
    {
        for (int i = 0; i < Every; i++)
            Step();
    }

    void Step() => BenchmarkNetwork.TrainingStep(_network, _optimizer, _images, _labels);

    /// <summary>Trains 100 more steps, recording RSS every 10, and writes the table.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        var table = new StringBuilder("| Step | RSS (MiB) | Δ vs step 10 (MiB) |\n|---:|---:|---:|\n");
        double? first = null;
        for (int step = 1; step <= Steps; step++)
        {
            Step();
            if (step % Every != 0)
                continue;
            GC.Collect();
            GC.WaitForPendingFinalizers();
            double rss = PeakMemory.ResidentBytes() / 1048576.0;
            first ??= rss;
            table.Append(CultureInfo.InvariantCulture, $"| {step} | {rss:F1} | {rss - first:+0.0;-0.0;0.0} |\n");
        }
        Directory.CreateDirectory(MachineInfo.ResultsDirectory);
        File.WriteAllText(Path.Combine(MachineInfo.ResultsDirectory, "TrainingMemoryGrowth.md"), table.ToString());
        Console.WriteLine(table);
        _optimizer.Dispose();
        _network.Dispose();
        _images.Dispose();
        _labels.Dispose();
    }
}
