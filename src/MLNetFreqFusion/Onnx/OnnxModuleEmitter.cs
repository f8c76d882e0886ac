using MLNetFreqFusion.Backbones;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Onnx;

/// <summary>
/// Emits the layers every network part shares (convolutions with folded batch norm, linear layers, layer and group
/// norms, GELU) and the two backbone families, reading weights and hyper-parameters from the network's modules by
/// their state-dict names. The eval-mode forward is what is exported: batch norms use their running statistics,
/// dropout and stochastic depth are identities.
/// </summary>
internal class OnnxModuleEmitter
{
    protected readonly OnnxGraphBuilder B;
    readonly Dictionary<string, nn.Module> _modules;
    readonly Dictionary<string, Tensor> _buffers;
    // A module called several times (FreqFusion's kernel encoders) keeps one copy of its weights in the file.
    readonly Dictionary<string, (string Weight, string? Bias)> _convWeights = new();
    readonly Dictionary<string, (string Weight, string? Bias)> _linearWeights = new();

    protected OnnxModuleEmitter(OnnxGraphBuilder builder, nn.Module root)
    {
        B = builder;
        _modules = root.named_modules().ToDictionary(m => m.name, m => m.module);
        _buffers = root.named_buffers().ToDictionary(b => b.name, b => b.buffer);
    }

    protected bool Has(string name) => _modules.ContainsKey(name);

    protected T Module<T>(string name) where T : nn.Module =>
        _modules.TryGetValue(name, out var module) && module is T typed
            ? typed
            : throw new InvalidOperationException($"ONNX export: the network has no {typeof(T).Name} named '{name}'; the exporter does not know this network layout.");

    protected Tensor Buffer(string name) =>
        _buffers.TryGetValue(name, out var buffer)
            ? buffer
            : throw new InvalidOperationException($"ONNX export: the network has no buffer named '{name}'.");

    protected static float[] Values(Tensor t)
    {
        using var scope = NewDisposeScope();
        return t.detach().cpu().to(ScalarType.Float32).contiguous().data<float>().ToArray();
    }

    /// <summary>A 2-D convolution, with the eval-mode batch norm <paramref name="batchNorm"/> folded into its weights.</summary>
    protected string Conv(string x, string conv, string? batchNorm = null)
    {
        var module = Module<Conv2d>(conv);
        if (module.padding_mode != PaddingModes.Zeros)
            throw new NotSupportedException($"ONNX export: convolution '{conv}' pads with {module.padding_mode}; only zero padding is exported.");
        var shape = module.weight!.shape;
        var key = conv + "|" + batchNorm;
        if (!_convWeights.TryGetValue(key, out var names))
        {
            var weight = Values(module.weight);
            var bias = module.bias is null ? null : Values(module.bias);
            if (batchNorm is not null)
                (weight, bias) = FoldBatchNorm(weight, bias, Module<BatchNorm2d>(batchNorm), batchNorm);
            names = (B.Weights(conv + ".weight", weight, shape), bias is null ? null : B.Weights(conv + ".bias", bias, shape[0]));
            _convWeights[key] = names;
        }
        var padding = module.padding ?? throw new NotSupportedException($"ONNX export: convolution '{conv}' uses symbolic padding ({module.padding_type}).");
        long[] kernel = [shape[2], shape[3]];
        return B.Conv(x, names.Weight, names.Bias, kernel, module.stride, [padding[0], padding[1], padding[0], padding[1]], module.dilation, module.groups);
    }

    /// <summary>w' = w·γ/√(σ²+ε) per output channel, b' = (b − μ)·γ/√(σ²+ε) + β, computed in double.</summary>
    static (float[] Weight, float[] Bias) FoldBatchNorm(float[] weight, float[]? bias, BatchNorm2d bn, string name)
    {
        if (bn.running_mean is null || bn.running_var is null)
            throw new NotSupportedException($"ONNX export: batch norm '{name}' keeps no running statistics, so it has no eval-mode form to fold.");
        var mean = Values(bn.running_mean);
        var variance = Values(bn.running_var);
        var gamma = bn.weight is null ? null : Values(bn.weight);
        var beta = bn.bias is null ? null : Values(bn.bias);
        int channels = mean.Length, perChannel = weight.Length / channels;
        var folded = new float[weight.Length];
        var foldedBias = new float[channels];
        for (int c = 0; c < channels; c++)
        {
            double factor = (gamma?[c] ?? 1.0) / Math.Sqrt(variance[c] + bn.eps);
            for (int i = 0; i < perChannel; i++)
                folded[c * perChannel + i] = (float)(weight[c * perChannel + i] * factor);
            foldedBias[c] = (float)(((bias?[c] ?? 0.0) - mean[c]) * factor + (beta?[c] ?? 0.0));
        }
        return (folded, foldedBias);
    }

    /// <summary>torch's Linear on the last axis: x·Wᵀ + b.</summary>
    protected string Linear(string x, string linear)
    {
        var names = LinearWeights(linear, asConvolution: false);
        var y = B.Node("MatMul", [x, names.Weight]);
        return names.Bias is null ? y : B.Add(y, names.Bias);
    }

    /// <summary>A Linear applied to every pixel of an NCHW map, emitted as the equivalent 1×1 convolution.</summary>
    protected string LinearAsConv(string x, string linear)
    {
        var names = LinearWeights(linear, asConvolution: true);
        return B.Conv(x, names.Weight, names.Bias, [1, 1], [1, 1], [0, 0, 0, 0], [1, 1], 1);
    }

    (string Weight, string? Bias) LinearWeights(string linear, bool asConvolution)
    {
        var key = linear + (asConvolution ? "|conv" : "");
        if (_linearWeights.TryGetValue(key, out var names))
            return names;
        var module = Module<Linear>(linear);
        long outputs = module.weight!.shape[0], inputs = module.weight.shape[1];
        var weight = asConvolution
            ? B.Weights(linear + ".weight", Values(module.weight), outputs, inputs, 1, 1)
            : B.Weights(linear + ".weight", Values(module.weight.t()), inputs, outputs);
        var bias = module.bias is null ? null : B.Weights(linear + ".bias", Values(module.bias), outputs);
        return _linearWeights[key] = (weight, bias);
    }

    /// <summary>torch's LayerNorm over the last axis.</summary>
    protected string LayerNorm(string x, string norm)
    {
        var module = Module<LayerNorm>(norm);
        long channels = module.weight!.shape[0];
        var scale = B.Weights(norm + ".weight", Values(module.weight), channels);
        var bias = B.Weights(norm + ".bias", Values(module.bias!), channels);
        return B.Node("LayerNormalization", [x, scale, bias], ("axis", -1), ("epsilon", (float)module.eps));
    }

    /// <summary>torch's GroupNorm on NCHW: InstanceNormalization of the [N, groups, rest] view, then the per-channel affine.</summary>
    protected string GroupNorm(string x, string norm)
    {
        var module = Module<GroupNorm>(norm);
        long channels = module.weight!.shape[0], groups = module.num_groups;
        var ones = B.Weights(norm + ".unit_scale", Enumerable.Repeat(1f, (int)groups).ToArray(), groups);
        var zeros = B.Weights(norm + ".zero_shift", new float[groups], groups);
        var grouped = B.Reshape(x, 0, groups, -1);
        var normalised = B.Node("InstanceNormalization", [grouped, ones, zeros], ("epsilon", (float)module.eps));
        var y = B.Reshape(normalised, B.Shape(x));
        y = B.Mul(y, B.Weights(norm + ".weight", Values(module.weight), channels, 1, 1));
        return B.Add(y, B.Weights(norm + ".bias", Values(module.bias!), channels, 1, 1));
    }

    /// <summary>Exact (erf) GELU, torch's default: x·(1 + erf(x/√2))/2.</summary>
    protected string Gelu(string x)
    {
        var erf = B.Node("Erf", [B.Div(x, B.Scalar((float)Math.Sqrt(2.0)))]);
        return B.Mul(B.Mul(x, B.Add(erf, B.Scalar(1f))), B.Scalar(0.5f));
    }

    // ---- Backbones ----

    /// <summary>The four feature maps (strides 4…32) of the backbone under <paramref name="prefix"/>.</summary>
    protected string[] Backbone(string x, Backbone backbone, string prefix) => backbone switch
    {
        ResNet => ResNetFeatures(x, prefix),
        MixTransformer => MixTransformerFeatures(x, prefix + ".encoder"),
        _ => throw new NotSupportedException($"ONNX export: the backbone {backbone.GetType().Name} has no ONNX emitter."),
    };

    string[] ResNetFeatures(string x, string prefix)
    {
        x = B.Relu(Conv(x, prefix + ".conv1", prefix + ".bn1"));
        x = B.Node("MaxPool", [x], ("kernel_shape", new long[] { 3, 3 }), ("strides", new long[] { 2, 2 }), ("pads", new long[] { 1, 1, 1, 1 }));
        var features = new string[4];
        for (int stage = 0; stage < 4; stage++)
        {
            for (int i = 0; Has($"{prefix}.layer{stage + 1}.{i}"); i++)
            {
                var block = $"{prefix}.layer{stage + 1}.{i}";
                var y = B.Relu(Conv(x, block + ".conv1", block + ".bn1"));
                if (Has(block + ".conv3"))
                {
                    y = B.Relu(Conv(y, block + ".conv2", block + ".bn2"));
                    y = Conv(y, block + ".conv3", block + ".bn3");
                }
                else
                {
                    y = Conv(y, block + ".conv2", block + ".bn2");
                }
                var identity = Has(block + ".downsample") ? Conv(x, block + ".downsample.0", block + ".downsample.1") : x;
                x = B.Relu(B.Add(y, identity));
            }
            features[stage] = x;
        }
        return features;
    }

    string[] MixTransformerFeatures(string x, string prefix)
    {
        var features = new string[4];
        for (int stage = 0; stage < 4; stage++)
        {
            var embedding = $"{prefix}.patch_embeddings.{stage}";
            var map = Conv(x, embedding + ".proj");
            // [N, C, h, w] of this stage: every token ↔ map conversion of the stage reshapes to it.
            var mapShape = B.Shape(map);
            var tokens = LayerNorm(ToTokens(map), embedding + ".layer_norm");
            for (int j = 0; Has($"{prefix}.block.{stage}.{j}"); j++)
            {
                var layer = $"{prefix}.block.{stage}.{j}";
                tokens = B.Add(tokens, EfficientAttention(LayerNorm(tokens, layer + ".layer_norm_1"), layer + ".attention", mapShape));
                tokens = B.Add(tokens, MixFfn(LayerNorm(tokens, layer + ".layer_norm_2"), layer + ".mlp", mapShape));
            }
            tokens = LayerNorm(tokens, $"{prefix}.layer_norm.{stage}");
            x = B.Reshape(B.Transpose(tokens, 0, 2, 1), mapShape);
            features[stage] = x;
        }
        return features;
    }

    /// <summary>[N, C, h, w] → [N, h·w, C].</summary>
    string ToTokens(string map) => B.Transpose(B.Reshape(map, 0, 0, -1), 0, 2, 1);

    string EfficientAttention(string x, string prefix, string mapShape)
    {
        var self = prefix + ".self";
        var module = Module<EfficientSelfAttention>(self);
        long heads = module.Heads, channels = Module<Linear>(self + ".query").weight!.shape[0], headSize = channels / heads;
        var q = B.Transpose(B.Reshape(Linear(x, self + ".query"), 0, 0, heads, headSize), 0, 2, 1, 3);
        var context = x;
        if (Has(self + ".sr"))
        {
            var reduced = Conv(B.Reshape(B.Transpose(x, 0, 2, 1), mapShape), self + ".sr");
            context = LayerNorm(ToTokens(reduced), self + ".layer_norm");
        }
        // Keys go straight to [N, heads, headSize, L'], the transposed layout the score product needs.
        var kT = B.Transpose(B.Reshape(Linear(context, self + ".key"), 0, 0, heads, headSize), 0, 2, 3, 1);
        var v = B.Transpose(B.Reshape(Linear(context, self + ".value"), 0, 0, heads, headSize), 0, 2, 1, 3);
        var scores = B.Div(B.Node("MatMul", [q, kT]), B.Scalar((float)Math.Sqrt(headSize)));
        var attended = B.Node("MatMul", [B.Softmax(scores, -1), v]);
        var merged = B.Reshape(B.Transpose(attended, 0, 2, 1, 3), 0, 0, channels);
        return Linear(merged, prefix + ".output.dense");
    }

    string MixFfn(string x, string prefix, string mapShape)
    {
        var hidden = Linear(x, prefix + ".dense1");
        long inner = Module<Linear>(prefix + ".dense1").weight!.shape[0];
        var innerShape = B.Concat(0, B.Slice(mapShape, [0], [1], [0]), B.Int64s(inner), B.Slice(mapShape, [2], [4], [0]));
        var map = Conv(B.Reshape(B.Transpose(hidden, 0, 2, 1), innerShape), prefix + ".dwconv.dwconv");
        return Linear(Gelu(ToTokens(map)), prefix + ".dense2");
    }
}
