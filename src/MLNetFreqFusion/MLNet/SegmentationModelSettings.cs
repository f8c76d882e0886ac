using System.Globalization;
using Microsoft.ML.Runtime;
using MLNetFreqFusion.Inference;
using MLNetFreqFusion.Networks;

namespace MLNetFreqFusion;

/// <summary>
/// What a trained model stores besides its weights: the network's architecture, the classes, the columns and the
/// inference settings. Made once from the trainer's Options; written into the model zip by
/// <see cref="SemanticSegmentationTransformer"/>.
/// </summary>
internal sealed record SegmentationModelSettings
{
    public required SegmentationArchitecture Architecture { get; init; }
    public required int IgnoreIndex { get; init; }
    public required IReadOnlyList<string> ClassNames { get; init; }
    public required string ImageColumnName { get; init; }
    public required string PredictedLabelColumnName { get; init; }
    public string? ScoreColumnName { get; init; }
    public required InferenceSettings Inference { get; init; }

    public int NumberOfClasses => Architecture.NumberOfClasses;

    /// <summary>The settings of <paramref name="o"/> for <paramref name="numberOfClasses"/> classes (the Options' own
    /// value, or the one Fit inferred when it was 0), named by <paramref name="classNames"/> (the label column's, which
    /// Fit passes only when the Options have none), else by the Options' ClassNames, else by their indices.</summary>
    public static SegmentationModelSettings FromOptions(SemanticSegmentationTrainer.Options o, int numberOfClasses, IReadOnlyList<string>? classNames = null) => new()
    {
        Architecture = new SegmentationArchitecture
        {
            Backbone = o.Backbone, Decoder = o.Decoder, NumberOfClasses = numberOfClasses, DecoderChannels = o.DecoderChannels,
            CompressRatio = o.CompressRatio, DropoutRatio = o.DropoutRatio, DecoderInputStages = o.DecoderInputStages?.ToArray(),
        },
        IgnoreIndex = o.IgnoreIndex,
        ClassNames = (classNames ?? o.ClassNames)?.ToArray() ?? Enumerable.Range(0, numberOfClasses).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToArray(),
        ImageColumnName = o.ImageColumnName,
        PredictedLabelColumnName = o.PredictedLabelColumnName,
        ScoreColumnName = o.ScoreColumnName,
        Inference = new InferenceSettings
        {
            SlidingWindowSize = o.SlidingWindowSize, SlidingWindowOverlap = o.SlidingWindowOverlap, FlipTest = o.FlipTest,
            BatchSize = o.InferenceBatchSize,
        },
    };

    // *** Binary format ***
    // SegmentationArchitecture without the number of classes (see its Write)
    // int: number of classes K, int: ignore index
    // K strings: class names
    // string: image column, string: predicted-label column, string or null: probabilities column
    // int: sliding window size, double: sliding window overlap, bool: flip test
    // int: inference batch size (format 0x00010002 on; older models get the default)
    public void Write(BinaryWriter w)
    {
        Architecture.Write(w);
        w.Write(NumberOfClasses);
        w.Write(IgnoreIndex);
        foreach (var name in ClassNames)
            w.Write(name);
        w.Write(ImageColumnName);
        w.Write(PredictedLabelColumnName);
        w.Write(ScoreColumnName is not null);
        if (ScoreColumnName is not null)
            w.Write(ScoreColumnName);
        w.Write(Inference.SlidingWindowSize);
        w.Write(Inference.SlidingWindowOverlap);
        w.Write(Inference.FlipTest);
        w.Write(Inference.BatchSize);
    }

    public static SegmentationModelSettings Read(BinaryReader r, IExceptionContext ectx, bool hasInferenceBatchSize)
    {
        var architecture = SegmentationArchitecture.Read(r, ectx);
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
        int batch = hasInferenceBatchSize ? r.ReadInt32() : SemanticSegmentationTrainer.Defaults.InferenceBatchSize;
        ectx.CheckDecode(batch >= 1, "inference batch size");
        return new SegmentationModelSettings
        {
            Architecture = architecture with { NumberOfClasses = classes },
            IgnoreIndex = ignore, ClassNames = names,
            ImageColumnName = image, PredictedLabelColumnName = predicted, ScoreColumnName = probabilities,
            Inference = new InferenceSettings { SlidingWindowSize = window, SlidingWindowOverlap = overlap, FlipTest = flip, BatchSize = batch },
        };
    }
}
