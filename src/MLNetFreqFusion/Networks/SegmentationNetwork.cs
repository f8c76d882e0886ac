using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Decoders;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.PyBridge;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MLNetFreqFusion.Networks;

/// <summary>
/// A semantic-segmentation network: backbone, decoder head and classifier. It takes plain RGB images
/// [B,3,H,W] float32 in 0..255 of any size, applies the backbone's own input normalisation, pads the sides to
/// multiples of 32 and crops the logits back, returning [B,K,H,W] logits. Build one with <see cref="Create"/>.
/// </summary>
public sealed partial class SegmentationNetwork : Module<Tensor, Tensor>
{
    /// <summary>Input sides are padded to a multiple of this (the deepest backbone stride).</summary>
    public const int SizeDivisor = 32;

    private readonly Backbone backbone;
    private readonly DecodeHead decode_head;

    private readonly int[] _inputStages;
    private readonly string? _pretrainedWeightsPath;

    private SegmentationNetwork(Backbone backbone, DecodeHead decodeHead, SegmentationArchitecture architecture, string? pretrainedWeightsPath)
        : base(nameof(SegmentationNetwork))
    {
        this.backbone = backbone;
        decode_head = decodeHead;
        _inputStages = architecture.InputStages;
        _pretrainedWeightsPath = pretrainedWeightsPath;
        Architecture = architecture;
        RegisterComponents();
    }

    /// <summary>What the network is made of, its decoder width resolved.</summary>
    public SegmentationArchitecture Architecture { get; }

    /// <summary>Number of classes, the channel count of the logits.</summary>
    public int NumberOfClasses => Architecture.NumberOfClasses;

    /// <summary>Channels of the backbone's four feature maps (strides 4, 8, 16, 32).</summary>
    public IReadOnlyList<int> BackboneChannels => backbone.OutChannels;

    /// <summary>Width of the fused decoder feature map returned by <see cref="DecoderFeatures"/>.</summary>
    public int DecoderChannels => decode_head.Channels;

    internal Backbone BackboneModule => backbone;

    internal DecodeHead DecodeHeadModule => decode_head;

    /// <summary>
    /// Builds the network described by <paramref name="architecture"/>. When <paramref name="loadPretrainedWeights"/>
    /// is true the backbone receives <paramref name="pretrainedWeightsPath"/> (and
    /// <see cref="SegmentationBackbone.ResNet18ImageNet"/> its ONNX weights); pass false to rebuild an architecture whose
    /// weights are loaded afterwards (for example from a checkpoint).
    /// </summary>
    /// <param name="architecture">Backbone, decoder, class count and widths.</param>
    /// <param name="pretrainedWeightsPath">
    /// Pretrained backbone weights. For <see cref="SegmentationBackbone.ResNet18ImageNet"/>: the ResNet18.onnx of the
    /// NuGet package Microsoft.ML.DnnImageFeaturizer.ResNet18 (when null, the copy in the application's build output is
    /// used, see <see cref="PretrainedModels.FindResNet18Onnx"/>). For every backbone: a PyTorch checkpoint (.pt, .pth,
    /// .bin, .safetensors) with torchvision ResNet or HuggingFace SegformerModel names. Default null: random
    /// initialisation (except for ResNet18ImageNet, which always loads its ONNX weights).
    /// </param>
    /// <param name="freezeBatchNorm">
    /// Keep the backbone's batch-norm layers in eval mode while training (running statistics used, not updated; affine
    /// weights still trained), the usual choice when fine-tuning with small batches. Default false.
    /// </param>
    /// <param name="loadPretrainedWeights">Whether to load the pretrained backbone weights. Default true.</param>
    /// <exception cref="ArgumentException">The architecture breaks a rule; the message names the field.</exception>
    public static SegmentationNetwork Create(SegmentationArchitecture architecture, string? pretrainedWeightsPath = null,
        bool freezeBatchNorm = false, bool loadPretrainedWeights = true)
    {
        Check(architecture);
        var network = Assemble(BackboneFactory.Create(architecture.Backbone, freezeBatchNorm), architecture,
            architecture.ResolvedDecoderChannels, pretrainedWeightsPath);
        if (loadPretrainedWeights)
            network.LoadPretrainedBackbone();
        return network;
    }

    /// <summary>Assembles a network around an existing backbone (tests use tiny backbones this way).</summary>
    internal static SegmentationNetwork Assemble(Backbone backbone, SegmentationArchitecture architecture, int channels, string? pretrainedWeightsPath = null)
    {
        Check(architecture);
        architecture = architecture with { DecoderChannels = channels, DecoderInputStages = architecture.DecoderInputStages?.ToArray() };
        var inChannels = architecture.InputStages.Select(s => backbone.OutChannels[s]).ToArray();
        var head = DecoderFactory.Create(architecture.Decoder, inChannels, channels, architecture.NumberOfClasses,
            architecture.DropoutRatio, architecture.CompressRatio);
        return new SegmentationNetwork(backbone, head, architecture, pretrainedWeightsPath);
    }

    private static void Check(SegmentationArchitecture architecture)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        foreach (var (field, message) in architecture.Problems())
            throw new ArgumentException(message, $"{nameof(architecture)}.{field}");
    }

    /// <summary>Logits [B,K,H,W] for RGB images [B,3,H,W] in 0..255.</summary>
    /// <param name="rgb">float32 RGB pixels in 0..255, any height and width.</param>
    public override Tensor forward(Tensor rgb)
    {
        using var scope = NewDisposeScope();
        var (height, width) = CheckInput(rgb);
        var padded = PadAndNormalize(rgb, height, width);
        var logits = decode_head.call(SelectStages(backbone.call(padded)));
        logits = functional.interpolate(logits, [padded.shape[2], padded.shape[3]], mode: InterpolationMode.Bilinear, align_corners: false);
        return scope.MoveToOuter(logits[.., .., ..(int)height, ..(int)width].contiguous());
    }

    /// <summary>
    /// The decoder's fused feature map before dropout and classifier, [B, <see cref="DecoderChannels"/>, ⌈H/s⌉, ⌈W/s⌉]
    /// where s is the stride of the first decoder input stage (4 by default).
    /// </summary>
    /// <param name="rgb">float32 RGB pixels in 0..255, any height and width.</param>
    public Tensor DecoderFeatures(Tensor rgb)
    {
        using var scope = NewDisposeScope();
        var (height, width) = CheckInput(rgb);
        var padded = PadAndNormalize(rgb, height, width);
        var features = decode_head.ForwardFeatures(SelectStages(backbone.call(padded)));
        long stride = padded.shape[2] / features.shape[2];
        long h = (height + stride - 1) / stride, w = (width + stride - 1) / stride;
        return scope.MoveToOuter(features[.., .., ..(int)h, ..(int)w].contiguous());
    }

    /// <summary>The backbone's parameters (the trainer gives them the base learning rate).</summary>
    public IEnumerable<Parameter> BackboneParameters() => backbone.parameters();

    /// <summary>The decoder's parameters, FreqFusion modules and classifier included (usually a 10× learning rate).</summary>
    public IEnumerable<Parameter> DecoderParameters() => decode_head.parameters();

    /// <summary>Sets training mode; with FreezeBatchNorm the backbone's batch norms stay in eval mode.</summary>
    /// <param name="train">True for training mode, false for evaluation mode.</param>
    public override void train(bool train = true)
    {
        base.train(train);
        // Module.train reaches the backbone's own override only if it recurses through it; make sure it does.
        backbone.train(train);
    }

    private static (long Height, long Width) CheckInput(Tensor rgb)
    {
        if (rgb.dim() != 4 || rgb.shape[1] != 3)
            throw new ArgumentException($"Expected RGB images [B,3,H,W], got [{string.Join(",", rgb.shape)}].", nameof(rgb));
        if (rgb.dtype != ScalarType.Float32)
            throw new ArgumentException($"Expected float32 pixels in 0..255, got {rgb.dtype}.", nameof(rgb));
        if (rgb.shape[2] < 1 || rgb.shape[3] < 1)
            throw new ArgumentException($"The image is empty ([{string.Join(",", rgb.shape)}]).", nameof(rgb));
        return (rgb.shape[2], rgb.shape[3]);
    }

    private Tensor PadAndNormalize(Tensor rgb, long height, long width)
    {
        var x = backbone.Normalization.Apply(rgb);
        long padBottom = (SizeDivisor - height % SizeDivisor) % SizeDivisor;
        long padRight = (SizeDivisor - width % SizeDivisor) % SizeDivisor;
        return MirrorPad(x, padRight, padBottom);
    }

    /// <summary>
    /// Pads the right and bottom by mirroring the image, here and where training pads a crop larger than its image
    /// (SegmentationAugmenter), so the network meets the same border in both. A mirror keeps the image's own
    /// statistics; with a constant border a trained model predicted objects along the seam. Reflection cannot pad by
    /// more than the side minus one, so small images are mirrored repeatedly; a side of one pixel is repeated.
    /// </summary>
    internal static Tensor MirrorPad(Tensor x, long padRight, long padBottom)
    {
        while (padRight > 0 || padBottom > 0)
        {
            long right = Math.Min(padRight, x.shape[3] - 1), bottom = Math.Min(padBottom, x.shape[2] - 1);
            if (right == 0 && bottom == 0)
                return functional.pad(x, [0, padRight, 0, padBottom], PaddingModes.Replicate);
            x = functional.pad(x, [0, right, 0, bottom], PaddingModes.Reflect);
            padRight -= right;
            padBottom -= bottom;
        }
        return x;
    }

    private Tensor[] SelectStages(Tensor[] features) => _inputStages.Select(s => features[s]).ToArray();
}
