using Defaults = MLNetFreqFusion.SemanticSegmentationTrainer.Defaults;

namespace MLNetFreqFusion.Training;

/// <summary>
/// Fills the training settings the user left null from the run: the recipe from its length in steps (Auto), then
/// learning rate, head multiplier, warmup and augmentation from the recipe, and the crop from the training images'
/// size. The values themselves are in <see cref="SemanticSegmentationTrainer.Defaults"/>.
/// </summary>
internal static class RecipeDefaults
{
    /// <summary>The recipe a run of <paramref name="totalSteps"/> optimizer steps follows.</summary>
    public static TrainingRecipe Choose(TrainingRecipe recipe, int totalSteps) => recipe switch
    {
        TrainingRecipe.Auto => totalSteps < Defaults.ShortRunStepLimit ? TrainingRecipe.ShortRun : TrainingRecipe.MMSegmentation,
        _ => recipe,
    };

    public static double LearningRate(TrainingRecipe recipe) =>
        recipe == TrainingRecipe.ShortRun ? Defaults.ShortRunLearningRate : Defaults.MMSegmentationLearningRate;

    public static double HeadLearningRateMultiplier(TrainingRecipe recipe) =>
        recipe == TrainingRecipe.ShortRun ? Defaults.ShortRunHeadLearningRateMultiplier : Defaults.MMSegmentationHeadLearningRateMultiplier;

    public static int WarmupSteps(TrainingRecipe recipe) =>
        recipe == TrainingRecipe.ShortRun ? Defaults.ShortRunWarmupSteps : Defaults.MMSegmentationWarmupSteps;

    // A few epochs cannot show each image at many scales and colours: in the sweep of docs/benchmarks.md §10 the
    // paper's augmentation slowed learning at 12 epochs. Flips cost nothing and help wherever mirror images are alike.
    public static AugmentationOptions Augmentation(TrainingRecipe recipe) => recipe == TrainingRecipe.ShortRun
        ? AugmentationOptions.FlipsOnly(Defaults.ShortRunFlipProbability)
        : new AugmentationOptions();

    /// <summary>
    /// The crop (height, width): the square CropSize when given, else the largest training image rounded up to a
    /// multiple of 32 (the network's input stride) on each side and at most <see cref="Defaults.MaxCropSize"/>.
    /// </summary>
    public static (int Height, int Width) Crop(int? cropSize, int maxImageHeight, int maxImageWidth) => cropSize is int side
        ? (side, side)
        : (FromData(maxImageHeight), FromData(maxImageWidth));

    static int FromData(int side) => Math.Clamp((side + 31) / 32 * 32, 32, Defaults.MaxCropSize);
}
