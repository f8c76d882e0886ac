using System.Buffers.Binary;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetFreqFusion.Data;
using SkiaSharp;

namespace MLNetFreqFusion.Tests.Data;

/// <summary>
/// Damaged and hostile image and mask files: each fails with a message naming the file, never a native crash, an
/// overflow without a name, or black pixels. The inputs are built here from a few bytes.
/// </summary>
[TestClass]
public sealed class HostileFileTests : TempFolderTests
{
    // A PNG header declaring a huge image followed by one short, valid IDAT: a few dozen bytes.
    static byte[] HugePng(int side, int bitDepth, int colorType) =>
        MaskDecodingTests.BuildPng(side, side, bitDepth, colorType, new byte[64], colorType == PngHeader.Palette ? new byte[] { 0, 0, 0, 255, 255, 255 } : null);

    string Write(string name, byte[] bytes)
    {
        var path = Path.Combine(Folder, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [TestMethod]
    [DataRow(50000, 8, PngHeader.Grayscale, DisplayName = "8-bit gray 50000² (SkiaSharp path)")]
    [DataRow(70000, 8, PngHeader.Rgb, DisplayName = "RGB 70000² (SkiaSharp colour path)")]
    [DataRow(70000, 8, PngHeader.Palette, DisplayName = "palette 70000² (chunk reader)")]
    [DataRow(50000, 16, PngHeader.Grayscale, DisplayName = "16-bit gray 50000² (chunk reader)")]
    public void AMaskDeclaringHugeSizeIsRefusedBeforeDecodingWithItsName(int side, int bitDepth, int colorType)
    {
        var path = Write("huge.png", HugePng(side, bitDepth, colorType));
        Assert.IsLessThan(200, new FileInfo(path).Length);

        var e = Assert.ThrowsExactly<InvalidDataException>(() => SegmentationMask.FromFile(path));

        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, "SegmentationMask.MaxPixels");
        StringAssert.Contains(e.Message, $"{side}×{side}");
    }

    [TestMethod]
    public void AMaskDeclaringASideBeyondThePngLimitNamesTheFile()
    {
        var bytes = HugePng(100, 8, PngHeader.Palette);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(16), 0x9000_0000); // width above 2^31 - 1; CRC now wrong too
        var path = Write("wide.png", bytes);

        var e = Assert.ThrowsExactly<InvalidDataException>(() => SegmentationMask.FromFile(path));

        StringAssert.Contains(e.Message, path);
    }

    [TestMethod]
    public void LoadSegmentationMasksRefusesAHugeMaskWithItsName()
    {
        Write("huge.png", HugePng(50000, 8, PngHeader.Grayscale));
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(new[] { new PathRow { MaskPath = "huge.png" } });
        var masks = ml.Transforms.LoadSegmentationMasks("Label", Folder, "MaskPath").Fit(data).Transform(data);

        var e = Assert.Throws<Exception>(() => masks.GetColumn<SegmentationMask>("Label").ToArray());

        StringAssert.Contains(e.ToString(), "huge.png");
        StringAssert.Contains(e.ToString(), "MaxPixels");
    }

    sealed class PathRow
    {
        public string MaskPath { get; set; } = "";
    }

    /// <summary>
    /// A bit flipped in a palette mask's PLTE chunk: the indices still read (and zlib's checksum does not cover the
    /// palette), so only the chunk CRC tells that the file is damaged.
    /// </summary>
    [TestMethod]
    public void APaletteMaskWithACorruptChunkIsRefused()
    {
        var path = Path.Combine(Folder, "mask.png");
        var indices = new ushort[40 * 30];
        for (int i = 0; i < indices.Length; i++)
            indices[i] = (ushort)(i % 6);
        new SegmentationMask(40, 30, indices).SaveColorized(path);
        var bytes = File.ReadAllBytes(path);
        bytes[IndexOf(bytes, "PLTE"u8) + 4 + 5] ^= 0x10;
        File.WriteAllBytes(path, bytes);

        var e = Assert.ThrowsExactly<InvalidDataException>(() => SegmentationMask.FromFile(path));

        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, "CRC of its PLTE chunk");
    }

    [TestMethod]
    public void APaletteMaskCutBetweenChunksIsRefused()
    {
        var path = Path.Combine(Folder, "mask.png");
        new SegmentationMask(8, 8, new ushort[64]).SaveColorized(path);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^12]); // without IEND

        var e = Assert.ThrowsExactly<InvalidDataException>(() => SegmentationMask.FromFile(path));

        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, "truncated");
    }

    static int IndexOf(byte[] bytes, ReadOnlySpan<byte> what) => bytes.AsSpan().IndexOf(what);

    static byte[] NoisyPng(int width, int height, int seed)
    {
        var random = new Random(seed);
        var rgba = new byte[4 * width * height];
        random.NextBytes(rgba);
        for (int i = 3; i < rgba.Length; i += 4)
            rgba[i] = 255;
        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var image = SKImage.FromPixelCopy(info, rgba);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    [TestMethod]
    public void AStrictlyDecodedImageHasTheSamePixelsAsMLImageCreateFromFile()
    {
        var path = Write("image.png", NoisyPng(37, 21, 1));
        using var lenient = MLImage.CreateFromFile(path);

        using var strict = StrictImageDecoder.DecodeImage(File.ReadAllBytes(path), path, 1 << 20, "test limit");

        Assert.AreEqual(lenient.PixelFormat, strict.PixelFormat);
        Assert.AreEqual((lenient.Width, lenient.Height), (strict.Width, strict.Height));
        CollectionAssert.AreEqual(lenient.Pixels.ToArray(), strict.Pixels.ToArray());
        Assert.AreEqual(path, strict.Tag);
    }

    [TestMethod]
    public void ATruncatedImageIsRefusedWhereMLImageFillsItWithBlack()
    {
        var whole = NoisyPng(64, 64, 2);
        var path = Write("cut.png", whole[..(whole.Length * 2 / 3)]);
        using (var lenient = MLImage.CreateFromFile(path))
            Assert.AreEqual(64, lenient.Height, "MLImage accepts the cut file (the reason for the strict decoder)");

        var e = Assert.ThrowsExactly<InvalidDataException>(() => StrictImageDecoder.DecodeImage(File.ReadAllBytes(path), path, 1 << 20, "test limit"));

        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, "truncated");
    }

    [TestMethod]
    public void AnImageWithCorruptPixelDataIsRefused()
    {
        var bytes = NoisyPng(64, 64, 3);
        int idat = IndexOf(bytes, "IDAT"u8);
        bytes[idat + 4 + 200] ^= 0x40;
        var path = Write("flipped.png", bytes);

        var e = Assert.ThrowsExactly<InvalidDataException>(() => StrictImageDecoder.DecodeImage(File.ReadAllBytes(path), path, 1 << 20, "test limit"));

        StringAssert.Contains(e.Message, path);
    }

    [TestMethod]
    public void AnImageDeclaringHugeSizeIsRefusedBeforeDecoding()
    {
        var path = Write("huge.png", HugePng(50000, 8, PngHeader.Rgb));

        var e = Assert.ThrowsExactly<InvalidDataException>(() => StrictImageDecoder.DecodeImage(File.ReadAllBytes(path), path, 1 << 20, "Some:Limit"));

        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, "Some:Limit");
    }

    [TestMethod]
    public void BytesThatAreNoImageNameTheFile()
    {
        var e = Assert.ThrowsExactly<InvalidDataException>(() => StrictImageDecoder.DecodeImage("not an image"u8.ToArray(), "notes.png", 1 << 20, "test limit"));

        StringAssert.Contains(e.Message, "notes.png");
    }

    sealed class ImageRow
    {
        public string ImagePath { get; set; } = "";
    }

    /// <summary>LoadImages itself: a cut file gives black rows, garbage fails without a name; the check names both.</summary>
    [TestMethod]
    public void ImageSourceCheckNamesTheFileAndRowOfImagesLoadImagesAccepts()
    {
        var whole = NoisyPng(64, 64, 4);
        Write("good.png", whole);
        Write("cut.png", whole[..(whole.Length / 2)]);
        Write("garbage.png", "GIF89a but not really"u8.ToArray());
        var ml = new MLContext(1);
        var rows = ml.Data.LoadFromEnumerable(new[] { "good.png", "cut.png", "garbage.png" }.Select(p => new ImageRow { ImagePath = p }));
        var images = ml.Transforms.LoadImages("Image", Folder, "ImagePath").Fit(rows).Transform(rows);
        using var cursor = images.GetRowCursor(images.Schema);
        var getter = cursor.GetGetter<MLImage>(images.Schema["Image"]);
        var check = new ImageSourceCheck();
        MLImage image = null!;

        Assert.IsTrue(cursor.MoveNext());
        check.Read(getter, ref image, 0, "Image");
        Assert.IsTrue(cursor.MoveNext());
        var cut = Assert.ThrowsExactly<InvalidDataException>(() => check.Read(getter, ref image, 1, "Image"));
        Assert.IsTrue(cursor.MoveNext());
        var garbage = Assert.ThrowsExactly<InvalidDataException>(() => check.Read(getter, ref image, 2, "Image"));

        StringAssert.Contains(cut.Message, Path.Combine(Folder, "cut.png"));
        StringAssert.Contains(cut.Message, "Row 1");
        StringAssert.Contains(cut.Message, "truncated");
        StringAssert.Contains(garbage.Message, "Row 2");
        StringAssert.Contains(garbage.Message, "'Image'");
    }
}
