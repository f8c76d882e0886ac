using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using MLNetFreqFusion.Benchmarks.Infrastructure;

namespace MLNetFreqFusion.Benchmarks;

/// <summary>
/// Runs the benchmarks of issue 9: <c>dotnet run -c Release --project benchmarks/MLNetFreqFusion.Benchmarks -- --filter '*'</c>
/// (add <c>--job short</c> for a quicker, noisier pass). docs/benchmarks.md explains the measurements.
/// </summary>
public static class Program
{
    /// <summary>Entry point: BenchmarkDotNet's switcher with this project's columns and in-process job.</summary>
    public static void Main(string[] args)
    {
        args = ApplyTorchThreads(args);
        var machine = MachineInfo.Describe();
        Console.WriteLine(machine);

        var config = ManualConfig.Create(DefaultConfig.Instance)
            .AddColumn(new PeakMemoryColumn(), new GflopsColumn(), new PeakShareColumn(), StatisticColumn.OperationsPerSecond)
            .WithSummaryStyle(SummaryStyle.Default.WithMaxParameterColumnWidth(40));

        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(WithDefaults(args), config);

        Directory.CreateDirectory(MachineInfo.ResultsDirectory);
        File.WriteAllText(Path.Combine(MachineInfo.ResultsDirectory, "machine.txt"), machine + Environment.NewLine);
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
    /// Always in-process: libtorch is loaded once, setup- and cleanup-time measurements (peak memory, FLOP counts)
    /// reach the summary columns through static state, and nothing is rebuilt per benchmark. Without a job or run
    /// counts on the command line, 1 launch, 1 warm-up and 5 measured iterations: the cases take 10 ms to 10 s each on
    /// 2 cores, and BenchmarkDotNet's default job would run the slow ones for many minutes.
    /// </summary>
    static string[] WithDefaults(string[] args)
    {
        var result = new List<string>(args);
        bool Has(params string[] names) => args.Any(a => names.Contains(a, StringComparer.OrdinalIgnoreCase));
        if (!Has("--inProcess", "-i"))
            result.Add("--inProcess");
        if (!Has("--job", "-j", "--launchCount", "--warmupCount", "--iterationCount"))
            result.AddRange(["--launchCount", "1", "--warmupCount", "1", "--iterationCount", "5"]);
        return result.ToArray();
    }
}
