using BenchmarkDotNet.Attributes;
using MLNetFreqFusion.Benchmarks.Infrastructure;
using MLNetFreqFusion.Fusion;
using MLNetFreqFusion.Operators;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Benchmarks;

/// <summary>Which CARAFE formulation a benchmark runs.</summary>
public enum CarafeFormulation
{
    /// <summary><see cref="Carafe.Lean"/>: in float32 on AVX2 hosts <see cref="CarafeLoops"/> (docs/benchmarks.md §14), otherwise the ATen formulations.</summary>
    Lean,
    /// <summary><see cref="Carafe.Unfold"/>: the reference's unfold, nearest-upsample and weight.</summary>
    Unfold,
}

/// <summary>One CARAFE problem size: C channels at h×w, window k, up factor.</summary>
public sealed record CarafeSize(int Channels, int Height, int Width, int KernelSize, int UpFactor)
{
    /// <inheritdoc />
    public override string ToString() =>
        $"C{Channels} {Height}x{Width}->{Height * UpFactor}x{Width * UpFactor} k{KernelSize} up{UpFactor}";
}

/// <summary>
/// Issue 9, item 1: CARAFE lean vs unfold, C = 128, k = 5 with up 2 (the ALPF up-sampling) and k = 3 with up 1 (the
/// AHPF high-pass), reflect padding as in FreqFusion. Forward alone (inference: no autograd graph) and forward plus
/// backward with gradients for both the features and the kernels.
/// </summary>
public class CarafeBenchmarks : ForwardBackwardBenchmarks
{
    Tensor _x = null!, _kernels = null!, _outputGrad = null!;

    /// <summary>The CARAFE formulation under test.</summary>
    [Params(CarafeFormulation.Lean, CarafeFormulation.Unfold)]
    public CarafeFormulation Formulation { get; set; }

    /// <summary>The problem size.</summary>
    [ParamsSource(nameof(Sizes))]
    public CarafeSize Size { get; set; } = null!;

    /// <summary>The sizes of issue 9: 64² and 128² sources at k = 5, up 2, and the same outputs at k = 3, up 1.</summary>
    public static IEnumerable<CarafeSize> Sizes =>
    [
        new(128, 64, 64, 5, 2),
        new(128, 128, 128, 5, 2),
        new(128, 128, 128, 3, 1),
        new(128, 256, 256, 3, 1),
    ];

    /// <summary>Random features, softmax-normalised kernels and an output gradient.</summary>
    [GlobalSetup]
    public void Setup()
    {
        manual_seed(9);
        var s = Size;
        long outH = (long)s.Height * s.UpFactor, outW = (long)s.Width * s.UpFactor;
        _x = randn(1, s.Channels, s.Height, s.Width);
        using (var logits = randn(1, s.KernelSize * s.KernelSize, outH, outW))
            _kernels = logits.softmax(1);
        _outputGrad = randn(1, s.Channels, outH, outW);
    }

    /// <inheritdoc />
    protected override void Release()
    {
        _x.Dispose();
        _kernels.Dispose();
        _outputGrad.Dispose();
    }

    /// <summary>Reassembly without autograd.</summary>
    [Benchmark]
    public override void Forward()
    {
        using var scope = NewDisposeScope();
        Run(_x, _kernels);
    }

    /// <summary>Reassembly and its backward pass into features and kernels.</summary>
    [Benchmark]
    public override void ForwardBackward()
    {
        using var scope = NewDisposeScope();
        var x = _x.detach().requires_grad_();
        var kernels = _kernels.detach().requires_grad_();
        // Fresh leaves each call: their gradients are allocated, not accumulated, and freed with the scope.
        Run(x, kernels).backward([_outputGrad]);
    }

    Tensor Run(Tensor x, Tensor kernels) => Formulation == CarafeFormulation.Lean
        ? Carafe.Lean(x, kernels, Size.KernelSize, Size.UpFactor, CarafePadding.Reflect)
        : Carafe.Unfold(x, kernels, Size.KernelSize, Size.UpFactor, CarafePadding.Reflect);
}
