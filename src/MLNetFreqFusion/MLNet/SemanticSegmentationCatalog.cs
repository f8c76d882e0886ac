using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Decoders;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNetFreqFusion;
using MLNetFreqFusion.Evaluation;

namespace Microsoft.ML;

/// <summary>Entry point of semantic segmentation on an <see cref="MLContext"/>: <c>mlContext.SemanticSegmentation()</c>.</summary>
public static class SemanticSegmentationMLContextExtensions
{
    /// <summary>The semantic-segmentation catalog: trainers and evaluation.</summary>
    /// <param name="mlContext">The ML.NET context.</param>
    /// <returns>A catalog bound to <paramref name="mlContext"/>.</returns>
    public static SemanticSegmentationCatalog SemanticSegmentation(this MLContext mlContext)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        return new SemanticSegmentationCatalog(mlContext);
    }

    /// <summary>
    /// Stops work running on <paramref name="mlContext"/>: a segmentation Fit ends at its next step with an
    /// <see cref="OperationCanceledException"/>. ML.NET 5 keeps <c>MLContext.CancelExecution</c> internal; this makes it
    /// callable, for example from <see cref="SemanticSegmentationTrainer.Options.Progress"/> or another thread.
    /// </summary>
    /// <param name="mlContext">The context whose work to cancel. It stays cancelled: use a new context afterwards.</param>
    public static void CancelExecution(this MLContext mlContext)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        mlContext.CancelExecution(); // binds to the internal instance method: the library compiles against publicized ML.NET
    }
}

/// <summary>Trainers and evaluation for semantic segmentation, from <c>mlContext.SemanticSegmentation()</c>.</summary>
public sealed class SemanticSegmentationCatalog
{
    readonly IHostEnvironment _env;

    internal SemanticSegmentationCatalog(MLContext mlContext)
    {
        _env = mlContext;
        SegmentationMaskDataViewType.EnsureRegistered();
        Trainers = new SemanticSegmentationTrainers(_env);
    }

    /// <summary>The segmentation trainers.</summary>
    public SemanticSegmentationTrainers Trainers { get; }

    /// <summary>
    /// Computes mmsegmentation's IoU metrics (and Boundary IoU) of predicted masks against label masks over the whole
    /// data set. Pixels whose label is <paramref name="ignoreIndex"/> count nowhere.
    /// </summary>
    /// <param name="data">Scored data: the output of a <see cref="SemanticSegmentationTransformer"/>.</param>
    /// <param name="labelColumnName">Column of label masks (<see cref="SegmentationMask"/>).</param>
    /// <param name="predictedLabelColumnName">Column of predicted masks (<see cref="SegmentationMask"/>).</param>
    /// <param name="numberOfClasses">Number of classes. Default null: the number of class names (annotation
    /// <see cref="SegmentationAnnotations.ClassNames"/>) of the predicted column — a trained model's own — else of the
    /// label column (<c>LoadSegmentationMasks(..., classNames: ...)</c>), else of the predicted masks. The same names
    /// name the per-class metrics; a given value that differs from their number is an error.</param>
    /// <param name="ignoreIndex">Label value left out of every metric. Default 255.</param>
    /// <param name="boundaryDilationRatio">Boundary IoU band width as a fraction of the image diagonal. Default 0.02.</param>
    /// <returns>The metrics, as fractions in [0, 1].</returns>
    /// <exception cref="InvalidOperationException">The data has no rows, or every label pixel is the ignore index (nothing to measure).</exception>
    public SemanticSegmentationMetrics Evaluate(IDataView data, string labelColumnName = "Label", string predictedLabelColumnName = "PredictedLabel",
        int? numberOfClasses = null, int ignoreIndex = 255, double boundaryDilationRatio = 0.02)
    {
        var host = _env.Register("SemanticSegmentationEvaluation");
        host.CheckValue(data, nameof(data));
        var shape = SchemaShape.Create(data.Schema);
        SchemaChecks.CheckMaskColumn(host, shape, labelColumnName, "label");
        SchemaChecks.CheckMaskColumn(host, shape, predictedLabelColumnName, "predicted label");
        return SegmentationEvaluation.Evaluate(host, data, labelColumnName, predictedLabelColumnName, numberOfClasses, ignoreIndex, boundaryDilationRatio);
    }
}

/// <summary>Segmentation trainers, from <c>mlContext.SemanticSegmentation().Trainers</c>.</summary>
public sealed class SemanticSegmentationTrainers
{
    readonly IHostEnvironment _env;

    internal SemanticSegmentationTrainers(IHostEnvironment env) => _env = env;

    /// <summary>
    /// A backbone with the FreqFusion decode head, trained with the recipe that fits the run's length
    /// (<see cref="TrainingRecipe.Auto"/>: the short-run recipe below 10 000 steps, the paper's above).
    /// </summary>
    /// <param name="labelColumnName">Column of label masks (<see cref="SegmentationMask"/>, from <c>LoadSegmentationMasks</c>).</param>
    /// <param name="imageColumnName">Column of images (<see cref="MLImage"/>, from <c>LoadImages</c>).</param>
    /// <param name="numberOfClasses">Number of classes, background included. Default 0: inferred from the training labels
    /// (the largest label value + 1, the ignore index left out), see <see cref="SemanticSegmentationTrainer.Options.NumberOfClasses"/>.</param>
    /// <param name="predictedLabelColumnName">Output column of predicted masks.</param>
    /// <param name="backbone">The encoder. Default <see cref="SegmentationBackbone.ResNet18ImageNet"/>: ImageNet-pretrained,
    /// as ML.NET's own image trainers start from pretrained weights. Its weights come from the NuGet package
    /// Microsoft.ML.DnnImageFeaturizer.ResNet18, which the application references (docs/getting-started.md); without it
    /// Fit fails and says so.</param>
    /// <param name="decoder">The decode head; the bilinear heads are baselines for comparison. Default FreqFusion.</param>
    /// <param name="maxEpochs">Passes over the training data. Default: <see cref="SemanticSegmentationTrainer.Options.MaxEpochs"/>'s.</param>
    /// <param name="batchSize">Images per step. Default: <see cref="SemanticSegmentationTrainer.Options.BatchSize"/>'s.</param>
    /// <param name="cropSize">Side of the square training crops. Default null: the training images' size, at most 512 (see <see cref="SemanticSegmentationTrainer.Options.CropSize"/>).</param>
    /// <param name="validationSet">Data scored after every epoch; the best epoch's weights are kept.</param>
    /// <returns>The trainer; <c>Fit</c> returns a <see cref="SemanticSegmentationTransformer"/>.</returns>
    public SemanticSegmentationTrainer FreqFusion(string labelColumnName = SemanticSegmentationTrainer.Defaults.LabelColumnName,
        string imageColumnName = SemanticSegmentationTrainer.Defaults.ImageColumnName, int numberOfClasses = 0,
        string predictedLabelColumnName = SemanticSegmentationTrainer.Defaults.PredictedLabelColumnName,
        SegmentationBackbone backbone = SemanticSegmentationTrainer.Defaults.ShortOverloadBackbone,
        SegmentationDecoder decoder = SemanticSegmentationTrainer.Defaults.Decoder, int maxEpochs = SemanticSegmentationTrainer.Defaults.MaxEpochs,
        int batchSize = SemanticSegmentationTrainer.Defaults.BatchSize, int? cropSize = null,
        IDataView? validationSet = null)
        => new(_env, new SemanticSegmentationTrainer.Options
        {
            LabelColumnName = labelColumnName, ImageColumnName = imageColumnName, NumberOfClasses = numberOfClasses,
            PredictedLabelColumnName = predictedLabelColumnName, Backbone = backbone, Decoder = decoder, MaxEpochs = maxEpochs,
            BatchSize = batchSize, CropSize = cropSize, ValidationSet = validationSet,
        });

    /// <summary>A segmentation trainer with every option (<see cref="SemanticSegmentationTrainer.Options"/>).</summary>
    /// <param name="options">The options; every field has a default.</param>
    /// <returns>The trainer; <c>Fit</c> returns a <see cref="SemanticSegmentationTransformer"/>.</returns>
    public SemanticSegmentationTrainer FreqFusion(SemanticSegmentationTrainer.Options options) => new(_env, options);
}
