using BenchmarkDotNet.Attributes;
using MLNetFreqFusion.Benchmarks.Infrastructure;
using MLNetFreqFusion.Networks;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Benchmarks;

/// <summary>A backbone and decoder pair.</summary>
public sealed record NetworkCase(SegmentationBackbone Backbone, SegmentationDecoder Decoder)
{
    /// <inheritdoc />
    public override string ToString() => $"{Backbone}+{Decoder}";
}

/// <summary>
/// Issue 9, item 3: whole networks at 512×512 with 150 classes (ADE20K), random weights — ResNet-18 and MiT-B1 with the
/// FreqFusion concat head against SegFormer's all-MLP bilinear head, and the FreqFusion FPN head against the bilinear
/// FPN head on ResNet-18. Inference is batch 1 in eval mode without autograd; a training step is batch 4: forward,
/// cross-entropy (ignore 255), backward and an AdamW step.
/// </summary>
public class NetworkBenchmarks
{
    const int Size = 512, Classes = 150, TrainBatch = 4;
    SegmentationNetwork _network = null!;
    AdamW _optimizer = null!;
    Tensor _image = null!, _batch = null!, _labels = null!;

    /// <summary>The network.</summary>
    [ParamsSource(nameof(Networks))]
    public NetworkCase Network { get; set; } = null!;

    /// <summary>The pairs of issue 9.</summary>
    public static IEnumerable<NetworkCase> Networks =>
    [
        new(SegmentationBackbone.ResNet18, SegmentationDecoder.FreqFusion),
        new(SegmentationBackbone.ResNet18, SegmentationDecoder.Bilinear),
        new(SegmentationBackbone.MiTB1, SegmentationDecoder.FreqFusion),
        new(SegmentationBackbone.MiTB1, SegmentationDecoder.Bilinear),
        new(SegmentationBackbone.ResNet18, SegmentationDecoder.FreqFusionFpn),
        new(SegmentationBackbone.ResNet18, SegmentationDecoder.BilinearFpn),
    ];

    /// <summary>Builds the network, optimiser and random 0..255 images and labels; counts the inference FLOPs.</summary>
    [GlobalSetup]
    public void Setup()
    {
        manual_seed(9);
        _network = BenchmarkNetwork.Create(Network.Backbone, Network.Decoder, Classes);
        _optimizer = optim.AdamW(_network.parameters(), lr: 6e-5);
        _image = rand(1, 3, Size, Size) * 255;
        _batch = rand(TrainBatch, 3, Size, Size) * 255;
        _labels = randint(0, Classes, [TrainBatch, Size, Size], dtype: int64);
        _network.eval();
        Flops.Record(this, nameof(Inference), FlopCounter.CountForward(_network, () => _network.call(_image).Dispose()));
    }

    /// <summary>Probes the peak memory of <see cref="Inference"/>, then releases everything.</summary>
    [GlobalCleanup(Target = nameof(Inference))]
    public void CleanupInference()
    {
        PeakMemory.Probe(this, nameof(Inference), Inference);
        Cleanup();
    }

    /// <summary>Probes the peak memory of <see cref="TrainingStep"/>, then releases everything.</summary>
    [GlobalCleanup(Target = nameof(TrainingStep))]
    public void CleanupTrainingStep()
    {
        PeakMemory.Probe(this, nameof(TrainingStep), TrainingStep);
        Cleanup();
    }

    void Cleanup()
    {
        _optimizer.Dispose();
        _network.Dispose();
        foreach (var t in new[] { _image, _batch, _labels })
            t.Dispose();
    }

    /// <summary>Batch 1, eval mode, no autograd: logits [1, 150, 512, 512].</summary>
    [Benchmark]
    public void Inference()
    {
        _network.eval();
        using (var scope = NewDisposeScope())
        using (var noGrad = no_grad())
            _ = _network.call(_image);
        Native.FinalizedScalars.AfterNetworkCall(_image);
    }

    /// <summary>Batch 4: forward, cross-entropy, backward, AdamW step.</summary>
    [Benchmark]
    public void TrainingStep() => BenchmarkNetwork.TrainingStep(_network, _optimizer, _batch, _labels);
}
