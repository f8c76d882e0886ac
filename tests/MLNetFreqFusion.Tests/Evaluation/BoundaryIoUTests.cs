using MLNetFreqFusion.Evaluation;

namespace MLNetFreqFusion.Tests.Evaluation;

[TestClass]
public sealed class BoundaryIoUTests
{
    [TestMethod]
    public void BandWidthIsTwoPercentOfTheDiagonalRoundedHalfToEvenAndAtLeastOne()
    {
        Assert.AreEqual(3, BoundaryBand.DilationFor(100, 100, 0.02)); // 2.83
        Assert.AreEqual(1, BoundaryBand.DilationFor(10, 10, 0.02)); // 0.28
        Assert.AreEqual(1, BoundaryBand.DilationFor(10, 10, 0)); // 0 → 1
        Assert.AreEqual(2, BoundaryBand.DilationFor(3, 4, 0.5)); // 2.5 → 2, as Python's round
        Assert.AreEqual(4, BoundaryBand.DilationFor(3, 4, 0.7)); // 3.5 → 4
    }

    [TestMethod]
    public void BandOfASquareIsItsInnerRingAndTheImageBorderCounts()
    {
        // 6×5 map: class 1 in a 4×3 block at x 1..4, y 1..3; class 0 around it.
        var keys = new ushort[30];
        for (int y = 1; y <= 3; y++)
            for (int x = 1; x <= 4; x++)
                keys[y * 6 + x] = 1;
        string expected =
            "######" +
            "######" +
            "##..##" +
            "######" +
            "######";
        Assert.AreEqual(expected, Render(BoundaryBand.Compute(keys, 6, 5, 1, imageBorderIsBoundary: true)));
        // Every class-0 pixel touches the block, so clipping windows to the image changes nothing here.
        Assert.AreEqual(expected, Render(BoundaryBand.Compute(keys, 6, 5, 1, imageBorderIsBoundary: false)));

        // A 7×7 map with one class-1 pixel in the corner shows the difference.
        var corner = new ushort[49];
        corner[0] = 1;
        Assert.AreEqual(
            "##....." + "##....." + "......." + "......." + "......." + "......." + ".......",
            Render(BoundaryBand.Compute(corner, 7, 7, 1, imageBorderIsBoundary: false)));
        Assert.AreEqual(
            "#######" + "##....#" + "#.....#" + "#.....#" + "#.....#" + "#.....#" + "#######",
            Render(BoundaryBand.Compute(corner, 7, 7, 1, imageBorderIsBoundary: true)));
        Assert.AreEqual(
            "#######" + "#######" + "###..##" + "##...##" + "##...##" + "#######" + "#######",
            Render(BoundaryBand.Compute(corner, 7, 7, 2, imageBorderIsBoundary: true)));
    }

    [TestMethod]
    public void BandMatchesRepeatedThreeByThreeErosionOnRandomMaps()
    {
        var random = new Random(7);
        foreach (var (width, height, d) in new[] { (1, 1, 1), (9, 1, 2), (1, 9, 1), (13, 11, 1), (13, 11, 2), (17, 12, 3), (8, 8, 9) })
        {
            var keys = BlobMap(random, width, height, 3);
            CollectionAssert.AreEqual(NaiveBand(keys, width, height, d), BoundaryBand.Compute(keys, width, height, d, true),
                $"{width}×{height}, d = {d}");
        }
    }

    [TestMethod]
    public void OnePixelShiftCostsBoundaryIoUFarMoreThanIoU()
    {
        // 20×20, a 10×10 square of class 1 at x, y 5..14, predicted one pixel to the right. d = round(0.02 · 28.3) → 1.
        const int size = 20;
        var label = new ushort[size * size];
        var predicted = new ushort[size * size];
        for (int y = 5; y <= 14; y++)
            for (int x = 5; x <= 14; x++)
            {
                label[y * size + x] = 1;
                predicted[y * size + x + 1] = 1;
            }
        var accumulator = new SegmentationMetricsAccumulator(2);
        accumulator.Update(predicted, label, size, size);
        var m = accumulator.Compute();

        // IoU: 90 / 110. Band of each square: its 36-pixel inner ring; the rings share 9 + 9 pixels of the top and bottom rows.
        Assert.AreEqual(90.0 / 110, m.PerClassIoU[1], 1e-12);
        Assert.AreEqual(18.0 / 54, m.PerClassBoundaryIoU[1], 1e-12);
        // Background: 290 / 310. Its band: the 76-pixel image border plus a 44-pixel ring around the square; the rings share
        // the 11 + 11 pixels of rows 4 and 15 → 98 / 142.
        Assert.AreEqual(290.0 / 310, m.PerClassIoU[0], 1e-12);
        Assert.AreEqual(98.0 / 142, m.PerClassBoundaryIoU[0], 1e-12);
        Assert.AreEqual((18.0 / 54 + 98.0 / 142) / 2, m.MeanBoundaryIoU, 1e-12);
    }

    [TestMethod]
    public void IgnoredPixelsAreOutsideBothMasks()
    {
        // 5×5 all class 0 with an ignored centre, predicted all 0: both masks have a hole at the centre, so both bands are
        // the border ring plus the 8 pixels around the hole, and Boundary IoU is 1 (the prediction under the hole is left out).
        var label = Enumerable.Repeat((ushort)0, 25).ToArray();
        label[12] = 255;
        var accumulator = new SegmentationMetricsAccumulator(2);
        accumulator.Update(new ushort[25], label, 5, 5);
        var m = accumulator.Compute();
        Assert.AreEqual(1.0, m.PerClassBoundaryIoU[0]);
        Assert.IsTrue(double.IsNaN(m.PerClassBoundaryIoU[1]));
        Assert.AreEqual(1.0, m.MeanBoundaryIoU);
    }

    [TestMethod]
    public void AccumulatedBandAreasMatchANaiveComputation()
    {
        var random = new Random(11);
        const int classes = 4;
        var accumulator = new SegmentationMetricsAccumulator(classes, boundaryDilationRatio: 0.05);
        var intersection = new long[classes];
        var union = new long[classes];
        foreach (var (width, height) in new[] { (23, 17), (40, 31), (12, 12) })
        {
            var label = BlobMap(random, width, height, classes + 1);
            var predicted = BlobMap(random, width, height, classes + 2); // value 5 is outside the classes
            for (int i = 0; i < label.Length; i++)
                if (label[i] == classes)
                    label[i] = 255;
            accumulator.Update(predicted, label, width, height);

            int d = Math.Max(1, (int)Math.Round(0.05 * Math.Sqrt(width * width + height * height), MidpointRounding.ToEven));
            for (ushort c = 0; c < classes; c++)
            {
                var labelMask = label.Select(v => v == c).ToArray();
                var predictedMask = predicted.Select((v, i) => v == c && label[i] != 255).ToArray();
                var labelBand = Subtract(labelMask, Erode(labelMask, width, height, d));
                var predictedBand = Subtract(predictedMask, Erode(predictedMask, width, height, d));
                for (int i = 0; i < label.Length; i++)
                {
                    if (labelBand[i] && predictedBand[i]) intersection[c]++;
                    if (labelBand[i] || predictedBand[i]) union[c]++;
                }
            }
        }
        var m = accumulator.Compute();
        for (int c = 0; c < classes; c++)
            Assert.AreEqual((double)intersection[c] / union[c], m.PerClassBoundaryIoU[c], 1e-12, $"class {c}");
    }

    // The definition, literally: X minus X eroded d times by a 3×3 square with zero padding.
    private static bool[] NaiveBand(ushort[] keys, int width, int height, int d)
    {
        var band = new bool[keys.Length];
        foreach (var value in keys.Distinct())
        {
            var mask = keys.Select(v => v == value).ToArray();
            var ring = Subtract(mask, Erode(mask, width, height, d));
            for (int i = 0; i < band.Length; i++)
                band[i] |= ring[i];
        }
        return band;
    }

    private static bool[] Erode(bool[] mask, int width, int height, int times)
    {
        for (int t = 0; t < times; t++)
        {
            var next = new bool[mask.Length];
            for (int y = 0; y < height; y++)
                for (int x = 0; x < width; x++)
                {
                    bool all = true;
                    for (int dy = -1; dy <= 1; dy++)
                        for (int dx = -1; dx <= 1; dx++)
                        {
                            int xx = x + dx, yy = y + dy;
                            all &= xx >= 0 && yy >= 0 && xx < width && yy < height && mask[yy * width + xx];
                        }
                    next[y * width + x] = all;
                }
            mask = next;
        }
        return mask;
    }

    private static bool[] Subtract(bool[] a, bool[] b) => a.Select((v, i) => v && !b[i]).ToArray();

    // Piecewise-constant random maps (random values on a coarse grid, enlarged), so bands are neither empty nor everything.
    internal static ushort[] BlobMap(Random random, int width, int height, int values)
    {
        var map = new ushort[width * height];
        var coarse = new ushort[36];
        for (int i = 0; i < coarse.Length; i++)
            coarse[i] = (ushort)random.Next(values);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                map[y * width + x] = coarse[(y * 6 / height) * 6 + x * 6 / width];
        return map;
    }

    private static string Render(bool[] band) => new(band.Select(b => b ? '#' : '.').ToArray());
}
