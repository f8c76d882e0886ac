using MLNetFreqFusion.Operators;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MLNetFreqFusion.Backbones;

/// <summary>
/// SegFormer's Mix Transformer encoder (Xie et al., NeurIPS 2021). The module tree mirrors HuggingFace's
/// <c>SegformerModel</c> (field <c>encoder</c>, then <c>patch_embeddings</c>, <c>block</c>, <c>layer_norm</c>), so the
/// state-dict keys of public MiT checkpoints load unchanged.
/// </summary>
internal sealed class MixTransformer : Backbone
{
    private readonly MixTransformerEncoder encoder;
    private readonly int[] _outChannels;

    public MixTransformer(MixTransformerConfig config, bool freezeBatchNorm, double dropPathRate = 0.1)
        : base(nameof(MixTransformer), freezeBatchNorm)
    {
        encoder = new MixTransformerEncoder(config, dropPathRate);
        _outChannels = config.HiddenSizes.ToArray();
        RegisterComponents();

        // HuggingFace's SegformerPreTrainedModel initialisation.
        foreach (var module in modules())
        {
            switch (module)
            {
                case Linear linear:
                    // trunc_normal_(std 0.02, a -2, b 2) as in PyTorch; TorchSharp's trunc_normal_ occasionally
                    // returns ±inf (erfinv at ±1 without PyTorch's final clamp), so draw a normal and clamp instead.
                    using (torch.no_grad())
                        init.normal_(linear.weight, 0, 0.02).clamp_(-2, 2);
                    if (linear.bias is not null)
                        init.zeros_(linear.bias);
                    break;
                case Conv2d conv:
                    long fanOut = conv.weight!.shape[0] * conv.weight.shape[2] * conv.weight.shape[3] / conv.groups;
                    init.normal_(conv.weight, 0, Math.Sqrt(2.0 / fanOut));
                    if (conv.bias is not null)
                        init.zeros_(conv.bias);
                    break;
                case LayerNorm norm:
                    init.ones_(norm.weight!);
                    init.zeros_(norm.bias!);
                    break;
            }
        }
    }

    public override IReadOnlyList<int> OutChannels => _outChannels;

    /// <summary>MiT checkpoints are trained on ImageNet with torchvision's normalisation.</summary>
    public override InputNormalization Normalization => InputNormalization.ImageNet;

    public override Tensor[] forward(Tensor x) => encoder.call(x);
}

/// <summary>Shape of a Mix Transformer: channels, depths and heads per stage.</summary>
internal sealed record MixTransformerConfig(int[] HiddenSizes, int[] Depths, int[] NumAttentionHeads)
{
    public static readonly int[] PatchSizes = [7, 3, 3, 3];
    public static readonly int[] Strides = [4, 2, 2, 2];
    public static readonly int[] SrRatios = [8, 4, 2, 1];
    public const int MlpRatio = 4;

    public static MixTransformerConfig B0 { get; } = new([32, 64, 160, 256], [2, 2, 2, 2], [1, 2, 5, 8]);
    public static MixTransformerConfig B1 { get; } = new([64, 128, 320, 512], [2, 2, 2, 2], [1, 2, 5, 8]);
    public static MixTransformerConfig B2 { get; } = new([64, 128, 320, 512], [3, 4, 6, 3], [1, 2, 5, 8]);
    public static MixTransformerConfig B3 { get; } = new([64, 128, 320, 512], [3, 4, 18, 3], [1, 2, 5, 8]);
    public static MixTransformerConfig B4 { get; } = new([64, 128, 320, 512], [3, 8, 27, 3], [1, 2, 5, 8]);
    public static MixTransformerConfig B5 { get; } = new([64, 128, 320, 512], [3, 6, 40, 3], [1, 2, 5, 8]);
}

internal sealed class MixTransformerEncoder : Module<Tensor, Tensor[]>
{
    private readonly ModuleList<OverlapPatchEmbeddings> patch_embeddings;
    private readonly ModuleList<ModuleList<MixTransformerLayer>> block;
    private readonly ModuleList<LayerNorm> layer_norm;

    public MixTransformerEncoder(MixTransformerConfig config, double dropPathRate) : base(nameof(MixTransformerEncoder))
    {
        if (config.HiddenSizes.Length != 4 || config.Depths.Length != 4 || config.NumAttentionHeads.Length != 4)
            throw new ArgumentException("A Mix Transformer has four stages: give four hidden sizes, depths and head counts.");
        int totalDepth = config.Depths.Sum();
        patch_embeddings = new ModuleList<OverlapPatchEmbeddings>();
        block = new ModuleList<ModuleList<MixTransformerLayer>>();
        layer_norm = new ModuleList<LayerNorm>();
        int layerIndex = 0;
        for (int stage = 0; stage < 4; stage++)
        {
            int hidden = config.HiddenSizes[stage];
            patch_embeddings.Add(new OverlapPatchEmbeddings(
                MixTransformerConfig.PatchSizes[stage], MixTransformerConfig.Strides[stage],
                stage == 0 ? 3 : config.HiddenSizes[stage - 1], hidden));
            var layers = new ModuleList<MixTransformerLayer>();
            for (int j = 0; j < config.Depths[stage]; j++, layerIndex++)
            {
                // Stochastic depth grows linearly over all layers of the encoder.
                double dropPath = totalDepth == 1 ? 0 : dropPathRate * layerIndex / (totalDepth - 1);
                layers.Add(new MixTransformerLayer(hidden, config.NumAttentionHeads[stage], dropPath,
                    MixTransformerConfig.SrRatios[stage], MixTransformerConfig.MlpRatio));
            }
            block.Add(layers);
            layer_norm.Add(LayerNorm(hidden));
        }
        RegisterComponents();
    }

    public override Tensor[] forward(Tensor x)
    {
        var features = new Tensor[4];
        for (int stage = 0; stage < 4; stage++)
        {
            var (tokens, height, width) = patch_embeddings[stage].call(x);
            foreach (var layer in block[stage])
                tokens = layer.call(tokens, height, width);
            tokens = layer_norm[stage].call(tokens);
            x = tokens.reshape(tokens.shape[0], height, width, -1).permute(0, 3, 1, 2).contiguous();
            features[stage] = x;
        }
        return features;
    }
}

/// <summary>Overlapping patch embedding: a strided convolution whose kernel is larger than its stride.</summary>
internal sealed class OverlapPatchEmbeddings : Module<Tensor, (Tensor Tokens, long Height, long Width)>
{
    private readonly Conv2d proj;
    private readonly LayerNorm layer_norm;

    public OverlapPatchEmbeddings(int patchSize, int stride, int inChannels, int hidden) : base(nameof(OverlapPatchEmbeddings))
    {
        proj = Conv2d(inChannels, hidden, patchSize, stride: stride, padding: patchSize / 2);
        layer_norm = LayerNorm(hidden);
        RegisterComponents();
    }

    public override (Tensor Tokens, long Height, long Width) forward(Tensor x)
    {
        var y = SpatialConvolution.Forward(proj, x);
        long height = y.shape[2], width = y.shape[3];
        return (layer_norm.call(y.flatten(2).transpose(1, 2)), height, width);
    }
}

internal sealed class MixTransformerLayer : Module<Tensor, long, long, Tensor>
{
    private readonly LayerNorm layer_norm_1;
    private readonly EfficientAttention attention;
    private readonly DropPath drop_path;
    private readonly LayerNorm layer_norm_2;
    private readonly MixFfn mlp;

    public MixTransformerLayer(int hidden, int heads, double dropPath, int srRatio, int mlpRatio) : base(nameof(MixTransformerLayer))
    {
        layer_norm_1 = LayerNorm(hidden);
        attention = new EfficientAttention(hidden, heads, srRatio);
        drop_path = new DropPath(dropPath);
        layer_norm_2 = LayerNorm(hidden);
        mlp = new MixFfn(hidden, hidden * mlpRatio);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, long height, long width)
    {
        x = x + drop_path.call(attention.call(layer_norm_1.call(x), height, width));
        return x + drop_path.call(mlp.call(layer_norm_2.call(x), height, width));
    }
}

/// <summary>Multi-head attention whose keys and values come from a spatially reduced sequence (PVT).</summary>
internal sealed class EfficientAttention : Module<Tensor, long, long, Tensor>
{
    // HuggingFace nests the projections as attention.self.* and attention.output.dense.
    private readonly EfficientSelfAttention self;
    private readonly SelfOutput output;

    public EfficientAttention(int hidden, int heads, int srRatio) : base(nameof(EfficientAttention))
    {
        self = new EfficientSelfAttention(hidden, heads, srRatio);
        output = new SelfOutput(hidden);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, long height, long width) => output.call(self.call(x, height, width));

    private sealed class SelfOutput : Module<Tensor, Tensor>
    {
        private readonly Linear dense;

        public SelfOutput(int hidden) : base(nameof(SelfOutput))
        {
            dense = Linear(hidden, hidden);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => dense.call(x);
    }
}

internal sealed class EfficientSelfAttention : Module<Tensor, long, long, Tensor>
{
    private readonly Linear query;
    private readonly Linear key;
    private readonly Linear value;
    private readonly Conv2d? sr;
    private readonly LayerNorm? layer_norm;
    private readonly int _heads;
    internal int Heads => _heads;

    public EfficientSelfAttention(int hidden, int heads, int srRatio) : base(nameof(EfficientSelfAttention))
    {
        if (hidden % heads != 0)
            throw new ArgumentException($"The hidden size {hidden} is not a multiple of the number of attention heads {heads}.");
        _heads = heads;
        query = Linear(hidden, hidden);
        key = Linear(hidden, hidden);
        value = Linear(hidden, hidden);
        if (srRatio > 1)
        {
            sr = Conv2d(hidden, hidden, srRatio, stride: srRatio);
            layer_norm = LayerNorm(hidden);
        }
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, long height, long width)
    {
        long batch = x.shape[0], length = x.shape[1], channels = x.shape[2];
        long headSize = channels / _heads;
        var q = query.call(x).view(batch, length, _heads, headSize).transpose(1, 2);
        var context = x;
        if (sr is not null)
        {
            var map = x.transpose(1, 2).reshape(batch, channels, height, width);
            context = layer_norm!.call(SpatialConvolution.Forward(sr, map).reshape(batch, channels, -1).transpose(1, 2));
        }
        var k = key.call(context).view(batch, -1, _heads, headSize).transpose(1, 2);
        var v = value.call(context).view(batch, -1, _heads, headSize).transpose(1, 2);
        var attentionProbs = functional.softmax(q.matmul(k.transpose(-1, -2)) / Math.Sqrt(headSize), dim: -1);
        return attentionProbs.matmul(v).transpose(1, 2).reshape(batch, length, channels);
    }
}

/// <summary>Mix-FFN: a 3×3 depthwise convolution between the two linear layers gives positional information.</summary>
internal sealed class MixFfn : Module<Tensor, long, long, Tensor>
{
    private readonly Linear dense1;
    private readonly DepthwiseConv dwconv;
    private readonly Linear dense2;

    public MixFfn(int hidden, int inner) : base(nameof(MixFfn))
    {
        dense1 = Linear(hidden, inner);
        dwconv = new DepthwiseConv(inner);
        dense2 = Linear(inner, hidden);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, long height, long width) =>
        dense2.call(functional.gelu(dwconv.call(dense1.call(x), height, width)));

    private sealed class DepthwiseConv : Module<Tensor, long, long, Tensor>
    {
        private readonly Conv2d dwconv;

        public DepthwiseConv(int channels) : base(nameof(DepthwiseConv))
        {
            dwconv = Conv2d(channels, channels, 3, padding: 1, groups: channels);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x, long height, long width)
        {
            long batch = x.shape[0], channels = x.shape[2];
            var map = x.transpose(1, 2).reshape(batch, channels, height, width);
            return dwconv.call(map).flatten(2).transpose(1, 2);
        }
    }
}

/// <summary>Stochastic depth: drops the whole residual branch per sample during training.</summary>
internal sealed class DropPath : Module<Tensor, Tensor>
{
    private readonly double _probability;

    public DropPath(double probability) : base(nameof(DropPath))
    {
        _probability = probability;
    }

    public override Tensor forward(Tensor x)
    {
        if (!training || _probability == 0)
            return x;
        double keep = 1 - _probability;
        var shape = new long[x.dim()];
        Array.Fill(shape, 1L);
        shape[0] = x.shape[0];
        var mask = torch.rand(shape, dtype: x.dtype, device: x.device).add_(keep).floor_();
        return x.div(keep) * mask;
    }
}
