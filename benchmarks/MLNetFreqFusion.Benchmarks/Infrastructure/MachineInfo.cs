using static TorchSharp.torch;

namespace MLNetFreqFusion.Benchmarks.Infrastructure;

/// <summary>What the results page needs to know about the machine: CPU model, cores, torch threads, date.</summary>
static class MachineInfo
{
    public static string ResultsDirectory => Path.Combine(Environment.CurrentDirectory, "BenchmarkDotNet.Artifacts", "results");

    public static string Describe()
    {
        string cpu = OperatingSystem.IsLinux()
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown"
            : "unknown";
        string load = OperatingSystem.IsLinux() ? File.ReadAllText("/proc/loadavg").Trim() : "n/a";
        return $"Date (UTC): {DateTime.UtcNow:yyyy-MM-dd HH:mm}; CPU: {cpu}; logical cores: {Environment.ProcessorCount}; " +
               $"torch.get_num_threads(): {get_num_threads()}; torch.get_num_interop_threads(): {get_num_interop_threads()}; " +
               $"TorchSharp {typeof(TorchSharp.torch).Assembly.GetName().Version}; load average at start: {load}";
    }
}
