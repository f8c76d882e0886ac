using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetFreqFusion.Tests.MLNet;

/// <summary>
/// Class names typed once, on the mask loader: the label column carries them as an annotation (as ML.NET's key columns
/// carry KeyValues), the trainer takes the model's names and class count from it, the predicted column carries the
/// model's names, Evaluate names its per-class metrics after them, and the loader keeps them through Model.Save/Load.
/// </summary>
[TestClass]
public sealed class ClassNameAnnotationTests : TempFolderTests
{
    static readonly string[] Names = DigitsSeg.ClassNames;

    /// <summary>Images and labels (with <paramref name="labelNames"/>) and a "PredictedLabel" column of the same masks (with <paramref name="predictedNames"/>).</summary>
    static IDataView LabelsAsPredictions(MLContext ml, IReadOnlyList<string>? labelNames, IReadOnlyList<string>? predictedNames, int rows = 2)
    {
        var pairs = DigitsSeg.Load(ml, "test", rows);
        return ml.Transforms.LoadSegmentationMasks("Label", DigitsSeg.Root, "MaskPath", classNames: labelNames)
            .Append(ml.Transforms.LoadSegmentationMasks("PredictedLabel", DigitsSeg.Root, "MaskPath", classNames: predictedNames))
            .Fit(pairs).Transform(pairs);
    }

    static IEstimator<ITransformer> NamedInputs(MLContext ml, IReadOnlyList<string> names) =>
        ml.Transforms.LoadImages("Image", imageFolder: DigitsSeg.Root, inputColumnName: "ImagePath")
            .Append(ml.Transforms.LoadSegmentationMasks("Label", imageFolder: DigitsSeg.Root, inputColumnName: "MaskPath", classNames: names));

    [TestMethod]
    public void TheMaskLoaderPutsTheClassNamesOnItsColumnAndItsMasks()
    {
        var ml = new MLContext(seed: 1);
        var pairs = DigitsSeg.Load(ml, "test", 1);
        var estimator = ml.Transforms.LoadSegmentationMasks("Label", DigitsSeg.Root, "MaskPath", classNames: Names);

        var data = estimator.Fit(pairs).Transform(pairs);

        CollectionAssert.AreEqual(Names, data.Schema["Label"].GetClassNames()!.ToArray());
        CollectionAssert.AreEqual(Names, data.GetColumn<SegmentationMask>("Label").Single().ClassNames!.ToArray());
        Assert.IsNull(ml.Transforms.LoadSegmentationMasks("Label", DigitsSeg.Root, "MaskPath").Fit(pairs).Transform(pairs)
            .Schema["Label"].GetClassNames(), "no names, no annotation");
    }

    [TestMethod]
    public void TheMaskLoaderRejectsNamesThatCannotNameTheClasses()
    {
        var ml = new MLContext(seed: 1);

        var one = Assert.Throws<ArgumentException>(() => ml.Transforms.LoadSegmentationMasks("Label", null, "MaskPath", classNames: ["background"]));
        StringAssert.Contains(one.Message, "at least 2");
        var empty = Assert.Throws<ArgumentException>(() => ml.Transforms.LoadSegmentationMasks("Label", null, "MaskPath", classNames: ["background", ""]));
        StringAssert.Contains(empty.Message, "classNames[1] is empty");
        var many = Enumerable.Range(0, 256).Select(i => $"class {i}").ToArray();
        var ignored = Assert.Throws<ArgumentException>(() => ml.Transforms.LoadSegmentationMasks("Label", null, "MaskPath", classNames: many));
        StringAssert.Contains(ignored.Message, "class 255 would be the ignore index 255");
        _ = ml.Transforms.LoadSegmentationMasks("Label", null, "MaskPath", new MaskDecodeOptions { IgnoreIndex = 65535 }, many);
    }

    [TestMethod]
    public void FitWithoutClassNamesTakesThemAndTheClassCountFromTheLabelColumnAndEvaluateUsesThem()
    {
        var ml = new MLContext(seed: 1);
        var options = DigitsSeg.TinyOptions(epochs: 1);
        options.NumberOfClasses = 0;
        using var model = NamedInputs(ml, Names).Append(ml.SemanticSegmentation().Trainers.FreqFusion(options)).Fit(DigitsSeg.Load(ml, "train", 4));

        CollectionAssert.AreEqual(Names, model.LastTransformer.ClassNames.ToArray());
        Assert.AreEqual(Names.Length, model.LastTransformer.NumberOfClasses);
        var scored = model.Transform(DigitsSeg.Load(ml, "test", 1));
        CollectionAssert.AreEqual(Names, scored.Schema["PredictedLabel"].GetClassNames()!.ToArray(), "the predicted column carries the model's names");
        var metrics = ml.SemanticSegmentation().Evaluate(scored);
        CollectionAssert.AreEqual(Names, metrics.ClassNames.ToArray());
        StringAssert.Contains(metrics.ToString(), "digit_7");
    }

    [TestMethod]
    public void ClassNamesInTheOptionsWinOverTheLabelColumns()
    {
        var ml = new MLContext(seed: 1);
        var options = DigitsSeg.TinyOptions(epochs: 1);
        options.NumberOfClasses = 0;
        options.ClassNames = Names.Select(n => n.ToUpperInvariant()).ToArray();
        string[] columnNames = [.. Names, "digit_10"];
        using var model = NamedInputs(ml, columnNames).Append(ml.SemanticSegmentation().Trainers.FreqFusion(options)).Fit(DigitsSeg.Load(ml, "train", 4));

        CollectionAssert.AreEqual(options.ClassNames.ToArray(), model.LastTransformer.ClassNames.ToArray());
    }

    [TestMethod]
    public void ANumberOfClassesThatDiffersFromTheLabelColumnsNamesIsAClearError()
    {
        var ml = new MLContext(seed: 1);
        var options = DigitsSeg.TinyOptions(epochs: 1);
        options.NumberOfClasses = 12;
        var pipeline = NamedInputs(ml, Names).Append(ml.SemanticSegmentation().Trainers.FreqFusion(options));

        var e = Assert.Throws<ArgumentException>(() => pipeline.Fit(DigitsSeg.Load(ml, "train", 4)));

        StringAssert.Contains(e.Message, "NumberOfClasses is 12, but the label column 'Label' carries 11 class names");
        StringAssert.Contains(e.Message, "Leave NumberOfClasses at 0 (or set it to 11)");
    }

    [TestMethod]
    public void ALabelValueTheColumnsNamesDoNotCoverIsAClearError()
    {
        var ml = new MLContext(seed: 1);
        var options = DigitsSeg.TinyOptions(epochs: 1);
        options.NumberOfClasses = 0;
        var pipeline = NamedInputs(ml, ["background", "digit_0", "digit_1"]).Append(ml.SemanticSegmentation().Trainers.FreqFusion(options));

        var e = Assert.Throws<InvalidOperationException>(() => pipeline.Fit(DigitsSeg.Load(ml, "train", 4)));

        StringAssert.Contains(e.Message, "is not a class (the label column 'Label' names 3 classes)");
        StringAssert.Contains(e.Message, "Give LoadSegmentationMasks' classNames a name for every class up to");
        StringAssert.Contains(e.Message, "train_0000");
    }

    [TestMethod]
    public void AValidationSetWhoseLabelColumnNamesOtherClassesFailsBeforeTraining()
    {
        var ml = new MLContext(seed: 1);
        var options = DigitsSeg.TinyOptions(epochs: 1);
        options.NumberOfClasses = 0;
        var val = DigitsSeg.Load(ml, "val", 1);
        options.ValidationSet = NamedInputs(ml, Names[..3]).Fit(val).Transform(val);
        int steps = 0;
        options.Progress = new SynchronousProgress(_ => steps++);
        var pipeline = NamedInputs(ml, Names).Append(ml.SemanticSegmentation().Trainers.FreqFusion(options));

        var e = Assert.Throws<ArgumentException>(() => pipeline.Fit(DigitsSeg.Load(ml, "train", 4)));

        StringAssert.Contains(e.Message, "The ValidationSet's label column 'Label' carries 3 class names, but the model has 11 classes");
        Assert.AreEqual(0, steps, "no training step runs");
    }

    [TestMethod]
    public void EvaluateTakesTheClassNamesAndTheirCountFromTheLabelColumn()
    {
        var ml = new MLContext(seed: 1);
        var data = LabelsAsPredictions(ml, labelNames: Names, predictedNames: null);

        var metrics = ml.SemanticSegmentation().Evaluate(data);

        Assert.AreEqual(Names.Length, metrics.NumberOfClasses);
        CollectionAssert.AreEqual(Names, metrics.ClassNames.ToArray());
        Assert.AreEqual(1.0, metrics.PixelAccuracy, "the labels scored against themselves");
        StringAssert.Contains(metrics.ToString(), "digit_7");
    }

    [TestMethod]
    public void EvaluateSaysWhenItsNumberOfClassesOrTheTwoColumnsNamesDisagree()
    {
        var ml = new MLContext(seed: 1);

        var count = Assert.Throws<ArgumentException>(() =>
            ml.SemanticSegmentation().Evaluate(LabelsAsPredictions(ml, labelNames: Names, predictedNames: null), numberOfClasses: 12));
        StringAssert.Contains(count.Message, "numberOfClasses is 12, but the label column 'Label' carries 11 class names");
        StringAssert.Contains(count.Message, "pass numberOfClasses: 11, or leave it null");

        var columns = Assert.Throws<InvalidOperationException>(() =>
            ml.SemanticSegmentation().Evaluate(LabelsAsPredictions(ml, labelNames: Names, predictedNames: Names[..3])));
        StringAssert.Contains(columns.Message, "The predicted column 'PredictedLabel' carries 3 class names (the model's) but the label column 'Label' carries 11");
    }

    [TestMethod]
    public void TheAnnotatedMaskLoaderKeepsItsClassNamesThroughSaveAndLoad()
    {
        var ml = new MLContext(seed: 1);
        var pairs = DigitsSeg.Load(ml, "test", 1);
        var loader = ml.Transforms.LoadSegmentationMasks("Label", DigitsSeg.Root, "MaskPath", DigitsSeg.Binary, ["background", "digit"]).Fit(pairs);
        var path = Path.Combine(Folder, "loader.zip");

        ml.Model.Save(loader, pairs.Schema, path);
        var loaded = new MLContext(seed: 1).Model.Load(path, out _);

        var reloaded = (SegmentationMaskLoadingTransformer)loaded;
        CollectionAssert.AreEqual(new[] { "background", "digit" }, reloaded.ClassNames!.ToArray());
        var data = loaded.Transform(pairs);
        CollectionAssert.AreEqual(new[] { "background", "digit" }, data.Schema["Label"].GetClassNames()!.ToArray());
        var mask = data.GetColumn<SegmentationMask>("Label").Single();
        CollectionAssert.AreEqual(new[] { "background", "digit" }, mask.ClassNames!.ToArray());
        Assert.IsTrue(mask.Labels.All(v => v is 0 or 1 or 255), "the value map came back too");
    }

    /// <summary>
    /// Fixtures/mask-loader/loader-0x00010001.zip: a loader saved by the format before class names (commit 5f330b9),
    /// with imageFolder "masks", ValueMap { 7 → 1 } and IgnoreIndex 200.
    /// </summary>
    [TestMethod]
    public void ALoaderSavedBeforeClassNamesLoadsWithoutThem()
    {
        var ml = new MLContext(seed: 1);
        var path = Path.Combine(AppContext.BaseDirectory, "Fixtures", "mask-loader", "loader-0x00010001.zip");
        var maskPath = Path.Combine(Folder, "mask.png");
        new SegmentationMask(2, 2, [0, 7, 200, 3]).Save(maskPath);
        // An absolute path ignores the loader's relative imageFolder.
        var rows = ml.Data.LoadFromEnumerable(new[] { new MaskRow { MaskPath = maskPath } });

        var loaded = (SegmentationMaskLoadingTransformer)ml.Model.Load(path, out _);

        Assert.IsNull(loaded.ClassNames);
        Assert.AreEqual("masks", loaded.ImageFolder);
        var data = loaded.Transform(rows);
        Assert.IsNull(data.Schema["Label"].GetClassNames());
        var mask = data.GetColumn<SegmentationMask>("Label").Single();
        CollectionAssert.AreEqual(new ushort[] { 0, 1, 200, 3 }, mask.Labels, "ValueMap { 7 → 1 } came back");
        Assert.IsNull(mask.ClassNames);
    }

    sealed class MaskRow
    {
        public string MaskPath = "";
    }
}
