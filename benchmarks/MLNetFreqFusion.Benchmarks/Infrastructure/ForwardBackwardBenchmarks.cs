using BenchmarkDotNet.Attributes;

namespace MLNetFreqFusion.Benchmarks.Infrastructure;

/// <summary>
/// The harness of the benchmarks that time an operation on a forward pass without autograd and on a forward plus
/// backward pass: each operation's peak-memory probe, which runs after that operation's timed iterations and before
/// the benchmark releases its tensors.
/// </summary>
public abstract class ForwardBackwardBenchmarks
{
    /// <summary>The operation without autograd.</summary>
    public abstract void Forward();

    /// <summary>The operation and its backward pass.</summary>
    public abstract void ForwardBackward();

    /// <summary>Probes the peak memory of <see cref="Forward"/>, then releases the benchmark's tensors.</summary>
    [GlobalCleanup(Target = nameof(Forward))]
    public void CleanupForward()
    {
        PeakMemory.Probe(this, nameof(Forward), Forward);
        Release();
    }

    /// <summary>Probes the peak memory of <see cref="ForwardBackward"/>, then releases the benchmark's tensors.</summary>
    [GlobalCleanup(Target = nameof(ForwardBackward))]
    public void CleanupForwardBackward()
    {
        PeakMemory.Probe(this, nameof(ForwardBackward), ForwardBackward);
        Release();
    }

    /// <summary>Disposes what [GlobalSetup] created.</summary>
    protected abstract void Release();
}
