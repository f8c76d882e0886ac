using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Decoders;

namespace MLNetFreqFusion.Tests.MLNet;

/// <summary>The digits-seg slice copied into the test project (TestData/digits-seg, CC BY-SA 3.0, see its README).</summary>
internal static class DigitsSeg
{
    public static string Root => Path.Combine(AppContext.BaseDirectory, "TestData", "digits-seg");

    public static readonly string[] ClassNames =
        { "background", "digit_0", "digit_1", "digit_2", "digit_3", "digit_4", "digit_5", "digit_6", "digit_7", "digit_8", "digit_9" };

    public sealed class Row
    {
        [LoadColumn(0)] public string ImagePath = "";
        [LoadColumn(1)] public string MaskPath = "";
    }

    public static IDataView Load(MLContext ml, string split, int? take = null)
    {
        var data = ml.Data.LoadFromTextFile<Row>(Path.Combine(Root, split + ".csv"), separatorChar: ',', hasHeader: true);
        return take is int n ? ml.Data.TakeRows(data, n) : data;
    }

    /// <summary>The pipeline of the contract, up to the trainer.</summary>
    public static IEstimator<ITransformer> Inputs(MLContext ml, MaskDecodeOptions? masks = null)
        => ml.Transforms.LoadImages("Image", imageFolder: Root, inputColumnName: "ImagePath")
            .Append(ml.Transforms.LoadSegmentationMasks("Label", imageFolder: Root, inputColumnName: "MaskPath", masks));

    /// <summary>Digit versus background: every digit class mapped to 1, a task a few dozen steps can learn.</summary>
    public static MaskDecodeOptions Binary => new()
    {
        ValueMap = Enumerable.Range(1, 10).ToDictionary(v => (ushort)v, _ => (ushort)1),
    };

    /// <summary>The smallest trainer that still runs the whole network: ResNet18 from scratch, a 16-channel FreqFusion head, 64-pixel crops.</summary>
    public static SemanticSegmentationTrainer.Options TinyOptions(int epochs, IProgress<SemanticSegmentationProgress>? progress = null) => new()
    {
        NumberOfClasses = 11, Backbone = SegmentationBackbone.ResNet18, Decoder = SegmentationDecoder.FreqFusion,
        DecoderChannels = 16, CropSize = 64, BatchSize = 4, MaxEpochs = epochs, WarmupSteps = 0, LearningRate = 1e-3,
        Progress = progress,
    };

    /// <summary>Fits the contract's pipeline on the first <paramref name="rows"/> training rows; the chain owns the segmenter.</summary>
    public static TransformerChain<SemanticSegmentationTransformer> Fit(MLContext ml, SemanticSegmentationTrainer.Options options, int rows, MaskDecodeOptions? masks = null)
        => Inputs(ml, masks).Append(ml.SemanticSegmentation().Trainers.FreqFusion(options)).Fit(Load(ml, "train", rows));
}

/// <summary>Progress delivered on the training thread (<see cref="Progress{T}"/> would post it to the thread pool, late).</summary>
internal sealed class SynchronousProgress : IProgress<SemanticSegmentationProgress>
{
    readonly Action<SemanticSegmentationProgress> _report;
    public SynchronousProgress(Action<SemanticSegmentationProgress> report) => _report = report;
    public void Report(SemanticSegmentationProgress value) => _report(value);
}
