using Microsoft.ML;
using MLNetFreqFusion.Data;

namespace MLNetFreqFusion.Training;

/// <summary>
/// What the optimisation loop needs of the trainer's Options, made once by <see cref="SemanticSegmentationTrainer"/>
/// after validation. Field meanings and defaults are documented on <see cref="SemanticSegmentationTrainer.Options"/>.
/// </summary>
internal sealed record TrainingSettings
{
    public required string ImageColumnName { get; init; }
    public required string LabelColumnName { get; init; }
    public required int NumberOfClasses { get; init; }
    public required int IgnoreIndex { get; init; }
    public float[]? ClassWeights { get; init; }
    public double DiceLossWeight { get; init; }
    /// <summary>The augmentation (the Options' or the recipe's) with the crop size applied.</summary>
    public required AugmentationOptions Augmentation { get; init; }
    /// <summary>The recipe the run follows, Auto resolved.</summary>
    public required TrainingRecipe Recipe { get; init; }
    public required int BatchSize { get; init; }
    public required int MaxEpochs { get; init; }
    public required double LearningRate { get; init; }
    public required double HeadLearningRateMultiplier { get; init; }
    public required double WeightDecay { get; init; }
    public required int WarmupSteps { get; init; }
    public required double PolyPower { get; init; }
    public int FreezeBackboneEpochs { get; init; }
    public IDataView? ValidationSet { get; init; }
    public int? EarlyStoppingPatience { get; init; }
    public IProgress<SemanticSegmentationProgress>? Progress { get; init; }
}
