namespace MLNetFreqFusion.Tests.Evaluation;

[TestClass]
public sealed class SegmentationMetricsTests
{
    private const double Tolerance = 1e-12;

    // 4×2 image, 5 classes, one ignored pixel (predicted 3 there). Class 3 is predicted but never labelled, class 4 is
    // absent from both. Labelled pixels: (l,p) = (0,0) (0,0) (0,1) (1,1) (1,1) (1,0) (2,3).
    private static readonly ushort[] Label = [0, 0, 0, 1, 1, 1, 255, 2];
    private static readonly ushort[] Predicted = [0, 0, 1, 1, 1, 0, 3, 3];

    private static SemanticSegmentationMetrics ComputeExample()
    {
        var accumulator = new SegmentationMetricsAccumulator(5);
        accumulator.Update(Predicted, Label, 4, 2);
        return accumulator.Compute();
    }

    [TestMethod]
    public void PerClassValuesMatchHandComputedAreas()
    {
        // I = [2,2,0,0,0], G = [3,3,1,0,0], P = [3,3,0,1,0] (the ignored pixel's prediction 3 is not counted), U = [4,4,1,1,0].
        var m = ComputeExample();
        AssertValues([0.5, 0.5, 0, 0, double.NaN], m.PerClassIoU);
        AssertValues([2.0 / 3, 2.0 / 3, 0, double.NaN, double.NaN], m.PerClassAccuracy);
        AssertValues([2.0 / 3, 2.0 / 3, 0, 0, double.NaN], m.PerClassDice);
        AssertValues([2.0 / 3, 2.0 / 3, double.NaN, 0, double.NaN], m.PerClassPrecision);
        AssertValues([2.0 / 3, 2.0 / 3, 0, double.NaN, double.NaN], m.PerClassRecall);
        AssertValues([2.0 / 3, 2.0 / 3, double.NaN, double.NaN, double.NaN], m.PerClassFScore);
    }

    [TestMethod]
    public void MeansSkipNaNButCountZeroForClassesOnlyPredicted()
    {
        var m = ComputeExample();
        Assert.AreEqual(4.0 / 7, m.PixelAccuracy, Tolerance);
        // Class 3 (only predicted) counts with IoU 0; class 4 (absent) is left out: (0.5 + 0.5 + 0 + 0) / 4.
        Assert.AreEqual(0.25, m.MeanIoU, Tolerance);
        // Accuracy of class 3 is NaN and left out: (2/3 + 2/3 + 0) / 3.
        Assert.AreEqual(4.0 / 9, m.MeanAccuracy, Tolerance);
        Assert.AreEqual(4.0 / 9, m.MeanRecall, Tolerance);
        Assert.AreEqual(1.0 / 3, m.MeanDice, Tolerance);
        Assert.AreEqual(4.0 / 9, m.MeanPrecision, Tolerance);
        Assert.AreEqual(2.0 / 3, m.MeanFScore, Tolerance);
        // (3/7)·0.5 + (3/7)·0.5 + (1/7)·0.
        Assert.AreEqual(3.0 / 7, m.FrequencyWeightedIoU, Tolerance);
    }

    [TestMethod]
    public void MLNetsConfusionMatrixAndAccuracyNamesCarryTheSameNumbers()
    {
        var m = ComputeExample();
        var expected = m.GetConfusionMatrix();
        Microsoft.ML.Data.ConfusionMatrix matrix = m.ConfusionMatrix;
        Assert.AreEqual(5, matrix.Counts.Count);
        for (int l = 0; l < 5; l++)
            for (int p = 0; p < 5; p++)
            {
                Assert.AreEqual(expected[l, p], matrix.Counts[l][p], $"row {l} (label), column {p} (prediction)");
                Assert.AreEqual(expected[l, p], matrix.GetCountForClassPair(p, l));
            }
        CollectionAssert.AreEqual(m.PerClassPrecision.ToArray(), matrix.PerClassPrecision.ToArray());
        CollectionAssert.AreEqual(m.PerClassRecall.ToArray(), matrix.PerClassRecall.ToArray());
        StringAssert.Contains(matrix.GetFormattedConfusionTable(), "Confusion table");
        var named = new SegmentationMetricsAccumulator(5, classNames: ["sky", "road", "car", "tree", "person"]);
        named.Update(Predicted, Label, 4, 2);
        foreach (var name in new[] { "sky", "road", "car", "tree", "person" })
            StringAssert.Contains(named.Compute().ConfusionMatrix.GetFormattedConfusionTable(), name, "class names head ML.NET's table");
        Assert.AreSame(matrix, m.ConfusionMatrix, "built once");
        Assert.AreEqual(m.PixelAccuracy, m.MicroAccuracy);
        Assert.AreEqual(4.0 / 9, m.MacroAccuracy, Tolerance);
    }

    [TestMethod]
    public void ConfusionMatrixHasLabelRowsAndPredictionColumnsWithoutIgnoredPixels()
    {
        var expected = new long[5, 5];
        expected[0, 0] = 2; expected[0, 1] = 1; expected[1, 1] = 2; expected[1, 0] = 1; expected[2, 3] = 1;
        var m = ComputeExample();
        CollectionAssert.AreEqual(expected, m.GetConfusionMatrix());
        m.GetConfusionMatrix()[0, 0] = 99;
        Assert.AreEqual(2, m.GetConfusionMatrix()[0, 0], "The result must not be changed through the returned copy.");

        var table = m.GetFormattedConfusionTable().Split('\n');
        CollectionAssert.AreEqual(new[] { "2", "1", "0", "0", "0" }, Cells(table, "0")[1..]);
        CollectionAssert.AreEqual(new[] { "0", "0", "0", "1", "0" }, Cells(table, "2")[1..]);
    }

    [TestMethod]
    public void FScoreIsZeroForALabelledAndPredictedClassThatIsNeverHit()
    {
        // Class 0 labelled twice, predicted twice elsewhere: precision = recall = 0 → F-score 0 (= Dice), not NaN.
        var accumulator = new SegmentationMetricsAccumulator(2);
        accumulator.Update([1, 1, 0, 0], [0, 0, 1, 1], 4, 1);
        var m = accumulator.Compute();
        Assert.AreEqual(0.0, m.PerClassFScore[0]);
        Assert.AreEqual(0.0, m.PerClassDice[0]);
        Assert.AreEqual(0.0, m.MeanFScore);
    }

    [TestMethod]
    public void PredictionsOutsideTheClassRangeCountInTheLabelAreaOnly()
    {
        var accumulator = new SegmentationMetricsAccumulator(2);
        accumulator.Update([0, 9, 65535, 1], [0, 0, 0, 1], 2, 2);
        var m = accumulator.Compute();
        // Class 0: I = 1, G = 3, P = 1 → IoU 1/3, accuracy 1/3; class 1 is perfect. aAcc = 2/4.
        AssertValues([1.0 / 3, 1], m.PerClassIoU);
        AssertValues([1.0 / 3, 1], m.PerClassAccuracy);
        AssertValues([1, 1], m.PerClassPrecision);
        Assert.AreEqual(0.5, m.PixelAccuracy, Tolerance);
        CollectionAssert.AreEqual(new long[,] { { 1, 0 }, { 0, 1 } }, m.GetConfusionMatrix());
    }

    [TestMethod]
    public void AreasArePooledOverTheDatasetNotAveragedOverImages()
    {
        var accumulator = new SegmentationMetricsAccumulator(2);
        accumulator.Update([0, 0], [0, 0], 2, 1);
        accumulator.Update([0, 1, 1, 1], [0, 0, 0, 0], 2, 2);
        var m = accumulator.Compute();
        Assert.AreEqual(2, accumulator.ImageCount);
        // Class 0: I = 2 + 1, U = 2 + 4 → 0.5 (the mean of per-image IoUs would be 0.625).
        Assert.AreEqual(0.5, m.PerClassIoU[0], Tolerance);
        Assert.AreEqual(0.0, m.PerClassIoU[1]);
        Assert.AreEqual(0.25, m.MeanIoU, Tolerance);
    }

    [TestMethod]
    public void EveryMetricIsNaNWithoutLabelledPixels()
    {
        var accumulator = new SegmentationMetricsAccumulator(3);
        accumulator.Update([0, 1, 2, 0], [255, 255, 255, 255], 2, 2);
        var m = accumulator.Compute();
        foreach (double v in new[] { m.PixelAccuracy, m.MeanIoU, m.MeanAccuracy, m.MeanDice, m.MeanFScore, m.MeanPrecision,
                     m.MeanRecall, m.FrequencyWeightedIoU, m.MeanBoundaryIoU })
            Assert.IsTrue(double.IsNaN(v));
    }

    [TestMethod]
    public void ToStringPrintsPercentWithTwoDecimalsAndNaN()
    {
        var accumulator = new SegmentationMetricsAccumulator(5, classNames: ["road", "car", "tree", "sky", "boat"]);
        accumulator.Update(Predicted, Label, 4, 2);
        var lines = accumulator.Compute().ToString().Split('\n');
        // Class, IoU, Acc, Dice, Fscore, Precision, Recall, BIoU.
        CollectionAssert.AreEqual(new[] { "sky", "0.00", "nan", "0.00", "nan", "0.00", "nan", "0.00" }, Cells(lines, "sky"));
        CollectionAssert.AreEqual(new[] { "boat", "nan", "nan", "nan", "nan", "nan", "nan", "nan" }, Cells(lines, "boat"));
        var summaryHeader = Array.FindIndex(lines, l => l.Contains("aAcc"));
        var summary = lines[summaryHeader + 2].Split('|', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        // aAcc 4/7, mIoU 1/4, mAcc 4/9.
        CollectionAssert.AreEqual(new[] { "57.14", "25.00", "44.44" }, summary[..3]);
    }

    [TestMethod]
    public void BadLabelsThrowAndLeaveTheAccumulatorUnchanged()
    {
        var accumulator = new SegmentationMetricsAccumulator(2);
        var error = Assert.Throws<ArgumentException>(() => accumulator.Update([0, 0, 0, 0], [0, 1, 7, 0], 2, 2));
        StringAssert.Contains(error.Message, "label value 7 at pixel (x=0, y=1)");
        Assert.AreEqual(0, accumulator.ImageCount);
        Assert.IsTrue(double.IsNaN(accumulator.Compute().PixelAccuracy));

        Assert.Throws<ArgumentException>(() => accumulator.Update([0, 0, 0], [0, 0, 0, 0], 2, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SegmentationMetricsAccumulator(300, ignoreIndex: 255));
        Assert.Throws<ArgumentException>(() => new SegmentationMetricsAccumulator(2, classNames: ["only one"]));
    }

    [TestMethod]
    public void IgnoreIndexMinusOneIgnoresNothing()
    {
        var accumulator = new SegmentationMetricsAccumulator(256, ignoreIndex: -1);
        accumulator.Update([255, 0], [255, 255], 2, 1);
        Assert.AreEqual(0.5, accumulator.Compute().PerClassIoU[255], Tolerance);
    }

    internal static void AssertValues(double[] expected, IReadOnlyList<double> actual)
    {
        Assert.AreEqual(expected.Length, actual.Count);
        for (int c = 0; c < expected.Length; c++)
        {
            if (double.IsNaN(expected[c]))
                Assert.IsTrue(double.IsNaN(actual[c]), $"class {c}: expected NaN, got {actual[c]}");
            else
                Assert.AreEqual(expected[c], actual[c], Tolerance, $"class {c}");
        }
    }

    private static string[] Cells(string[] lines, string firstCell) =>
        lines.Select(l => l.Split('|', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            .Single(cells => cells.Length > 0 && cells[0] == firstCell);
}
