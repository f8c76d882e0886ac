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
        _host.CheckUserArg(options.NumberOfClasses == 0 || options.NumberOfClasses >= 2, nameof(Options.NumberOfClasses),
            $"NumberOfClasses must be at least 2 (background and one class), or 0 to infer it from the training labels; got {options.NumberOfClasses}.");
        int declared = DeclaredClasses(options);
        // With no class count given yet, the architecture's other fields are checked now and the count at Fit.
        _settings = SegmentationModelSettings.FromOptions(options, declared == 0 ? 2 : declared);
        _settings.Architecture.CheckUserArgs(_host);
        Validate(_host, options, declared);
        _options = options;
    }

    /// <summary>
    /// The class count given before training: NumberOfClasses, else the number of ClassNames, else the number of
    /// <paramref name="columnNames"/> (the label column's), else 0 (inferred at Fit from the labels).
    /// </summary>
    static int DeclaredClasses(Options o, IReadOnlyList<string>? columnNames = null) =>
        o.NumberOfClasses != 0 ? o.NumberOfClasses : o.ClassNames?.Count ?? columnNames?.Count ?? 0;

    /// <summary>
    /// The class names of the label column of <paramref name="schema"/> (<see cref="SegmentationAnnotations.ClassNames"/>)
    /// when the Options give none, as ML.NET's trainers take a key label's values from its KeyValues annotation; null
    /// when the Options have names (they win) or the column has none. A NumberOfClasses that contradicts them is an error.
    /// </summary>
    IReadOnlyList<string>? LabelColumnClassNames(DataViewSchema schema)
    {
        if (_options.ClassNames is not null)
            return null;
        var names = schema[_options.LabelColumnName].GetClassNames();
        if (names is null)
            return null;
        string column = $"the label column '{_options.LabelColumnName}'";
        if (SegmentationAnnotations.Problem(names, _options.IgnoreIndex) is string problem)
            throw _host.Except($"The class names of {column} cannot name the classes: {problem}");
        if (_options.NumberOfClasses != 0 && _options.NumberOfClasses != names.Count)
            throw _host.ExceptUserArg(nameof(Options.NumberOfClasses),
                $"NumberOfClasses is {_options.NumberOfClasses}, but {column} carries {names.Count} class names (LoadSegmentationMasks' " +
                $"classNames). Leave NumberOfClasses at 0 (or set it to {names.Count}) to train the classes the names describe, give " +
                $"LoadSegmentationMasks {_options.NumberOfClasses} names, or set ClassNames to {_options.NumberOfClasses} names (the Options' names win over the column's).");
        return names;
    }

    /// <summary>
    /// The checks of the Options that do not describe the network (<see cref="SegmentationArchitecture"/> checks those);
    /// the ones that need the class count wait for it while <paramref name="classes"/> is 0.
    /// </summary>
    static void Validate(IExceptionContext ectx, Options o, int classes)
    {
        ectx.CheckUserArg(o.ClassNames is null || o.ClassNames.Count == classes, nameof(Options.ClassNames),
            $"ClassNames has {o.ClassNames?.Count} names but NumberOfClasses is {classes}; give one name per class.");
        // A null name passes the count check and fails only inside Model.Save, after all the training.
        ectx.CheckUserArg(o.ClassNames is null || o.ClassNames.All(name => name is not null), nameof(Options.ClassNames),
            $"ClassNames has a null at index {o.ClassNames?.ToList().IndexOf(null!)}; give every class a name (the model saves them).");
        ectx.CheckUserArg(AugmentationProblem(o.Augmentation) is null, nameof(Options.Augmentation), AugmentationProblem(o.Augmentation) ?? "");
        ectx.CheckUserArg(o.ClassWeights is null || o.ClassWeights.All(w => float.IsFinite(w) && w >= 0), nameof(Options.ClassWeights),
            $"ClassWeights must be finite and not negative; got [{string.Join(", ", o.ClassWeights ?? [])}].");
        ectx.CheckUserArg(o.ClassWeights is null || o.ClassWeights.Any(w => w > 0), nameof(Options.ClassWeights),
            "ClassWeights are all zero, so no pixel would count in the loss; give the classes to learn a positive weight (1 is neutral).");
        ectx.CheckUserArg(double.IsFinite(o.PolyPower) && o.PolyPower >= 0, nameof(Options.PolyPower),
            $"PolyPower must be finite and not negative (1 = linear decay, 0 = constant rate); got {o.PolyPower}.");
        ectx.CheckUserArg(classes == 0 || o.IgnoreIndex < 0 || o.IgnoreIndex >= classes, nameof(Options.IgnoreIndex),
            $"IgnoreIndex {o.IgnoreIndex} is a class index (NumberOfClasses is {classes}); use a value outside the classes, such as 255.");
        ectx.CheckUserArg(classes == 0 || o.ClassWeights is null || o.ClassWeights.Length == classes, nameof(Options.ClassWeights),
            $"ClassWeights has {o.ClassWeights?.Length} entries but NumberOfClasses is {classes}.");
        ectx.CheckUserArg(o.CropSize is null or >= 32, nameof(Options.CropSize), $"CropSize must be at least 32 pixels, or null to take it from the images; got {o.CropSize}.");
        ectx.CheckUserArg(Enum.IsDefined(o.Recipe), nameof(Options.Recipe), $"Recipe {(int)o.Recipe} is not a TrainingRecipe; use Auto, ShortRun or MMSegmentation.");
        ectx.CheckUserArg(o.BatchSize >= 1, nameof(Options.BatchSize), $"BatchSize must be at least 1; got {o.BatchSize}.");
        ectx.CheckUserArg(o.MaxEpochs >= 1, nameof(Options.MaxEpochs), $"MaxEpochs must be at least 1; got {o.MaxEpochs}.");
        ectx.CheckUserArg(o.LearningRate is null || (o.LearningRate > 0 && double.IsFinite(o.LearningRate.Value)), nameof(Options.LearningRate), $"LearningRate must be positive and finite, or null for the recipe's; got {o.LearningRate}.");
        ectx.CheckUserArg(o.WeightDecay >= 0 && double.IsFinite(o.WeightDecay), nameof(Options.WeightDecay), $"WeightDecay must not be negative; got {o.WeightDecay}.");
        ectx.CheckUserArg(o.HeadLearningRateMultiplier is null || (o.HeadLearningRateMultiplier > 0 && double.IsFinite(o.HeadLearningRateMultiplier.Value)), nameof(Options.HeadLearningRateMultiplier),
            $"HeadLearningRateMultiplier must be positive and finite, or null for the recipe's; got {o.HeadLearningRateMultiplier}.");
        ectx.CheckUserArg(o.WarmupSteps is null or >= 0, nameof(Options.WarmupSteps), $"WarmupSteps must not be negative; got {o.WarmupSteps}.");
        ectx.CheckUserArg(o.DiceLossWeight >= 0 && double.IsFinite(o.DiceLossWeight), nameof(Options.DiceLossWeight), "DiceLossWeight must not be negative.");
        ectx.CheckUserArg(o.FreezeBackboneEpochs >= 0, nameof(Options.FreezeBackboneEpochs), "FreezeBackboneEpochs must not be negative.");
        ectx.CheckUserArg(o.EarlyStoppingPatience is null || o.EarlyStoppingPatience >= 1, nameof(Options.EarlyStoppingPatience), "EarlyStoppingPatience must be at least 1 when set.");
        ectx.CheckUserArg(o.SlidingWindowSize >= 32, nameof(Options.SlidingWindowSize), "SlidingWindowSize must be at least 32.");
        ectx.CheckUserArg(o.InferenceBatchSize >= 1, nameof(Options.InferenceBatchSize), "InferenceBatchSize must be at least 1.");
        ectx.CheckUserArg(o.SlidingWindowOverlap is >= 0 and < 1, nameof(Options.SlidingWindowOverlap), "SlidingWindowOverlap must be in [0, 1).");
        ectx.CheckUserArg(o.PretrainedWeightsPath is null || File.Exists(o.PretrainedWeightsPath), nameof(Options.PretrainedWeightsPath),
            $"PretrainedWeightsPath '{o.PretrainedWeightsPath}' does not exist.");
    }

    static string? AugmentationProblem(AugmentationOptions? augmentation)
    {
        try
        {
            augmentation?.Validate();
            return null;
        }
        catch (ArgumentOutOfRangeException e)
        {
            return $"Augmentation.{e.ParamName}: {e.Message}";
        }
    }

    /// <summary>Checks the input schema and returns the output schema: the input plus the predicted-mask column.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        _host.CheckValue(inputSchema, nameof(inputSchema));
        SchemaChecks.CheckImageColumn(_host, inputSchema, _options.ImageColumnName);
        SchemaChecks.CheckMaskColumn(_host, inputSchema, _options.LabelColumnName, "label");
        var columns = inputSchema.ToDictionary(c => c.Name);
        foreach (var c in RowPrediction.OutputShape(_options.PredictedLabelColumnName, _options.ScoreColumnName))
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
        var columnNames = LabelColumnClassNames(input.Schema);
        int declared = DeclaredClasses(_options, columnNames);
        // A count that comes from the column's names is fixed by them, so a label they do not cover is fixed there.
        string? classesFrom = columnNames is null ? null : $"the label column '{_options.LabelColumnName}' names {declared} classes";
        var device = TorchDevice.Resolve(_host, ch);
        int seed = _host.Rand.Next();
        torch.random.manual_seed(seed);

        var scan = LabelScan.Run(_host, input, _options.LabelColumnName, _options.IgnoreIndex, declared, "training data", classesFrom: classesFrom);
        var (rows, largestLabel) = (scan.Rows, scan.LargestLabel);
        var settings = _settings;
        if (declared == 0)
        {
            // As ML.NET's trainers take the class count from the label column: the largest class index seen, plus one.
            int inferred = largestLabel + 1;
            if (inferred < 2)
                throw _host.Except($"Every labelled pixel of the training data is class {Math.Max(largestLabel, 0)}, so the number of classes cannot be inferred; " +
                    "set NumberOfClasses (background included).");
            Validate(_host, _options, inferred);
            settings = SegmentationModelSettings.FromOptions(_options, inferred);
            ch.Info($"NumberOfClasses inferred from the training labels: {inferred} (largest label {largestLabel}, ignore index {_options.IgnoreIndex} left out).");
        }
        else if (columnNames is not null)
        {
            Validate(_host, _options, declared);
            settings = SegmentationModelSettings.FromOptions(_options, declared, columnNames);
            ch.Info($"Class names from the label column '{_options.LabelColumnName}': {string.Join(", ", columnNames)}.");
        }
        // A validation set without a labelled pixel, or with a label that is no class, would fail (or score NaN) only
        // after the first epoch: checked now, in seconds.
        if (_options.ValidationSet is not null)
        {
            if (_options.ValidationSet.Schema[_options.LabelColumnName].GetClassNames() is { } validationNames && validationNames.Count != settings.NumberOfClasses)
                throw _host.ExceptUserArg(nameof(Options.ValidationSet),
                    $"The ValidationSet's label column '{_options.LabelColumnName}' carries {validationNames.Count} class names, but the model has " +
                    $"{settings.NumberOfClasses} classes; load the validation masks with the training masks' classNames.");
            LabelScan.Run(_host, _options.ValidationSet, _options.LabelColumnName, _options.IgnoreIndex, settings.NumberOfClasses, "ValidationSet", "measure",
                classesFrom);
        }
        var training = ToTrainingSettings(_options, scan, settings.NumberOfClasses);
        ch.Info($"Training data: {rows} rows; {settings.NumberOfClasses} classes; backbone {settings.Architecture.Backbone}, decoder {settings.Architecture.Decoder}; device {device}.");
        ch.Info($"Recipe {training.Recipe}: learning rate {training.LearningRate:G3} (head ×{training.HeadLearningRateMultiplier:G3}), " +
            $"{training.WarmupSteps} warmup steps (at most a tenth of the run), crop {training.Augmentation.CropHeight}×{training.Augmentation.CropWidth} " +
            $"(height×width), {training.BatchSize} images a step, {training.MaxEpochs} epochs, class weights " +
            (training.ClassWeights is null ? "none." : $"[{string.Join(", ", training.ClassWeights.Select(w => w.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture)))}]."));

        var network = SegmentationNetwork.Create(settings.Architecture, _options.PretrainedWeightsPath, _options.FreezeBatchNorm);
        network.to(device);
        var run = new TrainingRun(_host, ch, training, new SegmentationPredictor(network, settings.Inference, settings.ClassNames, device, ownThread: false),
            network, device, rows, seed);
        run.Train(input);
        return new SemanticSegmentationTransformer(_host, settings, network);
    }

    /// <summary>The settings of this run: the Options, with what they leave null chosen from the run (<see cref="RecipeDefaults"/>).</summary>
    static TrainingSettings ToTrainingSettings(Options o, LabelScan.Result scan, int classes)
    {
        var recipe = RecipeDefaults.Choose(o.Recipe, TrainingRun.TotalSteps(scan.Rows, o.BatchSize, o.MaxEpochs));
        var (cropHeight, cropWidth) = RecipeDefaults.Crop(o.CropSize, scan.MaxHeight, scan.MaxWidth);
        return new()
        {
            ImageColumnName = o.ImageColumnName, LabelColumnName = o.LabelColumnName, NumberOfClasses = classes,
            IgnoreIndex = o.IgnoreIndex, DiceLossWeight = o.DiceLossWeight, Recipe = recipe,
            ClassWeights = o.ClassWeights ?? RecipeDefaults.ClassWeights(recipe, scan.PixelsPerClass, classes),
            Augmentation = (o.Augmentation ?? RecipeDefaults.Augmentation(recipe)).WithCrop(cropHeight, cropWidth),
            BatchSize = o.BatchSize, MaxEpochs = o.MaxEpochs,
            LearningRate = o.LearningRate ?? RecipeDefaults.LearningRate(recipe),
            HeadLearningRateMultiplier = o.HeadLearningRateMultiplier ?? RecipeDefaults.HeadLearningRateMultiplier(recipe),
            WeightDecay = o.WeightDecay, WarmupSteps = o.WarmupSteps ?? RecipeDefaults.WarmupSteps(recipe), PolyPower = o.PolyPower,
            FreezeBackboneEpochs = o.FreezeBackboneEpochs, ValidationSet = o.ValidationSet,
            EarlyStoppingPatience = o.EarlyStoppingPatience, Progress = o.Progress,
        };
    }
}
