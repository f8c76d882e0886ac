using BenchmarkDotNet.Attributes;
using MLNetFreqFusion.Benchmarks.Infrastructure;
using MLNetFreqFusion.Fusion;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Benchmarks;

/// <summary>One FreqFusion stage: hr channels at H×W fused with lr channels at H/2×W/2.</summary>
public sealed record FusionStage(string Name, int HrChannels, int LrChannels, int HrSize)
{
    /// <summary>The reference heads' compression: (hr + lr) / 4 channels.</summary>
    public int CompressedChannels => (HrChannels + LrChannels) / 4;

    /// <inheritdoc />
    public override string ToString() => $"{Name} hr{HrChannels}@{HrSize} lr{LrChannels}@{HrSize / 2}";
}

/// <summary>
/// Issue 9, item 2: one FreqFusion stage at the SegNeXt head's sizes for a 512×512 input, resampling on, compressed
/// channels (hr + lr) / 4 — the 1/16 stage (hr 160 ch, lr 256 ch at 1/32), the 1/8 stage (hr 64 ch, lr 416 = 160 + 256
/// concatenated ch) and the 1/4 stage of a four-stage head (hr 32 ch, lr 480 = 64 + 416 ch). Batch 1. Forward in eval
/// mode without autograd; forward plus backward in training mode with gradients into both outputs and the parameters.
/// The module always uses the lean CARAFE; the two formulations are compared at operator level (<see cref="CarafeBenchmarks"/>).
/// </summary>
public class FreqFusionStageBenchmarks : ForwardBackwardBenchmarks
{
    FreqFusion _module = null!;
    Tensor _hr = null!, _lr = null!, _hrGrad = null!, _lrGrad = null!;

    /// <summary>The stage.</summary>
    [ParamsSource(nameof(Stages))]
    public FusionStage Stage { get; set; } = null!;

    /// <summary>
    /// SegNeXt-T's widths (32-64-160-256) at a 512×512 input, and the small case issue 16 measured the authors' module
    /// at (64 channels each, hr 64×64; benchmarks/baseline/freqfusion_module.py times their module at all four).
    /// </summary>
    public static IEnumerable<FusionStage> Stages =>
    [
        new("issue 16", 64, 64, 64),
        new("1/16", 160, 256, 32),
        new("1/8", 64, 416, 64),
        new("1/4", 32, 480, 128),
    ];

    /// <summary>Builds the module and random inputs.</summary>
    [GlobalSetup]
    public void Setup()
    {
        manual_seed(9);
        var s = Stage;
        _module = new FreqFusion(new FreqFusionOptions
        {
            HrChannels = s.HrChannels,
            LrChannels = s.LrChannels,
            CompressedChannels = s.CompressedChannels,
            FeatureResample = true,
        });
        _hr = randn(1, s.HrChannels, s.HrSize, s.HrSize);
        _lr = randn(1, s.LrChannels, s.HrSize / 2, s.HrSize / 2);
        _hrGrad = randn(1, s.HrChannels, s.HrSize, s.HrSize);
        _lrGrad = randn(1, s.LrChannels, s.HrSize, s.HrSize);
    }

    /// <inheritdoc />
    protected override void Release()
    {
        _module.Dispose();
        foreach (var t in new[] { _hr, _lr, _hrGrad, _lrGrad })
            t.Dispose();
    }

    /// <summary>Inference: eval mode, no autograd graph.</summary>
    [Benchmark]
    public override void Forward()
    {
        _module.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        _ = _module.call(_hr, _lr);
    }

    /// <summary>Training: forward, then backward into hr, lr and every parameter.</summary>
    [Benchmark]
    public override void ForwardBackward()
    {
        _module.train();
        _module.zero_grad();
        using var scope = NewDisposeScope();
        var hr = _hr.detach().requires_grad_();
        var lr = _lr.detach().requires_grad_();
        var (_, hrOut, lrOut) = _module.call(hr, lr);
        autograd.backward([hrOut, lrOut], [_hrGrad, _lrGrad]);
    }
}
