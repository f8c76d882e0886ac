using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetFreqFusion;
using MLNetFreqFusion.Backbones;

namespace SemanticSegmentation.ConsoleApp;

public partial class SegmentationModel
{
    /// <summary>
    /// Reads the images and masks named by the ImagePath and MaskPath columns. Kept apart from the trainer so that the
    /// saved model takes an image and nothing else (see <see cref="Train"/>).
    /// </summary>
    public static IEstimator<ITransformer> BuildInputPipeline(MLContext mlContext, MaskDecodeOptions maskOptions)
    {
        // <snippet:inputs>
        // ImagePath and MaskPath hold absolute paths (the LoadSegmentationPairsFrom* loaders make them so): no image folder.
        return mlContext.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "ImagePath")
            .Append(mlContext.Transforms.LoadSegmentationMasks("Label", imageFolder: null, inputColumnName: "MaskPath", options: maskOptions));
        // </snippet:inputs>
    }

    /// <summary>The pipeline Model Builder would generate: inputs, then the FreqFusion segmentation trainer.</summary>
    public static IEstimator<ITransformer> BuildPipeline(MLContext mlContext, SampleOptions o, SampleData data, IDataView validationSet,
        IProgress<SemanticSegmentationProgress>? progress = null)
    {
        string? pretrained = null;
        if (o.Backbone == SegmentationBackbone.ResNet18ImageNet)
            pretrained = PretrainedModels.FindResNet18Onnx()
                ?? throw new InvalidOperationException("ResNet18.onnx is missing from the output folder: the project must reference " +
                    "the NuGet package Microsoft.ML.DnnImageFeaturizer.ResNet18, which copies it to DnnImageModels/ResNet18Onnx/.");

        var trainer = mlContext.SemanticSegmentation().Trainers.FreqFusion(new SemanticSegmentationTrainer.Options
        {
            NumberOfClasses = data.NumberOfClasses,
            ClassNames = data.ClassNames,
            IgnoreIndex = o.IgnoreIndex,
            Backbone = o.Backbone,
            PretrainedWeightsPath = pretrained,
            FreezeBatchNorm = o.Backbone == SegmentationBackbone.ResNet18ImageNet,
            Decoder = o.Decoder,
            DecoderChannels = o.DecoderChannels,
            CropSize = o.CropSize,
            BatchSize = o.BatchSize,
            MaxEpochs = o.Epochs,
            LearningRate = o.LearningRate,
            HeadLearningRateMultiplier = o.HeadLearningRateMultiplier,
            DiceLossWeight = o.DiceLossWeight,
            ClassWeights = o.BackgroundWeight is float w
                ? Enumerable.Range(0, data.NumberOfClasses).Select(c => c == 0 ? w : 1f).ToArray()
                : null,
            Augmentation = Augmentation(o),
            ValidationSet = validationSet,
            Progress = progress,
        });
        return BuildInputPipeline(mlContext, data.MaskOptions).Append(trainer);
    }

    /// <summary>Null (the trainer's recipe: flips only, for runs this short) unless the flips must be set.</summary>
    static AugmentationOptions? Augmentation(SampleOptions o) =>
        // Handwritten digits are not mirror-symmetric (a flipped 3 is no digit): no flips for the built-in data.
        o.Flip == false || (o.Flip is null && o.Layout == SampleOptions.DataLayout.Default) ? AugmentationOptions.FlipsOnly(0)
        : o.Flip == true ? AugmentationOptions.FlipsOnly(0.5f)
        : null;

    /// <summary>
    /// Trains on <paramref name="data"/>, printing progress, and saves the segmenter to <paramref name="outputModelPath"/>.
    /// The saved model maps an <c>Image</c> column to <c>PredictedLabel</c>: the path-reading transforms are left out
    /// so that <see cref="ModelInput"/> only needs the image.
    /// </summary>
    public static SemanticSegmentationTransformer Train(MLContext mlContext, SampleOptions o, SampleData data, string outputModelPath)
    {
        var inputs = BuildInputPipeline(mlContext, data.MaskOptions);
        var validation = inputs.Fit(data.Validation).Transform(data.Validation);
        var clock = Stopwatch.StartNew();
        var curve = new LearningCurve();
        ITransformer model = TrainingDisplay.Run(progress => BuildPipeline(mlContext, o, data, validation, progress).Fit(data.Train), curve);
        Console.WriteLine($"Training took {clock.Elapsed:mm\\:ss}.");
        string curvePath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(outputModelPath))!, "learning-curve.png");
        curve.SavePng(curvePath);
        Console.WriteLine($"Wrote the learning curve to {curvePath}.");

        // <snippet:save-segmenter>
        var segmenter = (SemanticSegmentationTransformer)((IEnumerable<ITransformer>)model).Last();
        // The segmenter alone takes an MLImage column "Image", as in ModelInput. ML.NET can only record input schemas
        // of saveable columns (images are not), so none is recorded: inputSchema null.
        // Model.Save truncates its file first: written to a temporary file and moved into place, a save that fails (a
        // full disk, an exception) never destroys the model saved before.
        string temporary = outputModelPath + ".partial";
        try
        {
            mlContext.Model.Save(segmenter, inputSchema: null, temporary);
            File.Move(temporary, outputModelPath, overwrite: true);
        }
        finally
        {
            File.Delete(temporary);
        }
        // </snippet:save-segmenter>
        return segmenter;
    }
}
