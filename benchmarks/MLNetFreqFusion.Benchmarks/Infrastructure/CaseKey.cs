using System.Reflection;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Running;

namespace MLNetFreqFusion.Benchmarks.Infrastructure;

/// <summary>
/// One string per benchmark case, built the same way inside a benchmark instance ([GlobalSetup] knows its parameter
/// values, not its case) and from a <see cref="BenchmarkCase"/> in a summary column, so setup-time measurements
/// (peak memory, FLOP counts) reach the summary. Benchmarks run in-process, so a static dictionary carries them.
/// </summary>
static class CaseKey
{
    public static string Of(object benchmark, string method)
    {
        const BindingFlags Public = BindingFlags.Public | BindingFlags.Instance;
        static bool IsParameter(MemberInfo m) =>
            m.GetCustomAttributes().Any(a => a is ParamsAttribute or ParamsSourceAttribute or ParamsAllValuesAttribute);
        // The in-process toolchain runs an emitted subclass; the key needs the class that declares the benchmarks.
        var type = benchmark.GetType();
        while (type.BaseType is not null && !type.GetMethods(Public | BindingFlags.DeclaredOnly).Any(m => m.IsDefined(typeof(BenchmarkAttribute))))
            type = type.BaseType;
        var parameters = type.GetProperties(Public).Where(IsParameter).Select(p => (p.Name, Text(p.GetValue(benchmark))))
            .Concat(type.GetFields(Public).Where(IsParameter).Select(f => (f.Name, Text(f.GetValue(benchmark)))));
        return Format(type.Name, method, parameters);
    }

    public static string Of(BenchmarkCase benchmarkCase) =>
        Format(benchmarkCase.Descriptor.Type.Name, benchmarkCase.Descriptor.WorkloadMethod.Name,
            benchmarkCase.Parameters.Items.Select(p => (p.Name, Text(p.Value))));

    static string Text(object? value) => value?.ToString() ?? "null";

    static string Format(string type, string method, IEnumerable<(string Name, string Value)> parameters) =>
        $"{type}.{method}({string.Join(", ", parameters.OrderBy(p => p.Name, StringComparer.Ordinal).Select(p => $"{p.Name}={p.Value}"))})";
}
