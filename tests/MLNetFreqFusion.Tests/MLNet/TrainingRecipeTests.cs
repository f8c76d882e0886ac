using Microsoft.ML;
using MLNetFreqFusion.Training;

namespace MLNetFreqFusion.Tests.MLNet;

/// <summary>Issue 21: the settings left null are chosen from the run — the recipe from its length, the crop from the images.</summary>
[TestClass]
public sealed class TrainingRecipeTests
{
    [TestMethod]
    public void AutoIsTheShortRunRecipeBelowTenThousandStepsAndThePapersFromThere()
    {
        Assert.AreEqual(TrainingRecipe.ShortRun, RecipeDefaults.Choose(TrainingRecipe.Auto, 9_999));
        Assert.AreEqual(TrainingRecipe.MMSegmentation, RecipeDefaults.Choose(TrainingRecipe.Auto, 10_000));
        Assert.AreEqual(TrainingRecipe.MMSegmentation, RecipeDefaults.Choose(TrainingRecipe.MMSegmentation, 10));
        Assert.AreEqual(TrainingRecipe.ShortRun, RecipeDefaults.Choose(TrainingRecipe.ShortRun, 1_000_000));
    }

    [TestMethod]
    public void TheCropIsTheLargestImageRoundedUpToTheStrideAndAtMost512UnlessCropSizeIsGiven()
    {
        Assert.AreEqual((64, 96), RecipeDefaults.Crop(null, maxImageHeight: 64, maxImageWidth: 84));
        Assert.AreEqual((32, 32), RecipeDefaults.Crop(null, 1, 20));
        Assert.AreEqual((512, 512), RecipeDefaults.Crop(null, 1080, 1920));
        Assert.AreEqual((128, 512), RecipeDefaults.Crop(null, 100, 700));
        Assert.AreEqual((64, 64), RecipeDefaults.Crop(64, 1080, 1920));
    }

    [TestMethod]
    public void BalancedWeightsFollowTheSquareRootOfTheMedianOverEachClassFrequency()
    {
        // Present classes 950, 5, 5, 10 pixels: median 7.5. Class 4 never occurs and keeps 1.
        var weights = RecipeDefaults.BalancedClassWeights([950, 5, 5, 10, 0], classes: 5);

        CollectionAssert.AreEqual(new[] { 0.1f, (float)Math.Sqrt(1.5), (float)Math.Sqrt(1.5), (float)Math.Sqrt(0.75), 1f }, weights,
            $"got [{string.Join(", ", weights)}]");
        Assert.AreEqual(10f, RecipeDefaults.BalancedClassWeights([1_000_000, 1_000_000, 1], 3)[2], "a very rare class is capped at 10");
        Assert.IsNull(RecipeDefaults.ClassWeights(TrainingRecipe.MMSegmentation, [950, 5], 2));
    }

    [TestMethod]
    public void TheRecipesDifferWhereTheyShould()
    {
        var shortRun = RecipeDefaults.Augmentation(TrainingRecipe.ShortRun);
        var paper = RecipeDefaults.Augmentation(TrainingRecipe.MMSegmentation);
        Assert.AreEqual((1f, 1f, 1f, false, 0.5f),
            (shortRun.MinScaleRatio, shortRun.MaxScaleRatio, shortRun.CatMaxRatio, shortRun.PhotometricDistortion, shortRun.FlipProbability));
        Assert.AreEqual((0.5f, 2f, 0.75f, true, 0.5f),
            (paper.MinScaleRatio, paper.MaxScaleRatio, paper.CatMaxRatio, paper.PhotometricDistortion, paper.FlipProbability));
        Assert.AreEqual((1e-3, 1.0, 50), (RecipeDefaults.LearningRate(TrainingRecipe.ShortRun),
            RecipeDefaults.HeadLearningRateMultiplier(TrainingRecipe.ShortRun), RecipeDefaults.WarmupSteps(TrainingRecipe.ShortRun)));
        Assert.AreEqual((6e-5, 10.0, 1500), (RecipeDefaults.LearningRate(TrainingRecipe.MMSegmentation),
            RecipeDefaults.HeadLearningRateMultiplier(TrainingRecipe.MMSegmentation), RecipeDefaults.WarmupSteps(TrainingRecipe.MMSegmentation)));
    }

    /// <summary>
    /// Through Fit: what the run used is what the Options leave to the recipe, and the learning rates it reports are
    /// that recipe's schedule; a value the Options set wins.
    /// </summary>
    [TestMethod]
    [DataRow(null, null, DisplayName = "Auto, everything null")]
    [DataRow(TrainingRecipe.MMSegmentation, null, DisplayName = "MMSegmentation")]
    [DataRow(TrainingRecipe.MMSegmentation, 2e-4, DisplayName = "MMSegmentation, LearningRate set")]
    public void FitTrainsWithTheRecipesSettingsAndTheImagesSize(TrainingRecipe? recipe, double? learningRate)
    {
        var ml = new MLContext(seed: 1);
        var log = new List<string>();
        ml.Log += (_, e) => { lock (log) log.Add(e.Message); };
        var rates = new List<double>();
        var options = DigitsSeg.TinyOptions(epochs: 1, new SynchronousProgress(p => { if (p.ValidationMeanIoU is null) rates.Add(p.LearningRate); }));
        options.CropSize = null;
        options.LearningRate = learningRate;
        options.WarmupSteps = null;
        options.Recipe = recipe ?? TrainingRecipe.Auto;

        using var model = DigitsSeg.Fit(ml, options, rows: 8);

        double baseRate = learningRate ?? (recipe == TrainingRecipe.MMSegmentation ? 6e-5 : 1e-3);
        string expected = recipe == TrainingRecipe.MMSegmentation
            ? $"Recipe MMSegmentation: learning rate {baseRate:G3} (head ×10), 1500 warmup steps"
            : "Recipe ShortRun: learning rate 0.001 (head ×1), 50 warmup steps";
        lock (log)
        {
            Assert.IsTrue(log.Any(m => m.Contains(expected)), $"expected '{expected}' in the log:\n{string.Join("\n", log.Where(m => m.Contains("Recipe")))}");
            // The digits are 84×64: whole images, each side rounded up to the network's stride of 32.
            Assert.IsTrue(log.Any(m => m.Contains("crop 64×96 (height×width)")), "the crop is taken from the images' size");
            // Background is most of every digits image: the short-run recipe weighs it down, the paper's does not.
            Assert.IsTrue(log.Any(m => m.Contains(recipe == TrainingRecipe.MMSegmentation ? "class weights none." : "class weights [0.1, ")),
                "class weights: " + string.Join("\n", log.Where(m => m.Contains("class weights"))));
        }
        // 8 rows, batch 4, 1 epoch: 2 steps, so the warmup is capped at a tenth of the run (0 steps) and the first
        // step runs at the base rate; the second at half of it (poly, power 1).
        Assert.AreEqual(2, rates.Count);
        Assert.AreEqual(baseRate, rates[0], baseRate * 1e-9);
        Assert.AreEqual(baseRate / 2, rates[1], baseRate * 1e-9);
    }
}
