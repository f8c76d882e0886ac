using System.Collections.Concurrent;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace MLNetFreqFusion.Benchmarks.Infrastructure;

/// <summary>
/// Floating-point operations per invocation of a benchmark (one multiply-add = 2), recorded in [GlobalSetup]. The
/// "GFLOP/s" column divides them by the measured mean time; "% peak" relates that to the fastest case marked as the
/// machine's peak (a large float32 matmul) in the same run.
/// </summary>
static class Flops
{
    static readonly ConcurrentDictionary<string, (double Flops, bool IsPeak)> Results = new();

    public static void Record(object benchmark, string method, double flops, bool isPeak = false) =>
        Results[CaseKey.Of(benchmark, method)] = (flops, isPeak);

    internal static double? GflopsPerSecond(Summary summary, BenchmarkCase benchmarkCase)
    {
        var report = summary[benchmarkCase];
        if (report?.ResultStatistics is not { } stats || !Results.TryGetValue(CaseKey.Of(benchmarkCase), out var entry))
            return null;
        return entry.Flops / stats.Mean; // FLOP per ns = GFLOP/s
    }

    internal static double? PeakGflopsPerSecond(Summary summary) =>
        summary.BenchmarksCases
            .Where(c => Results.TryGetValue(CaseKey.Of(c), out var e) && e.IsPeak)
            .Select(c => GflopsPerSecond(summary, c))
            .Where(g => g is not null)
            .Max();
}

/// <summary>The "GFLOP/s" column (achieved, from <see cref="Flops"/> and the mean time).</summary>
sealed class GflopsColumn : IColumn
{
    public string Id => nameof(GflopsColumn);
    public string ColumnName => "GFLOP/s";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 1;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "Achieved GFLOP/s: counted floating-point operations (multiply-add = 2) of one invocation / mean time";
    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) =>
        Flops.GflopsPerSecond(summary, benchmarkCase) is { } g ? $"{g:F1}" : "-";
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) => GetValue(summary, benchmarkCase);
}

/// <summary>The "% peak" column: achieved GFLOP/s as a share of the measured matmul peak of the same run.</summary>
sealed class PeakShareColumn : IColumn
{
    public string Id => nameof(PeakShareColumn);
    public string ColumnName => "% peak";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 2;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "Achieved GFLOP/s as a percentage of the large float32 matmul's GFLOP/s measured in the same run";
    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) =>
        Flops.GflopsPerSecond(summary, benchmarkCase) is { } g && Flops.PeakGflopsPerSecond(summary) is { } peak and > 0
            ? $"{100 * g / peak:F0}%"
            : "-";
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) => GetValue(summary, benchmarkCase);
}
