using BenchmarkDotNet.Attributes;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using MLNetFreqFusion.Benchmarks.Infrastructure;
using MLNetFreqFusion.Networks;
using MLNetFreqFusion.Onnx;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Benchmarks;

/// <summary>Which runtime executes the network.</summary>
public enum InferenceRuntime
{
    /// <summary>The TorchSharp module's forward (libtorch).</summary>
    TorchSharp,
    /// <summary>The exported ONNX graph in ONNX Runtime (CPU execution provider, all graph optimisations).</summary>
    OnnxRuntime,
}

/// <summary>
/// Issue 17: per-image inference at 512×512 (150 classes, random weights, batch 1) of ResNet-18 + FreqFusion and
/// MiT-B1 + FreqFusion, TorchSharp against the exported graph in ONNX Runtime, both on the same number of threads
/// (libtorch's intra-op thread count, set with <c>--torch-threads</c>, sizes ONNX Runtime's intra-op pool too).
/// </summary>
public class OnnxRuntimeBenchmarks
{
    const int Size = 512, Classes = 150;
    SegmentationNetwork _network = null!;
    InferenceSession _session = null!;
    Tensor _image = null!;
    float[] _pixels = null!;

    /// <summary>The network.</summary>
    [ParamsSource(nameof(Networks))]
    public NetworkCase Network { get; set; } = null!;

    /// <summary>The runtime.</summary>
    [Params(InferenceRuntime.TorchSharp, InferenceRuntime.OnnxRuntime)]
    public InferenceRuntime Runtime { get; set; }

    /// <summary>The two networks of issue 17.</summary>
    public static IEnumerable<NetworkCase> Networks =>
    [
        new(SegmentationBackbone.ResNet18, SegmentationDecoder.FreqFusion),
        new(SegmentationBackbone.MiTB1, SegmentationDecoder.FreqFusion),
    ];

    /// <summary>Builds the network and a random 0..255 image; exports the graph and opens a session for ONNX Runtime.</summary>
    [GlobalSetup]
    public void Setup()
    {
        manual_seed(17);
        _network = BenchmarkNetwork.Create(Network.Backbone, Network.Decoder, Classes);
        _network.eval();
        _image = rand(1, 3, Size, Size) * 255;
        _pixels = _image.data<float>().ToArray();
        if (Runtime == InferenceRuntime.OnnxRuntime)
        {
            using var options = new SessionOptions { IntraOpNumThreads = get_num_threads(), InterOpNumThreads = 1 };
            _session = new InferenceSession(OnnxNetworkEmitter.Emit(_network, null).ToByteArray(), options);
        }
    }

    /// <summary>Releases the network and the session.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _session?.Dispose();
        _session = null!;
        _network.Dispose();
        _image.Dispose();
    }

    /// <summary>One image's logits.</summary>
    [Benchmark]
    public void Inference()
    {
        if (Runtime == InferenceRuntime.TorchSharp)
        {
            using var noGrad = no_grad();
            _network.call(_image).Dispose();
            return;
        }
        using var input = OrtValue.CreateTensorValueFromMemory(_pixels, [1, 3, Size, Size]);
        using var runOptions = new RunOptions();
        using var outputs = _session.Run(runOptions, [OnnxNetworkEmitter.InputName], [input], [OnnxNetworkEmitter.LogitsName]);
    }
}
