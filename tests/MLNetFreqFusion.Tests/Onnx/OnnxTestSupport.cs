using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Networks;
using MLNetFreqFusion.Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Onnx;

/// <summary>Tiny networks of every backbone layout, and one ONNX Runtime call.</summary>
internal static class OnnxTestSupport
{
    /// <summary>
    /// The layout of <paramref name="backbone"/> (block type, stage depths, attention heads, input convention) at a
    /// fraction of its width: ResNets of base width 8, Mix Transformers of widths 8-16-40-64 (head size 8).
    /// </summary>
    public static Backbone TinyBackbone(SegmentationBackbone backbone)
    {
        MixTransformer TinyMiT(MixTransformerConfig config) =>
            new(new MixTransformerConfig([8, 16, 40, 64], config.Depths, config.NumAttentionHeads), freezeBatchNorm: false);
        return backbone switch
        {
            SegmentationBackbone.ResNet18 => new ResNet(false, [2, 2, 2, 2], 8, false, InputNormalization.ImageNet),
            SegmentationBackbone.ResNet34 => new ResNet(false, [3, 4, 6, 3], 8, false, InputNormalization.ImageNet),
            SegmentationBackbone.ResNet50 => new ResNet(true, [3, 4, 6, 3], 8, false, InputNormalization.ImageNet),
            SegmentationBackbone.ResNet101 => new ResNet(true, [3, 4, 23, 3], 8, false, InputNormalization.ImageNet),
            SegmentationBackbone.ResNet18ImageNet => new ResNet(false, ResNet18OnnxWeights.Depths, 8, false, InputNormalization.MLNetResNet18),
            SegmentationBackbone.MiTB0 => TinyMiT(MixTransformerConfig.B0),
            SegmentationBackbone.MiTB1 => TinyMiT(MixTransformerConfig.B1),
            SegmentationBackbone.MiTB2 => TinyMiT(MixTransformerConfig.B2),
            SegmentationBackbone.MiTB3 => TinyMiT(MixTransformerConfig.B3),
            SegmentationBackbone.MiTB4 => TinyMiT(MixTransformerConfig.B4),
            SegmentationBackbone.MiTB5 => TinyMiT(MixTransformerConfig.B5),
            _ => throw new ArgumentOutOfRangeException(nameof(backbone)),
        };
    }

    /// <summary>
    /// A tiny float64 network in eval mode whose weights are all perturbed and whose batch norms hold the statistics of a
    /// random batch, so that folding, kernel normalisation and the offsets are exercised (at initialisation FreqFusion's
    /// kernels are nearly uniform and batch norm is an identity) while activations keep a trained network's scale.
    /// </summary>
    public static SegmentationNetwork TinyNetwork(SegmentationBackbone backbone, SegmentationDecoder decoder, int classes, int seed)
    {
        torch.manual_seed(seed);
        var architecture = new SegmentationArchitecture { Backbone = backbone, Decoder = decoder, NumberOfClasses = classes, DecoderChannels = 16 };
        var network = SegmentationNetwork.Assemble(TinyBackbone(backbone), architecture, 16);
        using (torch.no_grad())
        {
            foreach (var (_, parameter) in network.named_parameters())
                parameter.add_(torch.randn_like(parameter) * 0.05);
            foreach (var (_, module) in network.named_modules())
            {
                if (module is BatchNorm2d bn)
                    bn.momentum = 1.0;
            }
        }
        // In float64, where libtorch's convolutions are right (see ReferenceLogits); float32 calibration sometimes
        // left NaN statistics.
        network.to(ScalarType.Float64);
        network.train();
        using (var calibration = torch.rand(2, 3, 64, 96) * 255)
            Forward64(network, calibration).Dispose();
        // Trained deep ResNets keep their residual branches small (torchvision's zero_init_residual starts them at
        // zero); with unit-variance branches 33 bottlenecks deep, float32 rounding alone exceeds the tolerance.
        var modules = network.named_modules().ToDictionary(m => m.name, m => m.module);
        using (torch.no_grad())
        {
            foreach (var (name, module) in modules)
            {
                bool lastOfBlock = name.EndsWith(".bn3", StringComparison.Ordinal)
                    || (name.EndsWith(".bn2", StringComparison.Ordinal) && !modules.ContainsKey(name[..^4] + ".conv3"));
                if (lastOfBlock && name.StartsWith("backbone.layer", StringComparison.Ordinal) && module is BatchNorm2d bn)
                {
                    bn.weight!.mul_(0.2);
                    bn.bias!.mul_(0.2);
                }
            }
        }
        network.eval();
        return network;
    }

    /// <summary>
    /// <see cref="SegmentationNetwork.forward"/> step by step in float64 (the network is converted): libtorch's
    /// float32 3×3 convolutions return wrong values for some channel counts and sizes (in-channels 24, 40, 56, 104 at
    /// 16×16 or 32×32 differ from float64 by ~0.5), so the float32 forward is no reference for tiny widths.
    /// </summary>
    public static Tensor ReferenceLogits(SegmentationNetwork network, Tensor rgb)
    {
        network.eval();
        return Forward64(network, rgb);
    }

    /// <summary>The network's forward in float64, in its current mode.</summary>
    static Tensor Forward64(SegmentationNetwork network, Tensor rgb)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        network.to(ScalarType.Float64);
        var x = rgb.to(ScalarType.Float64);
        long height = x.shape[2], width = x.shape[3], divisor = SegmentationNetwork.SizeDivisor;
        var normalized = network.BackboneModule.Normalization.Apply(x);
        var padded = SegmentationNetwork.MirrorPad(normalized, (divisor - width % divisor) % divisor, (divisor - height % divisor) % divisor);
        var features = network.BackboneModule.call(padded);
        var stages = network.Architecture.InputStages;
        var logits = network.DecodeHeadModule.call(stages.Select(s => features[s]).ToArray());
        logits = nn.functional.interpolate(logits, [padded.shape[2], padded.shape[3]], mode: InterpolationMode.Bilinear, align_corners: false);
        return scope.MoveToOuter(logits[.., .., ..(int)height, ..(int)width].to(ScalarType.Float32).contiguous());
    }

    public static byte[] Export(SegmentationNetwork network) => OnnxNetworkEmitter.Emit(network, null).ToByteArray();

    public static InferenceSession Session(byte[] model)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1 };
        return new InferenceSession(model, options);
    }

    /// <summary>Runs the graph on float32 RGB [N,3,H,W]; returns the logits and the labels with their shapes.</summary>
    public static (float[] Logits, long[] LogitsShape, long[] Labels, long[] LabelsShape) Run(InferenceSession session, float[] rgb, long[] shape)
    {
        using var input = OrtValue.CreateTensorValueFromMemory(rgb, shape);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, [OnnxNetworkEmitter.InputName], [input], [OnnxNetworkEmitter.LogitsName, OnnxNetworkEmitter.LabelsName]);
        var logits = outputs[0];
        var labels = outputs[1];
        return (logits.GetTensorDataAsSpan<float>().ToArray(), logits.GetTensorTypeAndShape().Shape,
            labels.GetTensorDataAsSpan<long>().ToArray(), labels.GetTensorTypeAndShape().Shape);
    }

    public static float[] ToArray(Tensor t) => t.detach().cpu().contiguous().data<float>().ToArray();
}
