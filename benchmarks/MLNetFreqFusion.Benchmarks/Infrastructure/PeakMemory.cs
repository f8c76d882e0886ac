using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace MLNetFreqFusion.Benchmarks.Infrastructure;

/// <summary>
/// Peak resident-memory growth of one run of an operation. libtorch's CPU tensors live in native memory, which
/// BenchmarkDotNet's MemoryDiagnoser (managed allocations only) cannot see, so the probe works on the process:
/// return freed heap pages to the kernel (malloc_trim), note VmRSS, reset the kernel's high-water mark by writing
/// "5" to /proc/self/clear_refs, run the operation once, and read VmHWM. VmHWM − VmRSS(before) is the most memory
/// the operation held at once on top of what was already resident — its inputs are resident before, its output
/// and every temporary (autograd's saved tensors and the gradients included) count.
/// </summary>
/// <remarks>
/// Probes run in a [GlobalCleanup] after the timed iterations of the same operation (thread pools and one-off caches
/// are then already resident), never inside them. Linux only; elsewhere the column shows "n/a".
/// </remarks>
static class PeakMemory
{
    static readonly ConcurrentDictionary<string, long> Results = new();

    public static bool Supported => OperatingSystem.IsLinux() && File.Exists("/proc/self/clear_refs");

    /// <summary>
    /// Records the peak RSS growth of one more run of the benchmark method. Called from a [GlobalCleanup] targeted at
    /// that method, so the timed iterations have warmed it up and the probe stays out of them.
    /// </summary>
    public static void Probe(object benchmark, string method, Action run)
    {
        if (Supported)
            Results[CaseKey.Of(benchmark, method)] = Measure(run);
    }

    /// <summary>Peak RSS growth in bytes while <paramref name="run"/> executes once (Linux).</summary>
    public static long Measure(Action run)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        _ = malloc_trim(0);
        long before = StatusKiB("VmRSS:");
        File.WriteAllText("/proc/self/clear_refs", "5");
        run();
        long peak = StatusKiB("VmHWM:");
        return Math.Max(0, peak - before) * 1024;
    }

    /// <summary>Current resident set size in bytes (Linux), or -1.</summary>
    public static long ResidentBytes() => OperatingSystem.IsLinux() ? StatusKiB("VmRSS:") * 1024 : -1;

    internal static bool TryGet(BenchmarkCase benchmarkCase, out long bytes) => Results.TryGetValue(CaseKey.Of(benchmarkCase), out bytes);

    static long StatusKiB(string field)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith(field, StringComparison.Ordinal))
                return long.Parse(line.AsSpan(field.Length).Trim().ToString().Split(' ')[0]);
        }
        throw new InvalidOperationException($"/proc/self/status has no {field} line.");
    }

    [DllImport("libc", EntryPoint = "malloc_trim")]
    static extern int malloc_trim(nuint pad);
}

/// <summary>The "Peak RSS Δ" column: <see cref="PeakMemory"/>'s probe of the benchmark's operation, in MiB.</summary>
sealed class PeakMemoryColumn : IColumn
{
    public string Id => nameof(PeakMemoryColumn);
    public string ColumnName => "Peak RSS Δ";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "Peak resident-memory growth during one run (native libtorch memory included), MiB; probed outside the timed iterations";
    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) =>
        PeakMemory.TryGet(benchmarkCase, out long bytes) ? $"{bytes / 1048576.0:F1} MiB" : "n/a";
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) => GetValue(summary, benchmarkCase);
}
