using MLNetFreqFusion.Data;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MLNetFreqFusion.Tests.Data;

[TestClass]
public sealed class AugmentationTests
{
    const int Ignore = 255;

    // Class → colour; 255 (ignore) has its own colour, so every label can be read back from the image.
    static readonly (long Label, float R, float G, float B)[] Classes =
        [(0, 20, 20, 20), (1, 230, 30, 30), (2, 30, 230, 30), (3, 30, 30, 230), (7, 230, 230, 30), (Ignore, 230, 30, 230)];

    // An asymmetric layout of 8×8 blocks (so a flip or shift of one tensor but not the other shows).
    static (Tensor Image, Tensor Mask) Synthetic(int height, int width, int seed)
    {
        var rng = new Random(seed);
        var labels = new long[height * width];
        int bh = (height + 7) / 8, bw = (width + 7) / 8;
        var blocks = new long[bh * bw];
        for (int i = 0; i < blocks.Length; i++)
            blocks[i] = Classes[rng.Next(Classes.Length)].Label;
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                labels[y * width + x] = blocks[(y / 8) * bw + x / 8];
        var mask = tensor(labels).reshape(height, width);
        return (ColoursOf(mask), mask);
    }

    static Tensor ColoursOf(Tensor mask)
    {
        var image = zeros(3, mask.shape[0], mask.shape[1]);
        foreach (var (label, r, g, b) in Classes)
        {
            var where = mask.eq(label);
            image[0].masked_fill_(where, r);
            image[1].masked_fill_(where, g);
            image[2].masked_fill_(where, b);
        }
        return image;
    }

    // The label whose colour is nearest each pixel.
    static Tensor LabelsFromColours(Tensor image)
    {
        var palette = tensor(Classes.SelectMany(c => new[] { c.R, c.G, c.B }).ToArray()).reshape(-1, 3, 1, 1);
        var distance = (image.unsqueeze(0) - palette).pow(2).sum(1);
        var labels = tensor(Classes.Select(c => c.Label).ToArray());
        return labels[distance.argmin(0)];
    }

    static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    static AugmentationOptions NoPhotometric(int crop) => new()
    {
        CropHeight = crop, CropWidth = crop, PhotometricDistortion = false, MinScaleRatio = 0.5f, MaxScaleRatio = 2f,
    };

    [TestMethod]
    public void ImageAndMaskStayAligned()
    {
        using var scope = NewDisposeScope();
        int checkedPixels = 0;
        for (int seed = 0; seed < 12; seed++)
        {
            var (image, mask) = Synthetic(40, 56, seed);
            var (img, seg) = SegmentationAugmenter.Apply(image, mask, NoPhotometric(32), Ignore, new Random(seed));

            // Bilinear resizing blends colours only next to block edges; where the mask is constant over a 5×5
            // neighbourhood (and not ignored: the padding mirrors the image under an ignored mask), the image colour
            // must name the mask's label.
            var m = seg.to(float32).unsqueeze(0).unsqueeze(0);
            var uniform = F.max_pool2d(m, 5, 1, 2).eq(-F.max_pool2d(-m, 5, 1, 2)).squeeze(0).squeeze(0);
            var padding = seg.eq(Ignore);
            var interior = uniform.logical_and(padding.logical_not());
            var derived = LabelsFromColours(img);
            long mismatches = derived.ne(seg).logical_and(interior).sum().item<long>();
            Assert.AreEqual(0L, mismatches, $"seed {seed}");
            checkedPixels += (int)interior.sum().item<long>();
        }
        Assert.IsTrue(checkedPixels > 12 * 32 * 32 / 4, $"only {checkedPixels} pixels could be checked");
    }

    [TestMethod]
    public void OutputHasTheCropSizeAndTypes()
    {
        using var scope = NewDisposeScope();
        var (image, mask) = Synthetic(40, 56, 1);
        var (img, seg) = SegmentationAugmenter.Apply(image, mask, new AugmentationOptions { CropHeight = 24, CropWidth = 36 }, Ignore, new Random(5));
        CollectionAssert.AreEqual(new long[] { 3, 24, 36 }, img.shape);
        CollectionAssert.AreEqual(new long[] { 24, 36 }, seg.shape);
        Assert.AreEqual(ScalarType.Float32, img.dtype);
        Assert.AreEqual(ScalarType.Int64, seg.dtype);
        Assert.IsTrue(img.min().item<float>() >= 0 && img.max().item<float>() <= 255);
    }

    [TestMethod]
    public void NeverInventsClassValues()
    {
        using var scope = NewDisposeScope();
        var allowed = Classes.Select(c => c.Label).ToHashSet();
        for (int seed = 0; seed < 12; seed++)
        {
            var (image, mask) = Synthetic(37, 53, seed + 100);
            var (_, seg) = SegmentationAugmenter.Apply(image, mask, new AugmentationOptions { CropHeight = 32, CropWidth = 32, MinScaleRatio = 0.3f, MaxScaleRatio = 2.7f }, Ignore, new Random(seed));
            foreach (var v in seg.unique().Item1.data<long>().ToArray())
                Assert.IsTrue(allowed.Contains(v), $"seed {seed}: label {v} was invented");
        }
    }

    [TestMethod]
    public void IgnorePixelsStayIgnoredAndPaddingIsIgnored()
    {
        using var scope = NewDisposeScope();
        var (image, mask) = Synthetic(24, 32, 7);
        long ignored = mask.eq(Ignore).sum().item<long>();
        Assert.IsTrue(ignored > 0);
        var options = new AugmentationOptions { MinScaleRatio = 1, MaxScaleRatio = 1, CropHeight = 30, CropWidth = 40, CatMaxRatio = 1, FlipProbability = 1, PhotometricDistortion = false };

        var (img, seg) = SegmentationAugmenter.Apply(image, mask, options, Ignore, new Random(0));

        // Unscaled and flipped: the original sits, mirrored, in the top-left corner; the rest is padding, whose mask
        // is ignored and whose image reflects the image across its last row and column, as inference pads.
        Assert.IsTrue(Same(seg.narrow(0, 0, 24).narrow(1, 0, 32), mask.flip(-1)));
        Assert.AreEqual(ignored + 30 * 40 - 24 * 32, seg.eq(Ignore).sum().item<long>());
        var flipped = image.flip(-1);
        Assert.IsTrue(Same(img.narrow(1, 0, 24).narrow(2, 0, 32), flipped));
        Assert.IsTrue(Same(img.narrow(1, 24, 6).narrow(2, 0, 32), flipped.narrow(1, 17, 6).flip(1)), "rows 24–29 mirror rows 22–17");
        Assert.IsTrue(Same(img.narrow(1, 0, 24).narrow(2, 32, 8), flipped.narrow(2, 23, 8).flip(2)), "columns 32–39 mirror columns 30–23");
    }

    [TestMethod]
    public void SameSeedSameResultOtherSeedOtherResult()
    {
        using var scope = NewDisposeScope();
        var (image, mask) = Synthetic(40, 56, 3);
        var options = new AugmentationOptions { CropHeight = 32, CropWidth = 32 };
        var a = SegmentationAugmenter.Apply(image, mask, options, Ignore, new Random(42));
        var b = SegmentationAugmenter.Apply(image, mask, options, Ignore, new Random(42));
        var c = SegmentationAugmenter.Apply(image, mask, options, Ignore, new Random(43));
        Assert.IsTrue(Same(a.Image, b.Image) && Same(a.Mask, b.Mask));
        Assert.IsFalse(Same(a.Image, c.Image) && Same(a.Mask, c.Mask));
    }

    [TestMethod]
    public void CatMaxRatioRedrawsCropsDominatedByOneClass()
    {
        using var scope = NewDisposeScope();
        // Left half class 1, right half class 2: a 32-wide crop of this 64-wide mask is balanced only near the middle.
        var mask = cat([full(16, 32, 1L), full(16, 32, 2L)], 1);
        var image = ColoursOf(mask);
        int Balanced(float catMaxRatio)
        {
            int balanced = 0;
            for (int seed = 0; seed < 20; seed++)
            {
                var options = new AugmentationOptions { MinScaleRatio = 1, MaxScaleRatio = 1, CropHeight = 16, CropWidth = 32, CatMaxRatio = catMaxRatio, PhotometricDistortion = false };
                var (_, seg) = SegmentationAugmenter.Apply(image, mask, options, Ignore, new Random(seed));
                long ones = seg.eq(1).sum().item<long>();
                balanced += ones > 0.25 * seg.numel() && ones < 0.75 * seg.numel() ? 1 : 0;
            }
            return balanced;
        }
        int withCheck = Balanced(0.75f), without = Balanced(1f);
        Assert.IsTrue(withCheck >= 19, $"{withCheck} of 20 crops balanced with cat_max_ratio 0.75");
        Assert.IsTrue(without <= 14, $"{without} of 20 crops balanced without the check");
    }

    [TestMethod]
    public void RescaleFollowsMmcvImrescale()
    {
        // VOC-sized image, ADE20K base scale (2048, 512) at ratio 0.5: the short edge limit (256) decides.
        Assert.AreEqual((256, 341), SegmentationAugmenter.ScaledSize(375, 500, 0.5, (2048, 512)));
        // A very wide image is limited by the long edge instead.
        Assert.AreEqual((100, 2048), SegmentationAugmenter.ScaledSize(100, 2048, 1.0, (2048, 512)));
        Assert.AreEqual((96, 126), SegmentationAugmenter.ScaledSize(64, 84, 1.5, null));
    }

    [TestMethod]
    public void HsvConversionMatchesKnownColoursAndRoundTrips()
    {
        using var scope = NewDisposeScope();
        var rgb = tensor(new float[] { 255, 0, 0, 0, 255, 0, 0, 0, 255, 128, 128, 128, 255, 128, 0 }).reshape(5, 3).t().reshape(3, 1, 5);
        var (h, s, v) = SegmentationAugmenter.ToHsv(rgb);
        CollectionAssert.AreEqual(new float[] { 0, 120, 240, 0 }, h.flatten().data<float>().ToArray()[..4]);
        Assert.AreEqual(128f / 255f * 60f, h.flatten()[4].item<float>(), 1e-3f);
        CollectionAssert.AreEqual(new float[] { 1, 1, 1, 0, 1 }, s.flatten().data<float>().ToArray());
        Assert.IsTrue(SegmentationAugmenter.FromHsv(h, s, v).allclose(rgb, atol: 1e-3));
        // Red turned by 120° is green.
        var green = SegmentationAugmenter.FromHsv((h + 120).remainder(360), s, v);
        Assert.IsTrue(green[.., 0, 0].allclose(tensor(new float[] { 0, 255, 0 }), atol: 1e-3));
    }

    [TestMethod]
    public void PhotometricDistortionChangesColoursButNotLabels()
    {
        using var scope = NewDisposeScope();
        var (image, mask) = Synthetic(16, 16, 9);
        var options = new AugmentationOptions { MinScaleRatio = 1, MaxScaleRatio = 1, CropHeight = 16, CropWidth = 16, CatMaxRatio = 1, FlipProbability = 0 };
        int changed = 0;
        for (int seed = 0; seed < 8; seed++)
        {
            var (img, seg) = SegmentationAugmenter.Apply(image, mask, options, Ignore, new Random(seed));
            Assert.IsTrue(Same(seg, mask));
            Assert.IsTrue(img.min().item<float>() >= 0 && img.max().item<float>() <= 255);
            changed += Same(img, image) ? 0 : 1;
        }
        Assert.IsTrue(changed >= 6, $"only {changed} of 8 draws changed the colours");
    }

    [TestMethod]
    public void DigitsSegSamplesGetTheCropShapeOnlyKnownLabelsAndTheSameResultForTheSameSeed()
    {
        using var scope = NewDisposeScope();
        var names = new[] { "test_00000.png", "test_00001.png", "test_00002.png" };
        var images = names.Select(n => Microsoft.ML.Data.MLImage.CreateFromFile(MaskDecodingTests.SamplePath("images", n))).ToList();
        var masks = names.Select(n => SegmentationMask.FromFile(MaskDecodingTests.SamplePath("masks", n))).ToList();
        try
        {
            var options = new AugmentationOptions { CropHeight = 48, CropWidth = 48 };
            (Tensor, Tensor)[] Augment(int seed)
            {
                var random = new Random(seed);
                return images.Select((image, i) => SegmentationAugmenter.Apply(ImageTensorConverter.ToTensor(image),
                    ImageTensorConverter.ToTensor(masks[i]), options, Ignore, random)).ToArray();
            }

            var first = Augment(1);
            var again = Augment(1);

            for (int i = 0; i < names.Length; i++)
            {
                var (x, y) = first[i];
                CollectionAssert.AreEqual(new long[] { 3, 48, 48 }, x.shape);
                CollectionAssert.AreEqual(new long[] { 48, 48 }, y.shape);
                var labels = y.unique().Item1.data<long>().ToArray();
                Assert.IsTrue(labels.All(v => v is >= 0 and <= 10 or Ignore), string.Join(",", labels));
                Assert.IsTrue(Same(x, again[i].Item1) && Same(y, again[i].Item2), $"sample {i}: the same seed gives the same crop");
            }
        }
        finally
        {
            images.ForEach(i => i.Dispose());
        }
    }

    [TestMethod]
    public void ResultNeverSharesStorageWithTheInput()
    {
        using var scope = NewDisposeScope();
        var (image, mask) = Synthetic(16, 16, 4);
        var identity = new AugmentationOptions { MinScaleRatio = 1, MaxScaleRatio = 1, CropHeight = 16, CropWidth = 16, CatMaxRatio = 1, FlipProbability = 0, PhotometricDistortion = false };
        var (img, seg) = SegmentationAugmenter.Apply(image, mask, identity, Ignore, new Random(0));
        Assert.IsTrue(Same(img, image) && Same(seg, mask));

        img.fill_(0);
        seg.fill_(1);

        Assert.AreNotEqual(0f, image.abs().sum().item<float>());
        Assert.IsFalse(mask.eq(1).all().item<bool>());
    }

    [TestMethod]
    public void InvalidOptionsAreNamed()
    {
        using var scope = NewDisposeScope();
        var (image, mask) = Synthetic(8, 8, 0);
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            SegmentationAugmenter.Apply(image, mask, new AugmentationOptions { CatMaxRatio = 0 }, Ignore, new Random(0)));
        Assert.AreEqual(nameof(AugmentationOptions.CatMaxRatio), e.ParamName);
        Assert.ThrowsExactly<ArgumentException>(() => SegmentationAugmenter.Apply(image, mask.narrow(0, 0, 4), new AugmentationOptions(), Ignore, new Random(0)));
    }
}
