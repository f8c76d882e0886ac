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
    /// ShortRun: <see cref="BalancedClassWeights"/>, which move a few hundred steps off the all-background solution
    /// (docs/benchmarks.md §10); MMSegmentation: none, as the paper's configurations.
    /// </summary>
    public static float[]? ClassWeights(TrainingRecipe recipe, IReadOnlyList<long> pixelsPerClass, int classes) =>
        recipe == TrainingRecipe.ShortRun ? BalancedClassWeights(pixelsPerClass, classes) : null;

    /// <summary>
    /// Loss weights from the classes' pixel counts in the training labels: w = √(median frequency / frequency),
    /// clamped to [0.1, 10], so a class as common as the median class weighs 1, a background covering 95 % of the
    /// pixels about 0.1, and a rare class up to 10. Classes absent from the labels weigh 1.
    /// </summary>
    public static float[] BalancedClassWeights(IReadOnlyList<long> pixelsPerClass, int classes)
    {
        var present = Enumerable.Range(0, Math.Min(classes, pixelsPerClass.Count)).Where(c => pixelsPerClass[c] > 0)
            .Select(c => (double)pixelsPerClass[c]).Order().ToArray();
        var weights = Enumerable.Repeat(1f, classes).ToArray();
        if (present.Length == 0)
            return weights;
        double median = present.Length % 2 == 1 ? present[present.Length / 2] : (present[present.Length / 2 - 1] + present[present.Length / 2]) / 2;
        for (int c = 0; c < Math.Min(classes, pixelsPerClass.Count); c++)
        {
            if (pixelsPerClass[c] > 0)
                weights[c] = (float)Math.Clamp(Math.Sqrt(median / pixelsPerClass[c]), 0.1, 10);
        }
        return weights;
    }

    /// <summary>
    /// The crop (height, width): the square CropSize when given, else the largest training image rounded up to a
    /// multiple of 32 (the network's input stride) on each side and at most <see cref="Defaults.MaxCropSize"/>.
    /// </summary>
    public static (int Height, int Width) Crop(int? cropSize, int maxImageHeight, int maxImageWidth) => cropSize is int side
        ? (side, side)
        : (FromData(maxImageHeight), FromData(maxImageWidth));

    static int FromData(int side) => Math.Clamp((side + 31) / 32 * 32, 32, Defaults.MaxCropSize);
}
