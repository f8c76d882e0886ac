using Microsoft.ML.Data;
using MLNetFreqFusion.Data;

namespace MLNetFreqFusion.Tests.Data;

[TestClass]
public sealed class SegmentationMaskOutputTests : TempFolderTests
{
    [TestMethod]
    public void ColorizedPngKeepsIndicesAndShowsVocColours()
    {
        ushort[] labels = [0, 1, 2, 15, 255, 3];
        var path = Path.Combine(Folder, "colour.png");
        new SegmentationMask(3, 2, labels).SaveColorized(path);

        CollectionAssert.AreEqual(labels, SegmentationMask.FromFile(path).Labels, "palette indices are the classes");
        var rgba = MaskDecodingTests.SkiaRgba(path);
        // VOC: 1 = (128,0,0), 2 = (0,128,0), 3 = (128,128,0), 15 = (192,128,128), 255 = (224,224,192).
        byte[][] expected = [[0, 0, 0], [128, 0, 0], [0, 128, 0], [192, 128, 128], [224, 224, 192], [128, 128, 0]];
        for (int i = 0; i < labels.Length; i++)
            CollectionAssert.AreEqual(expected[i], rgba[(4 * i)..(4 * i + 3)], $"class {labels[i]}");
    }

    [TestMethod]
    public void ColorizedWithCustomPaletteAndWideIndices()
    {
        var path = Path.Combine(Folder, "custom.png");
        new SegmentationMask(2, 1, [0, 1]).SaveColorized(path, [(1, 2, 3), (250, 251, 252)]);
        CollectionAssert.AreEqual(new byte[] { 1, 2, 3, 255, 250, 251, 252, 255 }, MaskDecodingTests.SkiaRgba(path));

        var e = Assert.ThrowsExactly<ArgumentException>(() => new SegmentationMask(2, 1, [0, 5]).SaveColorized(path, [(1, 2, 3)]));
        StringAssert.Contains(e.Message, "class 5");

        // Beyond 255 a palette PNG cannot hold the classes, so the colours go to an RGB PNG.
        var wide = Path.Combine(Folder, "wide.png");
        new SegmentationMask(2, 1, [300, 1]).SaveColorized(wide);
        var (r, g, b) = SegmentationPalette.Voc(300);
        CollectionAssert.AreEqual(new byte[] { r, g, b, 255, 128, 0, 0, 255 }, MaskDecodingTests.SkiaRgba(wide));
        Assert.AreNotEqual(SegmentationPalette.Voc(300), SegmentationPalette.Voc(300 % 256));
    }

    [TestMethod]
    public void OverlayBlendsImageAndClassColour()
    {
        using var image = MLImage.CreateFromPixels(2, 1, MLPixelFormat.Bgra32, [10, 20, 200, 255, 0, 0, 0, 255]);
        var path = Path.Combine(Folder, "overlay.png");

        new SegmentationMask(2, 1, [1, 2]).SaveOverlay(image, path, alpha: 0.25f);

        // pixel 0: image RGB (200,20,10) with class 1 (128,0,0); pixel 1: black with class 2 (0,128,0).
        CollectionAssert.AreEqual(new byte[] { 182, 15, 8, 255, 0, 32, 0, 255 }, MaskDecodingTests.SkiaRgba(path));
        using var small = MLImage.CreateFromPixels(1, 1, MLPixelFormat.Bgra32, [0, 0, 0, 255]);
        var e = Assert.ThrowsExactly<ArgumentException>(() => new SegmentationMask(2, 1, [1, 2]).SaveOverlay(small, path));
        StringAssert.Contains(e.Message, "1×1");
    }

    [TestMethod]
    public void ToMLImageGivesOpaqueClassColours()
    {
        using var image = new SegmentationMask(2, 2, [0, 1, 2, 255]).ToMLImage();
        Assert.AreEqual(MLPixelFormat.Rgba32, image.PixelFormat);
        CollectionAssert.AreEqual(new byte[] { 0, 0, 0, 255, 128, 0, 0, 255, 0, 128, 0, 255, 224, 224, 192, 255 }, image.Pixels.ToArray());
    }

    [TestMethod]
    public void PixelCountsPerClass()
    {
        var counts = new SegmentationMask(3, 2, [0, 2, 2, 255, 0, 2]).CountPixelsPerClass();
        Assert.AreEqual(256, counts.Length);
        Assert.AreEqual(2L, counts[0]);
        Assert.AreEqual(0L, counts[1]);
        Assert.AreEqual(3L, counts[2]);
        Assert.AreEqual(1L, counts[255]);
        Assert.AreEqual(6L, counts.Sum());
    }

    [TestMethod]
    public void SaveRefusesNonPngNames()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => new SegmentationMask(1, 1, [0]).Save(Path.Combine(Folder, "m.jpg")));
        StringAssert.Contains(e.Message, ".png");
    }

    [TestMethod]
    public void StreamsReceiveTheBytesOfTheFilesAndStayOpen()
    {
        var mask = new SegmentationMask(2, 1, [1, 2]);
        using var image = MLImage.CreateFromPixels(2, 1, MLPixelFormat.Bgra32, [10, 20, 200, 255, 0, 0, 0, 255]);
        var writes = new (Action<string> ToFile, Action<Stream> ToStream)[]
        {
            (mask.Save, mask.Save),
            (path => mask.SaveColorized(path), output => mask.SaveColorized(output)),
            (path => mask.SaveOverlay(image, path, 0.25f), output => mask.SaveOverlay(image, output, 0.25f)),
        };
        foreach (var (toFile, toStream) in writes)
        {
            var path = Path.Combine(Folder, "file.png");
            toFile(path);
            using var output = new MemoryStream();
            toStream(output);
            Assert.IsTrue(output.CanWrite, "the caller's stream stays open");
            CollectionAssert.AreEqual(File.ReadAllBytes(path), output.ToArray());
        }
        using var readOnly = new MemoryStream(new byte[16], writable: false);
        var e = Assert.ThrowsExactly<ArgumentException>(() => mask.Save(readOnly));
        StringAssert.Contains(e.Message, "not writable");
    }

    [TestMethod]
    public void AFailedSaveLeavesNoFileBehind()
    {
        var path = Path.Combine(Folder, "overlay.png");
        using var small = MLImage.CreateFromPixels(1, 1, MLPixelFormat.Bgra32, [0, 0, 0, 255]);
        Assert.ThrowsExactly<ArgumentException>(() => new SegmentationMask(2, 1, [1, 2]).SaveOverlay(small, path));
        Assert.ThrowsExactly<ArgumentException>(() => new SegmentationMask(2, 1, [0, 5]).SaveColorized(path, [(1, 2, 3)]));
        Assert.IsFalse(File.Exists(path));
    }
}
