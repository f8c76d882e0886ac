using MLNetFreqFusion;
using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Decoders;
using Microsoft.ML.Runtime;
using MLNetFreqFusion.Networks;

namespace MLNetFreqFusion;

/// <summary>
/// What a trained model needs besides its weights: the architecture to rebuild, the classes, the columns and the
/// inference settings. Written into the model zip by <see cref="SemanticSegmentationTransformer"/>.
/// </summary>
internal sealed record SegmentationModelSettings
{
    public required SegmentationBackbone Backbone { get; init; }
    public required SegmentationDecoder Decoder { get; init; }
    public int? DecoderChannels { get; init; }
    public int CompressRatio { get; init; } = 4;
    public double DropoutRatio { get; init; } = 0.1;
    public int[]? DecoderInputStages { get; init; }
    public required int NumberOfClasses { get; init; }
    public required int IgnoreIndex { get; init; }
    public required IReadOnlyList<string> ClassNames { get; init; }
    public required string ImageColumnName { get; init; }
    public required string PredictedLabelColumnName { get; init; }
    public string? ProbabilitiesColumnName { get; init; }
    public required int SlidingWindowSize { get; init; }
    public required double SlidingWindowOverlap { get; init; }
    public required bool FlipTest { get; init; }
    public int InferenceBatchSize { get; init; } = DefaultInferenceBatchSize;

    public const int DefaultInferenceBatchSize = 8;

    public static SegmentationModelSettings FromOptions(SemanticSegmentationTrainer.Options o) => new()
    {
        Backbone = o.Backbone,
        Decoder = o.Decoder,
        DecoderChannels = o.DecoderChannels,
        DecoderInputStages = o.DecoderInputStages?.ToArray(),
        NumberOfClasses = o.NumberOfClasses,
        IgnoreIndex = o.IgnoreIndex,
        ClassNames = o.ClassNames?.ToArray() ?? Enumerable.Range(0, o.NumberOfClasses).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray(),
        ImageColumnName = o.ImageColumnName,
        PredictedLabelColumnName = o.PredictedLabelColumnName,
        ProbabilitiesColumnName = o.ProbabilitiesColumnName,
        SlidingWindowSize = o.SlidingWindowSize,
        SlidingWindowOverlap = o.SlidingWindowOverlap,
        FlipTest = o.FlipTest,
        InferenceBatchSize = o.InferenceBatchSize,
    };

    /// <summary>The network architecture these settings describe (no pretrained weights: those are in the model).</summary>
    public SegmentationNetworkOptions ToNetworkOptions(string? pretrainedWeightsPath, bool freezeBatchNorm) => new()
    {
        Backbone = Backbone, Decoder = Decoder, NumberOfClasses = NumberOfClasses, DecoderChannels = DecoderChannels,
        CompressRatio = CompressRatio, DropoutRatio = DropoutRatio, DecoderInputStages = DecoderInputStages?.ToArray(),
        PretrainedWeightsPath = pretrainedWeightsPath, FreezeBatchNorm = freezeBatchNorm,
    };

    // *** Binary format ***
    // int: backbone, int: decoder, int: decoder channels (0 = the backbone's default), int: compress ratio,
    // double: dropout ratio, int n, n × int: decoder input stages (n = 0: all four)
    // int: number of classes K, int: ignore index
    // K strings: class names
    // string: image column, string: predicted-label column, string or null: probabilities column
    // int: sliding window size, double: sliding window overlap, bool: flip test
    // int: inference batch size (format 0x00010002 on; older models get the default)
    public void Write(BinaryWriter w)
    {
        w.Write((int)Backbone);
        w.Write((int)Decoder);
        w.Write(DecoderChannels ?? 0);
        w.Write(CompressRatio);
        w.Write(DropoutRatio);
        w.Write(DecoderInputStages?.Length ?? 0);
        foreach (var stage in DecoderInputStages ?? Array.Empty<int>())
            w.Write(stage);
        w.Write(NumberOfClasses);
        w.Write(IgnoreIndex);
        foreach (var name in ClassNames)
            w.Write(name);
        w.Write(ImageColumnName);
        w.Write(PredictedLabelColumnName);
        w.Write(ProbabilitiesColumnName is not null);
        if (ProbabilitiesColumnName is not null)
            w.Write(ProbabilitiesColumnName);
        w.Write(SlidingWindowSize);
        w.Write(SlidingWindowOverlap);
        w.Write(FlipTest);
        w.Write(InferenceBatchSize);
    }

    public static SegmentationModelSettings Read(BinaryReader r, IExceptionContext ectx, bool hasInferenceBatchSize)
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
        int classes = r.ReadInt32();
        ectx.CheckDecode(classes >= 2, "the number of classes must be at least 2");
        int ignore = r.ReadInt32();
        var names = new string[classes];
        for (int i = 0; i < classes; i++)
            names[i] = r.ReadString();
        var image = r.ReadString();
        var predicted = r.ReadString();
        ectx.CheckDecode(image.Length > 0 && predicted.Length > 0, "empty column name");
        string? probabilities = r.ReadBoolean() ? r.ReadString() : null;
        int window = r.ReadInt32();
        ectx.CheckDecode(window >= 32, "sliding window size");
        double overlap = r.ReadDouble();
        ectx.CheckDecode(overlap is >= 0 and < 1, "sliding window overlap");
        bool flip = r.ReadBoolean();
        int batch = hasInferenceBatchSize ? r.ReadInt32() : DefaultInferenceBatchSize;
        ectx.CheckDecode(batch >= 1, "inference batch size");
        return new SegmentationModelSettings
        {
            Backbone = backbone, Decoder = decoder, DecoderChannels = decoderChannels == 0 ? null : decoderChannels,
            CompressRatio = compressRatio, DropoutRatio = dropout, DecoderInputStages = stageCount == 0 ? null : stages,
            NumberOfClasses = classes, IgnoreIndex = ignore, ClassNames = names,
            ImageColumnName = image, PredictedLabelColumnName = predicted, ProbabilitiesColumnName = probabilities,
            SlidingWindowSize = window, SlidingWindowOverlap = overlap, FlipTest = flip, InferenceBatchSize = batch,
        };
    }
}
