using MLNetFreqFusion.Operators;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MLNetFreqFusion.Decoders;

/// <summary>
/// SegFormer's all-MLP decoder (the <see cref="SegmentationDecoder.Bilinear"/> baseline): every stage is projected
/// to a common width by a linear layer, upsampled bilinearly to the first stage's size, concatenated deepest first
/// and fused by a 1×1 convolution with batch norm and ReLU. Names follow HuggingFace's <c>SegformerDecodeHead</c>.
/// </summary>
internal sealed class SegFormerHead : DecodeHead
{
    private readonly ModuleList<Mlp> linear_c;
    private readonly Conv2d linear_fuse;
    private readonly BatchNorm2d batch_norm;

    public SegFormerHead(IReadOnlyList<int> inChannels, int channels, int numberOfClasses, double dropoutRatio)
        : base(nameof(SegFormerHead))
    {
        linear_c = new ModuleList<Mlp>(inChannels.Select(c => new Mlp(c, channels)).ToArray());
        linear_fuse = Conv2d(channels * inChannels.Count, channels, 1, bias: false);
        batch_norm = BatchNorm2d(channels);
        AddClassifier(channels, numberOfClasses, dropoutRatio);
    }

    public override Tensor ForwardFeatures(Tensor[] features)
    {
        CheckFeatures(features, linear_c.Count, "SegFormer");
        var size = new[] { features[0].shape[2], features[0].shape[3] };
        var projected = new Tensor[features.Length];
        for (int i = 0; i < features.Length; i++)
        {
            var y = linear_c[i].call(features[i]);
            projected[features.Length - 1 - i] = i == 0 ? y : functional.interpolate(y, size, mode: InterpolationMode.Bilinear, align_corners: false);
        }
        return functional.relu(batch_norm.call(SpatialConvolution.Forward(linear_fuse, cat(projected, 1))));
    }
}

/// <summary>A per-pixel linear projection (HuggingFace's SegformerMLP, key proj.*).</summary>
internal sealed class Mlp : Module<Tensor, Tensor>
{
    private readonly Linear proj;

    public Mlp(int inChannels, int outChannels) : base(nameof(Mlp))
    {
        proj = Linear(inChannels, outChannels);
        RegisterComponents();
    }

    /// <summary>Set by the benchmarks' <c>profile ab --experiment channels-last-projections</c> only: the projection as a Linear on pixel rows.</summary>
    internal static bool PixelRowsForBenchmark { get; set; }

    /// <summary>The projection of <paramref name="x"/> as its input and parameters.</summary>
    public LinearProjection Of(Tensor x) => new(x, proj.weight!, proj.bias);

    public override Tensor forward(Tensor x)
    {
        if (PixelRowsForBenchmark)
        {
            long batch = x.shape[0], height = x.shape[2], width = x.shape[3];
            var y = proj.call(x.flatten(2).transpose(1, 2));
            return y.transpose(1, 2).reshape(batch, -1, height, width);
        }
        return PointwiseConvolution.Forward(proj.weight!, proj.bias, x);
    }
}
