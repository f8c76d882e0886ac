using BenchmarkDotNet.Attributes;
using MLNetFreqFusion.Benchmarks.Infrastructure;
using MLNetFreqFusion.Networks;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Benchmarks;

/// <summary>
/// Issue 9, item 5: achieved GFLOP/s of a network forward (ResNet-18 with the FreqFusion head and with the bilinear
/// head, 512×512, batch 1, eval, no autograd) against the machine's float32 matmul peak measured in the same run
/// (2048×2048 · 2048×2048, 2·2048³ FLOP). The network's FLOPs are those of its convolutions and linear layers
/// (<see cref="FlopCounter"/>), so its share of the peak is a lower bound.
/// </summary>
public class ComputeEfficiencyBenchmarks
{
    const int MatmulSize = 2048;
    Tensor _a = null!, _b = null!, _image = null!;
    SegmentationNetwork _freqFusion = null!, _bilinear = null!;

    /// <summary>Random operands and both networks; records the FLOP counts.</summary>
    [GlobalSetup]
    public void Setup()
    {
        manual_seed(9);
        _a = randn(MatmulSize, MatmulSize);
        _b = randn(MatmulSize, MatmulSize);
        _image = rand(1, 3, 512, 512) * 255;
        _freqFusion = Build(SegmentationDecoder.FreqFusion);
        _bilinear = Build(SegmentationDecoder.Bilinear);
        Flops.Record(this, nameof(MatmulPeak), 2.0 * MatmulSize * MatmulSize * MatmulSize, isPeak: true);
        Flops.Record(this, nameof(ResNet18FreqFusionForward), FlopCounter.CountForward(_freqFusion, () => _freqFusion.call(_image).Dispose()));
        Flops.Record(this, nameof(ResNet18BilinearForward), FlopCounter.CountForward(_bilinear, () => _bilinear.call(_image).Dispose()));
    }

    static SegmentationNetwork Build(SegmentationDecoder decoder)
    {
        var network = BenchmarkNetwork.Create(SegmentationBackbone.ResNet18, decoder, 150);
        network.eval();
        return network;
    }

    /// <summary>Releases operands and networks.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { _a, _b, _image })
            t.Dispose();
        _freqFusion.Dispose();
        _bilinear.Dispose();
    }

    /// <summary>The float32 matmul that stands for the machine's attainable peak.</summary>
    [Benchmark]
    public void MatmulPeak()
    {
        using var product = _a.matmul(_b);
    }

    /// <summary>ResNet-18 + FreqFusion head, batch 1 at 512×512.</summary>
    [Benchmark]
    public void ResNet18FreqFusionForward() => Forward(_freqFusion);

    /// <summary>ResNet-18 + SegFormer MLP head, batch 1 at 512×512.</summary>
    [Benchmark]
    public void ResNet18BilinearForward() => Forward(_bilinear);

    void Forward(SegmentationNetwork network)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        _ = network.call(_image);
    }
}
