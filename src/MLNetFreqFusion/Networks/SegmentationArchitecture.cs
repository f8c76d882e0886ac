using Microsoft.ML.Runtime;
using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Decoders;

namespace MLNetFreqFusion.Networks;

/// <summary>
/// What a <see cref="SegmentationNetwork"/> is made of: backbone, decode head, class count and head widths. A trained
/// model stores it (<see cref="SemanticSegmentationTransformer.Architecture"/>) and rebuilds its network from it;
/// <see cref="SegmentationNetwork.Create"/> builds one. Defaults are those of <see cref="SemanticSegmentationTrainer.Options"/>.
/// </summary>
public sealed record SegmentationArchitecture
{
    /// <summary>The encoder. Default: <see cref="SegmentationBackbone.ResNet18"/>.</summary>
    public SegmentationBackbone Backbone { get; init; } = SemanticSegmentationTrainer.Defaults.Backbone;

    /// <summary>The decode head. Default: <see cref="SegmentationDecoder.FreqFusion"/>.</summary>
    public SegmentationDecoder Decoder { get; init; } = SemanticSegmentationTrainer.Defaults.Decoder;

    /// <summary>Number of classes (the classifier's output channels), at least 2. No default: it must be set.</summary>
    public int NumberOfClasses { get; init; }

    /// <summary>
    /// Width of the decoder. Default (null): 256 for the FPN heads; for the concat and MLP heads SegFormer's embedding
    /// width per backbone, 256 for MiT-B0/B1 and the ResNets and 768 for MiT-B2…B5.
    /// </summary>
    public int? DecoderChannels { get; init; }

    /// <summary>
    /// FreqFusion's channel compression: its compressed width is (hr + lr channels) / this ratio. Default 4, the
    /// SegNeXt/SegFormer + FreqFusion setting. Ignored by the bilinear baselines.
    /// </summary>
    public int CompressRatio { get; init; } = SemanticSegmentationTrainer.Defaults.CompressRatio;

    /// <summary>Dropout probability (whole channels) before the classifier. Default 0.1.</summary>
    public double DropoutRatio { get; init; } = SemanticSegmentationTrainer.Defaults.DropoutRatio;

    /// <summary>
    /// Which backbone stages (0 = stride 4 … 3 = stride 32) feed the decoder, in increasing order. Default (null): all
    /// four. Logits are predicted at the stride of the first selected stage and upsampled to the input size.
    /// </summary>
    public IReadOnlyList<int>? DecoderInputStages { get; init; }

    /// <summary>The decoder width in use: <see cref="DecoderChannels"/> or the backbone's and decoder's default.</summary>
    public int ResolvedDecoderChannels => DecoderChannels ?? DefaultDecoderChannels(Backbone, Decoder);

    /// <summary>The stages feeding the decoder: <see cref="DecoderInputStages"/> or all four.</summary>
    internal int[] InputStages => DecoderInputStages?.ToArray() ?? [0, 1, 2, 3];

    /// <summary>SegFormer's decoder widths: 256 for B0/B1, 768 for B2…B5; 256 for ResNets and for the FPN heads.</summary>
    internal static int DefaultDecoderChannels(SegmentationBackbone backbone, SegmentationDecoder decoder) =>
        decoder is SegmentationDecoder.FreqFusionFpn or SegmentationDecoder.BilinearFpn
            ? 256
            : backbone is >= SegmentationBackbone.MiTB2 and <= SegmentationBackbone.MiTB5 ? 768 : 256;

    /// <summary>
    /// Every rule the architecture breaks, as (field, message); the fields share their names with the trainer's
    /// Options, so the trainer reports them with CheckUserArg and <see cref="SegmentationNetwork.Create"/> with an
    /// <see cref="ArgumentException"/>.
    /// </summary>
    internal IEnumerable<(string Field, string Message)> Problems()
    {
        if (!Enum.IsDefined(Backbone))
            yield return (nameof(Backbone), $"Unknown backbone {(int)Backbone}.");
        if (!Enum.IsDefined(Decoder))
            yield return (nameof(Decoder), $"Unknown decoder {(int)Decoder}.");
        if (NumberOfClasses < 2)
            yield return (nameof(NumberOfClasses), $"NumberOfClasses must be at least 2 (background and one class); got {NumberOfClasses}.");
        if (DecoderChannels is < 1)
            yield return (nameof(DecoderChannels), $"DecoderChannels must be positive when set; got {DecoderChannels}.");
        else if (Decoder is SegmentationDecoder.FreqFusion or SegmentationDecoder.FreqFusionFpn
                 && ResolvedDecoderChannels % FreqFusionHeadSettings.FeatureResampleGroup != 0)
            yield return (nameof(DecoderChannels),
                $"The FreqFusion decoders resample features in {FreqFusionHeadSettings.FeatureResampleGroup} channel groups, so DecoderChannels must be a " +
                $"multiple of {FreqFusionHeadSettings.FeatureResampleGroup}; got {DecoderChannels}.");
        if (CompressRatio < 1)
            yield return (nameof(CompressRatio), $"CompressRatio must be at least 1; got {CompressRatio}.");
        if (DropoutRatio is < 0 or >= 1 || double.IsNaN(DropoutRatio))
            yield return (nameof(DropoutRatio), $"DropoutRatio must be in [0, 1); got {DropoutRatio}.");
        var stages = InputStages;
        if (stages.Length == 0 || stages.Any(s => s is < 0 or > 3) || stages.Zip(stages.Skip(1)).Any(p => p.Second <= p.First))
            yield return (nameof(DecoderInputStages), $"DecoderInputStages must be increasing stage indices in 0..3, got [{string.Join(", ", stages)}].");
        else if (Decoder is SegmentationDecoder.FreqFusion or SegmentationDecoder.FreqFusionFpn && stages.Zip(stages.Skip(1)).Any(p => p.Second != p.First + 1))
            yield return (nameof(DecoderInputStages),
                $"FreqFusion fuses features whose resolutions differ by exactly 2×, so its DecoderInputStages must be consecutive; got [{string.Join(", ", stages)}].");
    }

    /// <summary>Throws a CheckUserArg exception (naming the Options field) for the first rule the architecture breaks.</summary>
    internal void CheckUserArgs(IExceptionContext ectx)
    {
        foreach (var (field, message) in Problems())
            ectx.CheckUserArg(false, field, message);
    }

    // *** Binary format ***
    // int: backbone, int: decoder, int: decoder channels (0 = the backbone's default), int: compress ratio,
    // double: dropout ratio, int n, n × int: decoder input stages (n = 0: all four)
    // The number of classes is written by the model settings, after these fields.
    internal void Write(BinaryWriter w)
    {
        w.Write((int)Backbone);
        w.Write((int)Decoder);
        w.Write(DecoderChannels ?? 0);
        w.Write(CompressRatio);
        w.Write(DropoutRatio);
        w.Write(DecoderInputStages?.Count ?? 0);
        foreach (var stage in DecoderInputStages ?? Array.Empty<int>())
            w.Write(stage);
    }

    /// <summary>Reads what <see cref="Write"/> wrote; the number of classes follows in the stream and is set by the caller.</summary>
    internal static SegmentationArchitecture Read(BinaryReader r, IExceptionContext ectx)
    {
        var backbone = (SegmentationBackbone)r.ReadInt32();
        ectx.CheckDecode(Enum.IsDefined(backbone), $"unknown backbone {(int)backbone}");
        var decoder = (SegmentationDecoder)r.ReadInt32();
        ectx.CheckDecode(Enum.IsDefined(decoder), $"unknown decoder {(int)decoder}");
        int decoderChannels = r.ReadInt32();
        ectx.CheckDecode(decoderChannels >= 0, "decoder channels");
        int compressRatio = r.ReadInt32();
        ectx.CheckDecode(compressRatio >= 1, "compress ratio");
        double dropout = r.ReadDouble();
        ectx.CheckDecode(dropout is >= 0 and < 1, "dropout ratio");
        int stageCount = r.ReadInt32();
        ectx.CheckDecode(stageCount is >= 0 and <= 4, "decoder input stages");
        var stages = new int[stageCount];
        for (int i = 0; i < stageCount; i++)
            stages[i] = r.ReadInt32();
        return new SegmentationArchitecture
        {
            Backbone = backbone, Decoder = decoder, DecoderChannels = decoderChannels == 0 ? null : decoderChannels,
            CompressRatio = compressRatio, DropoutRatio = dropout, DecoderInputStages = stageCount == 0 ? null : stages,
        };
    }
}
