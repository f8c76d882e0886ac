using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Decoders;
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Transforms;
using MLNetFreqFusion.Inference;
using MLNetFreqFusion.Networks;
using MLNetFreqFusion.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion;

/// <summary>
/// Trains a semantic-segmentation network — a backbone with the FreqFusion decode head (or a bilinear baseline) — on
/// an image column and a <see cref="SegmentationMask"/> label column, and returns a
/// <see cref="SemanticSegmentationTransformer"/> that adds the predicted masks.
/// </summary>
/// <remarks>
/// Create it with <c>mlContext.SemanticSegmentation().Trainers.FreqFusion(...)</c>. Training runs on the CPU unless
/// <c>MLContext.GpuDeviceId</c> is set and CUDA is available (<c>MLContext.FallbackToCpu</c> decides what happens
/// when it is not). Progress goes to <c>MLContext.Log</c> and to <see cref="Options.Progress"/>;
/// <c>MLContext.CancelExecution()</c> stops training at the next step.
/// </remarks>
public sealed partial class SemanticSegmentationTrainer : IEstimator<SemanticSegmentationTransformer>
{
    readonly IHost _host;
    readonly Options _options;
    readonly SegmentationModelSettings _settings;

    internal SemanticSegmentationTrainer(IHostEnvironment env, Options options)
    {
        _host = Contracts.CheckRef(env, nameof(env)).Register(nameof(SemanticSegmentationTrainer));
        _host.CheckValue(options, nameof(options));
        SegmentationMaskDataViewType.EnsureRegistered();
        _settings = SegmentationModelSettings.FromOptions(options);
        _settings.Architecture.CheckUserArgs(_host);
        Validate(_host, options);
        _options = options;
    }

    /// <summary>The checks of the Options that do not describe the network (<see cref="SegmentationArchitecture"/> checks those).</summary>
    static void Validate(IExceptionContext ectx, Options o)
    {
        ectx.CheckUserArg(o.ClassNames is null || o.ClassNames.Count == o.NumberOfClasses, nameof(Options.ClassNames),
            $"ClassNames has {o.ClassNames?.Count} names but NumberOfClasses is {o.NumberOfClasses}; give one name per class.");
        ectx.CheckUserArg(o.IgnoreIndex < 0 || o.IgnoreIndex >= o.NumberOfClasses, nameof(Options.IgnoreIndex),
            $"IgnoreIndex {o.IgnoreIndex} is a class index (NumberOfClasses is {o.NumberOfClasses}); use a value outside the classes, such as 255.");
        ectx.CheckUserArg(o.ClassWeights is null || o.ClassWeights.Length == o.NumberOfClasses, nameof(Options.ClassWeights),
            $"ClassWeights has {o.ClassWeights?.Length} entries but NumberOfClasses is {o.NumberOfClasses}.");
        ectx.CheckUserArg(o.CropSize >= 32, nameof(Options.CropSize), $"CropSize must be at least 32 pixels; got {o.CropSize}.");
        ectx.CheckUserArg(o.BatchSize >= 1, nameof(Options.BatchSize), $"BatchSize must be at least 1; got {o.BatchSize}.");
        ectx.CheckUserArg(o.MaxEpochs >= 1, nameof(Options.MaxEpochs), $"MaxEpochs must be at least 1; got {o.MaxEpochs}.");
        ectx.CheckUserArg(o.LearningRate > 0, nameof(Options.LearningRate), $"LearningRate must be positive; got {o.LearningRate}.");
        ectx.CheckUserArg(o.WeightDecay >= 0, nameof(Options.WeightDecay), $"WeightDecay must not be negative; got {o.WeightDecay}.");
        ectx.CheckUserArg(o.HeadLearningRateMultiplier > 0, nameof(Options.HeadLearningRateMultiplier), "HeadLearningRateMultiplier must be positive.");
        ectx.CheckUserArg(o.WarmupSteps >= 0, nameof(Options.WarmupSteps), "WarmupSteps must not be negative.");
        ectx.CheckUserArg(o.DiceLossWeight >= 0, nameof(Options.DiceLossWeight), "DiceLossWeight must not be negative.");
        ectx.CheckUserArg(o.FreezeBackboneEpochs >= 0, nameof(Options.FreezeBackboneEpochs), "FreezeBackboneEpochs must not be negative.");
        ectx.CheckUserArg(o.EarlyStoppingPatience is null || o.EarlyStoppingPatience >= 1, nameof(Options.EarlyStoppingPatience), "EarlyStoppingPatience must be at least 1 when set.");
        ectx.CheckUserArg(o.SlidingWindowSize >= 32, nameof(Options.SlidingWindowSize), "SlidingWindowSize must be at least 32.");
        ectx.CheckUserArg(o.InferenceBatchSize >= 1, nameof(Options.InferenceBatchSize), "InferenceBatchSize must be at least 1.");
        ectx.CheckUserArg(o.SlidingWindowOverlap is >= 0 and < 1, nameof(Options.SlidingWindowOverlap), "SlidingWindowOverlap must be in [0, 1).");
        ectx.CheckUserArg(o.PretrainedWeightsPath is null || File.Exists(o.PretrainedWeightsPath), nameof(Options.PretrainedWeightsPath),
            $"PretrainedWeightsPath '{o.PretrainedWeightsPath}' does not exist.");
    }

    /// <summary>Checks the input schema and returns the output schema: the input plus the predicted-mask column.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        _host.CheckValue(inputSchema, nameof(inputSchema));
        SchemaChecks.CheckImageColumn(_host, inputSchema, _options.ImageColumnName);
        SchemaChecks.CheckMaskColumn(_host, inputSchema, _options.LabelColumnName, "label");
        var columns = inputSchema.ToDictionary(c => c.Name);
        foreach (var c in RowPrediction.OutputShape(_options.PredictedLabelColumnName, _options.ProbabilitiesColumnName))
            columns[c.Name] = c;
        return new SchemaShape(columns.Values);
    }

    /// <summary>Trains the network on <paramref name="input"/> and returns the transformer that predicts masks.</summary>
    /// <param name="input">Rows with an image column and a <see cref="SegmentationMask"/> label column.</param>
    public SemanticSegmentationTransformer Fit(IDataView input)
    {
        _host.CheckValue(input, nameof(input));
        GetOutputSchema(SchemaShape.Create(input.Schema));
        if (_options.ValidationSet is not null)
        {
            SchemaChecks.CheckImageColumn(_host, SchemaShape.Create(_options.ValidationSet.Schema), _options.ImageColumnName, "ValidationSet");
            SchemaChecks.CheckMaskColumn(_host, SchemaShape.Create(_options.ValidationSet.Schema), _options.LabelColumnName, "label", "ValidationSet");
        }

        using var ch = _host.Start("Training");
        var settings = _settings;
        var training = ToTrainingSettings(_options);
        var device = TorchDevice.Resolve(_host, ch);
        int seed = _host.Rand.Next();
        torch.random.manual_seed(seed);

        var rows = LabelScan.Run(_host, input, training, "training data");
        ch.Info($"Training data: {rows} rows; {settings.NumberOfClasses} classes; backbone {settings.Architecture.Backbone}, decoder {settings.Architecture.Decoder}; device {device}.");

        var network = SegmentationNetwork.Create(settings.Architecture, _options.PretrainedWeightsPath, _options.FreezeBatchNorm);
        network.to(device);
        var run = new TrainingRun(_host, ch, training, new SegmentationPredictor(network, settings.Inference, settings.ClassNames, device),
            network, device, rows, seed);
        run.Train(input);
        return new SemanticSegmentationTransformer(_host, settings, network);
    }

    static TrainingSettings ToTrainingSettings(Options o) => new()
    {
        ImageColumnName = o.ImageColumnName, LabelColumnName = o.LabelColumnName, NumberOfClasses = o.NumberOfClasses,
        IgnoreIndex = o.IgnoreIndex, ClassWeights = o.ClassWeights, DiceLossWeight = o.DiceLossWeight,
        Augmentation = o.Augmentation.WithCrop(o.CropSize), BatchSize = o.BatchSize, MaxEpochs = o.MaxEpochs,
        LearningRate = o.LearningRate, HeadLearningRateMultiplier = o.HeadLearningRateMultiplier, WeightDecay = o.WeightDecay,
        WarmupSteps = o.WarmupSteps, PolyPower = o.PolyPower, FreezeBackboneEpochs = o.FreezeBackboneEpochs,
        ValidationSet = o.ValidationSet, EarlyStoppingPatience = o.EarlyStoppingPatience, Progress = o.Progress,
    };
}
