using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using MLNetFreqFusion.Benchmarks.Infrastructure;

namespace MLNetFreqFusion.Benchmarks;

/// <summary>
/// Runs the benchmarks of issue 9: <c>dotnet run -c Release --project benchmarks/MLNetFreqFusion.Benchmarks -- --filter '*'</c>
/// (<c>--job dry</c> for a one-iteration smoke pass); <c>quality …</c> runs the training-quality sweep instead
/// (<see cref="Quality.QualityBenchmark"/>), <c>lrfind …</c> the learning-rate range test
/// (<see cref="Quality.LearningRateRangeTest"/>). docs/benchmarks.md explains the measurements and holds the results.
/// </summary>
public static class Program
{
    /// <summary>Entry point: BenchmarkDotNet's switcher with this project's columns and in-process job.</summary>
    public static int Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "quality")
            return Quality.QualityBenchmark.Sweep(args[1..]);
        if (args.Length > 0 && args[0] == "lrfind")
            return Quality.LearningRateRangeTest.Run(args[1..]);
        args = ApplyTorchThreads(args);
        if (Profiling.StepProfile.TryRun(args))
            return 0;
        var machine = MachineInfo.Describe();
        Console.WriteLine(machine);

        args = TakeJob(args, out var job);
        var config = ManualConfig.Create(DefaultConfig.Instance)
            .AddJob(job)
            .AddColumn(new PeakMemoryColumn(), new GflopsColumn(), new PeakShareColumn(), StatisticColumn.OperationsPerSecond)
            .WithSummaryStyle(SummaryStyle.Default.WithMaxParameterColumnWidth(40));

        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, config);

        Directory.CreateDirectory(MachineInfo.ResultsDirectory);
        File.WriteAllText(Path.Combine(MachineInfo.ResultsDirectory, "machine.txt"), machine + Environment.NewLine);
        return 0;
    }

    /// <summary>
    /// <c>--torch-threads N</c> sets libtorch's intra-op thread count for the whole run (benchmarks run in-process).
    /// On a machine shared with other work, 1 thread avoids OpenMP threads spinning at barriers while a sibling
    /// thread waits for a core; the default is libtorch's own choice (one per core).
    /// </summary>
    static string[] ApplyTorchThreads(string[] args)
    {
        int at = Array.FindIndex(args, a => a.Equals("--torch-threads", StringComparison.OrdinalIgnoreCase));
        if (at < 0)
            return args;
        if (at + 1 >= args.Length || !int.TryParse(args[at + 1], out int threads) || threads < 1)
            throw new ArgumentException("--torch-threads needs a positive thread count, e.g. --torch-threads 1.");
        TorchSharp.torch.set_num_threads(threads);
        return args.Take(at).Concat(args.Skip(at + 2)).ToArray();
    }

    /// <summary>
    /// The one job every benchmark runs with, always in-process: libtorch is loaded once, setup- and cleanup-time
    /// measurements (peak memory, FLOP counts) reach the summary columns through static state, nothing is rebuilt per
    /// benchmark, and the timeout is an hour (the in-process default of 5 minutes is shorter than a few iterations
    /// of a batch-4 training step at 512×512 on 2 shared cores). <c>--job dry/short/medium/long</c> picks the run
    /// counts of BenchmarkDotNet's job of that name; without it, 1 launch, 1 warm-up and 5 measured iterations.
    /// BenchmarkDotNet applies <c>--warmupCount</c>, <c>--iterationCount</c> and the like on top (it ignores
    /// <c>--job</c> itself once a configuration defines its default job, hence this translation).
    /// </summary>
    static string[] TakeJob(string[] args, out Job job)
    {
        int at = Array.FindIndex(args, a => a is "--job" or "-j");
        string name = at >= 0 && at + 1 < args.Length ? args[at + 1].ToLowerInvariant() : "";
        var baseJob = name switch
        {
            "" => Job.Default.WithLaunchCount(1).WithWarmupCount(1).WithIterationCount(5),
            "dry" => Job.Dry,
            "short" => Job.ShortRun,
            "medium" => Job.MediumRun,
            "long" => Job.LongRun,
            "default" => Job.Default,
            _ => throw new ArgumentException($"Unknown --job '{args[at + 1]}'; use dry, short, medium, long or default."),
        };
        job = baseJob.WithToolchain(new InProcessEmitToolchain(TimeSpan.FromHours(1), logOutput: true)).AsDefault();
        return at >= 0 ? args.Take(at).Concat(args.Skip(at + 2)).ToArray() : args;
    }
}
