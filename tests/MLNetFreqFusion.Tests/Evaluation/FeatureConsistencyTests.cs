using MLNetFreqFusion.Evaluation;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Evaluation;

[TestClass]
public sealed class FeatureConsistencyTests
{
    // Features [1, C, h, w] from per-pixel vectors given row by row.
    private static Tensor Features(int width, int height, float[][] pixels)
    {
        int channels = pixels[0].Length;
        var data = new float[channels * width * height];
        for (int p = 0; p < pixels.Length; p++)
            for (int c = 0; c < channels; c++)
                data[c * width * height + p] = pixels[p][c];
        return tensor(data, [1, channels, height, width]);
    }

    [TestMethod]
    public void OrthogonalClassFeaturesGiveIntraOneAndMarginOne()
    {
        using var scope = NewDisposeScope();
        // 4×4: class 0 in columns 0–1 (feature 2·e0), class 1 in columns 2–3 (0.5·e1), pixel (3,3) ignored with a feature
        // that would tilt either centre if it were counted.
        var labels = new ushort[16];
        var pixels = new float[16][];
        for (int p = 0; p < 16; p++)
        {
            bool left = p % 4 < 2;
            labels[p] = (ushort)(left ? 0 : 1);
            pixels[p] = left ? [2f, 0f, 0f] : [0f, 0.5f, 0f];
        }
        labels[15] = 255;
        pixels[15] = [5f, 5f, 5f];

        var report = FeatureConsistencyAnalyzer.Analyze(Features(4, 4, pixels), [new SegmentationMask(4, 4, labels)], 2);
        Assert.AreEqual(2, report.ClassCount);
        Assert.AreEqual(15, report.PixelCount);
        // Columns 1 and 2 (8 pixels) plus (3,2), next to the ignored pixel.
        Assert.AreEqual(9, report.BoundaryPixelCount);
        Assert.AreEqual(1.0, report.MeanIntraClassSimilarity, 1e-12);
        Assert.AreEqual(1.0, report.MeanSimilarityMargin, 1e-12);
        Assert.AreEqual(1.0, report.BoundaryMeanIntraClassSimilarity, 1e-12);
        Assert.AreEqual(1.0, report.BoundaryMeanSimilarityMargin, 1e-12);
    }

    [TestMethod]
    public void HandComputedSimilaritiesAndMargins()
    {
        using var scope = NewDisposeScope();
        // 4×1: class 0 = (1,0) and (0,1) → centre (½,½); class 1 = (−1,0) → centre (−1,0); the last pixel is ignored.
        // Intra: 1/√2, 1/√2, 1. Highest other: −1, 0, −1/√2 → margins 1 + 1/√2, 1/√2, 1 + 1/√2.
        var features = Features(4, 1, [[1f, 0f], [0f, 1f], [-1f, 0f], [3f, 3f]]);
        var report = FeatureConsistencyAnalyzer.Analyze(features, [new SegmentationMask(4, 1, [0, 0, 1, 255])], 2);
        double r = 1 / Math.Sqrt(2);
        Assert.AreEqual(3, report.PixelCount);
        Assert.AreEqual((2 * r + 1) / 3, report.MeanIntraClassSimilarity, 1e-12);
        Assert.AreEqual((2 + 3 * r) / 3, report.MeanSimilarityMargin, 1e-12);
        // Boundary pixels: the second (next to class 1) and the third (next to class 0 and to the ignored pixel).
        Assert.AreEqual(2, report.BoundaryPixelCount);
        Assert.AreEqual((r + 1) / 2, report.BoundaryMeanIntraClassSimilarity, 1e-12);
        Assert.AreEqual((1 + 2 * r) / 2, report.BoundaryMeanSimilarityMargin, 1e-12);
    }

    [TestMethod]
    public void CentresAreTakenOverAllBatchesBeforeSimilarities()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var random = new Random(3);
        var features = randn(4, 5, 6, 7);
        var labels = Enumerable.Range(0, 4)
            .Select(_ => new SegmentationMask(14, 12, BoundaryIoUTests.BlobMap(random, 14, 12, 3)))
            .ToArray();
        var whole = FeatureConsistencyAnalyzer.Analyze(features, labels, 3);

        var analyzer = new FeatureConsistencyAnalyzer(3);
        analyzer.AddToClassCentres(features[0..1], labels[..1]);
        analyzer.AddToClassCentres(features[1..4], labels[1..]);
        analyzer.AddToSimilarities(features[0..3], labels[..3]);
        analyzer.AddToSimilarities(features[3..4], labels[3..]);
        var batched = analyzer.Compute();

        Assert.AreEqual(whole.PixelCount, batched.PixelCount);
        Assert.AreEqual(whole.BoundaryPixelCount, batched.BoundaryPixelCount);
        Assert.AreEqual(whole.MeanIntraClassSimilarity, batched.MeanIntraClassSimilarity, 1e-12);
        Assert.AreEqual(whole.MeanSimilarityMargin, batched.MeanSimilarityMargin, 1e-12);
        Assert.AreEqual(whole.BoundaryMeanSimilarityMargin, batched.BoundaryMeanSimilarityMargin, 1e-12);

        // Centres from the first image alone differ, and so do the similarities.
        var firstOnly = new FeatureConsistencyAnalyzer(3);
        firstOnly.AddToClassCentres(features[0..1], labels[..1]);
        firstOnly.AddToSimilarities(features, labels);
        Assert.AreNotEqual(whole.MeanIntraClassSimilarity, firstOnly.Compute().MeanIntraClassSimilarity, 1e-6);
    }

    [TestMethod]
    public void LabelsAreResizedToTheFeatureMapByNearestNeighbour()
    {
        using var scope = NewDisposeScope();
        // An 8×2 label whose left half is class 0, analysed on a 2×1 feature map: one pixel per class.
        var label = new SegmentationMask(8, 2, [0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1]);
        var report = FeatureConsistencyAnalyzer.Analyze(Features(2, 1, [[1f, 0f], [0f, 1f]]), [label], 2);
        Assert.AreEqual(2, report.PixelCount);
        Assert.AreEqual(1.0, report.MeanSimilarityMargin, 1e-12);
    }

    [TestMethod]
    public void NearestResizePicksTheSamePixelsAsPyTorch()
    {
        using var scope = NewDisposeScope();
        var random = new Random(5);
        foreach (var (w, h, nw, nh) in new[] { (7, 5, 3, 4), (5, 3, 11, 7), (16, 16, 4, 4), (10, 3, 3, 10), (512, 384, 128, 96) })
        {
            var mask = Enumerable.Range(0, w * h).Select(_ => (ushort)random.Next(300)).ToArray();
            var expected = nn.functional.interpolate(tensor(mask.Select(v => (float)v).ToArray(), [1, 1, h, w]), [nh, nw],
                mode: InterpolationMode.Nearest).flatten().data<float>().Select(v => (ushort)v).ToArray();
            CollectionAssert.AreEqual(expected, NearestMaskResize.Resize(mask, w, h, nw, nh), $"{w}×{h} → {nw}×{nh}");
        }
    }

    [TestMethod]
    public void MarginsAreNaNWithASingleClass()
    {
        using var scope = NewDisposeScope();
        var report = FeatureConsistencyAnalyzer.Analyze(Features(2, 1, [[1f, 0f], [1f, 1f]]), [new SegmentationMask(2, 1, [1, 1])], 3);
        Assert.AreEqual(1, report.ClassCount);
        // Centre (1, ½): cosines 1/√1.25 and 1.5/(√2·√1.25).
        Assert.AreEqual((1 / Math.Sqrt(1.25) + 1.5 / (Math.Sqrt(2) * Math.Sqrt(1.25))) / 2, report.MeanIntraClassSimilarity, 1e-12);
        Assert.IsTrue(double.IsNaN(report.MeanSimilarityMargin));
        Assert.AreEqual(0, report.BoundaryPixelCount);
        Assert.IsTrue(double.IsNaN(report.BoundaryMeanIntraClassSimilarity));
    }

    [TestMethod]
    public void MisuseThrowsClearErrors()
    {
        using var scope = NewDisposeScope();
        var features = Features(2, 1, [[1f, 0f], [0f, 1f]]);
        SegmentationMask[] labels = [new(2, 1, [0, 1])];
        var analyzer = new FeatureConsistencyAnalyzer(2);
        Assert.Throws<InvalidOperationException>(() => analyzer.AddToSimilarities(features, labels));
        analyzer.AddToClassCentres(features, [new SegmentationMask(2, 1, [0, 0])]);
        var error = Assert.Throws<InvalidOperationException>(() => analyzer.AddToSimilarities(features, labels));
        StringAssert.Contains(error.Message, "class 1");
        Assert.Throws<InvalidOperationException>(() => analyzer.AddToClassCentres(features, labels));

        Assert.Throws<ArgumentException>(() => FeatureConsistencyAnalyzer.Analyze(features, [labels[0], labels[0]], 2));
        Assert.Throws<ArgumentException>(() => FeatureConsistencyAnalyzer.Analyze(features, [new SegmentationMask(2, 1, [0, 7])], 2));
        Assert.Throws<ArgumentException>(() => FeatureConsistencyAnalyzer.Analyze(features.squeeze(0), labels, 2));
    }
}
