using MLNetFreqFusion.Data;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MLNetFreqFusion.Tests.Data;

/// <summary>
/// Augmentation crops before it resizes: the crop of the resized image is computed from the source pixels it needs,
/// and must be what libtorch's whole-image resize followed by the crop gives.
/// </summary>
[TestClass]
public sealed class ResizedCropTests
{
    const int Ignore = 255;

    static Tensor RandomImage(int height, int width, int seed)
    {
        var generator = new Generator((ulong)seed);
        return rand(new long[] { 3, height, width }, generator: generator) * 255;
    }

    // Labels up to 300 (255, the ignore index, among them), so a mask resize that went through bytes would show.
    static Tensor RandomMask(int height, int width, int seed)
    {
        var generator = new Generator((ulong)seed + 1000);
        return randint(0, 301, new long[] { height, width }, generator: generator, dtype: int64);
    }

    static Tensor ResizeWhole(Tensor image, int height, int width) =>
        F.interpolate(image.unsqueeze(0), [height, width], mode: InterpolationMode.Bilinear, align_corners: false).squeeze(0);

    static Tensor ResizeWholeMask(Tensor mask, int height, int width) =>
        F.interpolate(mask.to(float32).unsqueeze(0).unsqueeze(0), [height, width], mode: InterpolationMode.Nearest).squeeze(0).squeeze(0).to(int64);

    /// <summary>
    /// How far a bilinear crop of 0..255 values may be from libtorch's. Blending in float32 rounds the last bits
    /// (about 1e-5 here); and the source coordinate itself is a float32 near the source side, which libtorch's kernels
    /// compute with a fused multiply-add where the CPU has one: a libtorch build without it rounds the coordinate once
    /// differently, by up to one float32 step (side · 2^-23), which moves a blend of values 255 apart by 255 times that.
    /// </summary>
    static double Tolerance(int height, int width) => Math.Max(1e-3, 255 * Math.Max(height, width) * Math.Pow(2, -23));

    static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    static Tensor Crop(Tensor t, (int Y, int X, int H, int W) box) => t.narrow(-2, box.Y, box.H).narrow(-1, box.X, box.W);

    /// <summary>Sources, resized sizes (down, up, 2×, the same, one side unchanged, odd ratios) and boxes at the edges and inside.</summary>
    [TestMethod]
    [DataRow(40, 56, 80, 112)]
    [DataRow(40, 56, 20, 28)]
    [DataRow(37, 53, 61, 29)]
    [DataRow(64, 48, 64, 48)]
    [DataRow(64, 48, 64, 97)]
    [DataRow(33, 71, 49, 106)]
    [DataRow(100, 90, 41, 37)]
    [DataRow(7, 300, 13, 599)]
    [DataRow(1, 5, 3, 9)]
    [DataRow(3, 2000, 5, 3999)]
    public void ABoxIsTheCropOfTheWholeResizedImageAndMask(int height, int width, int resizedHeight, int resizedWidth)
    {
        using var scope = NewDisposeScope();
        var image = RandomImage(height, width, height * 1000 + width);
        var mask = RandomMask(height, width, height * 1000 + width);
        var resized = ResizeWhole(image, resizedHeight, resizedWidth);
        var resizedMask = ResizeWholeMask(mask, resizedHeight, resizedWidth);
        var random = new Random(height + width);
        var boxes = new List<(int Y, int X, int H, int W)>
        {
            (0, 0, resizedHeight, resizedWidth),
            (0, 0, 1, 1),
            (resizedHeight - 1, resizedWidth - 1, 1, 1),
            (0, resizedWidth - Math.Min(5, resizedWidth), resizedHeight, Math.Min(5, resizedWidth)),
        };
        for (int i = 0; i < 6; i++)
        {
            int h = random.Next(1, resizedHeight + 1), w = random.Next(1, resizedWidth + 1);
            boxes.Add((random.Next(resizedHeight - h + 1), random.Next(resizedWidth - w + 1), h, w));
        }

        foreach (var box in boxes)
        {
            var crop = ResizedCrop.Image(image, resizedHeight, resizedWidth, box);
            var expected = Crop(resized, box);
            CollectionAssert.AreEqual(expected.shape, crop.shape, $"box {box}");
            Assert.AreEqual(ScalarType.Float32, crop.dtype);
            double difference = (crop - expected).abs().max().item<float>();
            Assert.IsLessThanOrEqualTo(Tolerance(height, width), difference, $"box {box}: largest difference {difference:G3}");

            var maskCrop = ResizedCrop.Mask(mask, resizedHeight, resizedWidth, box);
            Assert.AreEqual(ScalarType.Int64, maskCrop.dtype);
            Assert.IsTrue(Same(maskCrop, Crop(resizedMask, box)), $"box {box}: the mask crop differs from the resized mask's");
        }
    }

    /// <summary>Every size from 1 to 40 resized to every size from 1 to 40: the nearest-neighbour source rows are libtorch's, exactly.</summary>
    [TestMethod]
    public void NearestRowsAreLibtorchsForEverySizePair()
    {
        using var scope = NewDisposeScope();
        for (int input = 1; input <= 40; input++)
        {
            var mask = arange(input, dtype: int64).unsqueeze(1);
            for (int output = 1; output <= 40; output++)
            {
                var expected = ResizeWholeMask(mask, output, 1);
                Assert.IsTrue(Same(ResizedCrop.Mask(mask, output, 1, (0, 0, output, 1)), expected), $"{input} → {output}");
            }
        }
    }

    [TestMethod]
    public void ABoxOutsideTheResizedImageIsRefused()
    {
        using var scope = NewDisposeScope();
        var image = RandomImage(10, 10, 1);
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ResizedCrop.Image(image, 20, 20, (15, 0, 8, 8)));
        StringAssert.Contains(e.Message, "does not lie inside the resized 20×20");
    }

    /// <summary>
    /// The augmentation as it was before cropping came first: the whole image and mask resized, then mmseg's RandomCrop
    /// with its cat_max_ratio retries, drawing from <paramref name="random"/> in the same order.
    /// </summary>
    static (Tensor Image, Tensor Mask) ResizeThenCrop(Tensor image, Tensor mask, AugmentationOptions o, Random random, ref int redraws)
    {
        double ratio = o.MinScaleRatio + random.NextDouble() * (o.MaxScaleRatio - o.MinScaleRatio);
        var (nh, nw) = SegmentationAugmenter.ScaledSize((int)image.shape[1], (int)image.shape[2], ratio, o.BaseScale);
        var img = ResizeWhole(image, nh, nw);
        var seg = ResizeWholeMask(mask, nh, nw);
        (int, int, int, int) Box()
        {
            int y = random.Next(Math.Max(nh - o.CropHeight, 0) + 1), x = random.Next(Math.Max(nw - o.CropWidth, 0) + 1);
            return (y, x, Math.Min(o.CropHeight, nh), Math.Min(o.CropWidth, nw));
        }
        bool Dominated(Tensor crop)
        {
            var counts = bincount(crop.flatten());
            if (Ignore < counts.shape[0])
                counts[Ignore] = tensor(0L);
            return counts.gt(0).sum().item<long>() <= 1 || counts.max().item<long>() >= o.CatMaxRatio * counts.sum().item<long>();
        }
        var box = Box();
        for (int attempt = 0; attempt < 10 && o.CatMaxRatio < 1 && Dominated(Crop(seg, box)); attempt++)
        {
            box = Box();
            redraws++;
        }
        random.NextDouble(); // Apply's flip draw, made whatever FlipProbability is
        return (Crop(img, box), Crop(seg, box));
    }

    [TestMethod]
    [DataRow(0.5f, 2f, 0.75f)]
    [DataRow(1f, 1f, 0.75f)]
    [DataRow(1.3f, 1.9f, 1f)]
    [DataRow(0.25f, 0.6f, 0.5f)]
    public void ASeedGivesTheSamplesResizeThenCropGave(float minRatio, float maxRatio, float catMaxRatio)
    {
        using var scope = NewDisposeScope();
        // Mostly background with two small objects, so that cat_max_ratio rejects many crops and the retries run.
        var mask = zeros(new long[] { 60, 50 }, dtype: int64);
        mask[TensorIndex.Slice(20, 40), TensorIndex.Slice(15, 35)] = tensor(1L);
        mask[TensorIndex.Slice(0, 10), TensorIndex.Slice(40, 50)] = tensor(2L);
        mask[TensorIndex.Slice(50, 60), TensorIndex.Slice(0, 6)] = tensor((long)Ignore);
        var options = new AugmentationOptions
        {
            CropHeight = 24, CropWidth = 32, MinScaleRatio = minRatio, MaxScaleRatio = maxRatio, CatMaxRatio = catMaxRatio,
            FlipProbability = 0, PhotometricDistortion = false,
        };
        int redraws = 0;
        for (int seed = 0; seed < 20; seed++)
        {
            var image = RandomImage(60, 50, seed);
            var oldRandom = new Random(seed);
            var newRandom = new Random(seed);

            var (expectedImage, expectedMask) = ResizeThenCrop(image, mask, options, oldRandom, ref redraws);
            var (img, seg) = SegmentationAugmenter.Apply(image, mask, options, Ignore, newRandom);

            // Apply pads a crop smaller than CropHeight × CropWidth at the bottom and right; the crop is its top left.
            if (expectedImage.shape[1] == options.CropHeight && expectedImage.shape[2] == options.CropWidth)
            {
                double difference = (img - expectedImage).abs().max().item<float>();
                Assert.IsLessThanOrEqualTo(Tolerance(60, 50), difference, $"seed {seed}: largest difference {difference:G3}");
                Assert.IsTrue(Same(seg, expectedMask), $"seed {seed}: the masks differ");
            }
            else
            {
                var crop = img.narrow(1, 0, expectedImage.shape[1]).narrow(2, 0, expectedImage.shape[2]);
                Assert.IsLessThanOrEqualTo(Tolerance(60, 50), (crop - expectedImage).abs().max().item<float>(), $"seed {seed}");
                Assert.IsTrue(Same(seg.narrow(0, 0, expectedMask.shape[0]).narrow(1, 0, expectedMask.shape[1]), expectedMask), $"seed {seed}");
            }
            // The same number of draws: the next sample of a run starts from the same state.
            Assert.AreEqual(oldRandom.Next(), newRandom.Next(), $"seed {seed}: the draws went out of step");
        }
        if (catMaxRatio < 1)
            Assert.IsGreaterThan(0, redraws, "no crop was redrawn, so the cat_max_ratio retries went untested");
    }

    /// <summary>
    /// A 2000 × 2000 sample scaled by 2 used to be resized whole (4000 × 4000: 192 MB of float32 RGB, 64 MB of float
    /// labels and 128 MB of int64 labels, plus the copies); cropping first holds a few crops. Peak resident memory is
    /// reset just before (Linux's /proc/self/clear_refs) and read after.
    /// </summary>
    [TestMethod]
    public void AugmentingALargeImageDoesNotHoldTheResizedImage()
    {
        if (!OperatingSystem.IsLinux())
            Assert.Inconclusive("Peak resident memory is read from /proc/self, which only Linux has.");
        using var scope = NewDisposeScope();
        var image = full(new long[] { 3, 2000, 2000 }, 100f);
        image[0, 500, 700] = tensor(7f);
        var mask = ones(new long[] { 2000, 2000 }, dtype: int64);
        var options = new AugmentationOptions { CropHeight = 64, CropWidth = 64, MinScaleRatio = 2, MaxScaleRatio = 2 };
        SegmentationAugmenter.Apply(image, mask, options, Ignore, new Random(0)); // libtorch's first-call allocations

        long before = ResetPeakResidentBytes();
        for (int seed = 1; seed <= 3; seed++)
        {
            var (img, seg) = SegmentationAugmenter.Apply(image, mask, options, Ignore, new Random(seed));
            Assert.AreEqual(64, img.shape[1]);
            Assert.AreEqual(64, seg.shape[1]);
        }
        long growth = PeakResidentBytes() - before;

        Assert.IsLessThan(40L << 20, growth, $"peak resident memory grew by {growth >> 20} MB while augmenting");
    }

    static long ResetPeakResidentBytes()
    {
        File.WriteAllText("/proc/self/clear_refs", "5");
        return StatusKilobytes("VmRSS:") * 1024;
    }

    static long PeakResidentBytes() => StatusKilobytes("VmHWM:") * 1024;

    static long StatusKilobytes(string field)
    {
        var line = File.ReadLines("/proc/self/status").Single(l => l.StartsWith(field, StringComparison.Ordinal));
        return long.Parse(line[field.Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
    }
}
