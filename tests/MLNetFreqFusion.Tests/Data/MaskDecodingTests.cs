using System.Buffers.Binary;
using System.IO.Compression;
using Microsoft.ML.Data;
using MLNetFreqFusion.Data;
using SkiaSharp;

namespace MLNetFreqFusion.Tests.Data;

[TestClass]
public sealed class MaskDecodingTests : TempFolderTests
{
    internal static string SamplePath(params string[] parts) =>
        Path.Combine([AppContext.BaseDirectory, "Data", "digits-seg-sample", .. parts]);

    // Encodes with SkiaSharp so the files under test come from an independent encoder.
    internal static void SkiaSave(string path, int width, int height, SKColorType type, byte[] pixels, SKPngEncoderFilterFlags filters = SKPngEncoderFilterFlags.AllFilters)
    {
        var info = new SKImageInfo(width, height, type, type == SKColorType.Gray8 ? SKAlphaType.Opaque : SKAlphaType.Unpremul);
        using var pixmap = new SKPixmap();
        var handle = System.Runtime.InteropServices.GCHandle.Alloc(pixels, System.Runtime.InteropServices.GCHandleType.Pinned);
        try
        {
            pixmap.Reset(info, handle.AddrOfPinnedObject(), info.RowBytes);
            using var data = pixmap.Encode(new SKPngEncoderOptions(filters, 6))
                ?? throw new InvalidOperationException($"SkiaSharp could not encode the {type} test PNG {path}.");
            File.WriteAllBytes(path, data.ToArray());
        }
        finally
        {
            handle.Free();
        }
    }

    internal static byte[] SkiaRgba(string path)
    {
        using var codec = SKCodec.Create(path);
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        Assert.AreEqual(SKCodecResult.Success, codec.GetPixels(info, out byte[] pixels));
        return pixels;
    }

    [TestMethod]
    public void EightBitGrayscaleGivesItsValues()
    {
        var values = new byte[6 * 5];
        for (int i = 0; i < values.Length; i++)
            values[i] = (byte)(i * 37 % 256);
        var path = Path.Combine(Folder, "gray.png");
        SkiaSave(path, 6, 5, SKColorType.Gray8, values);

        var mask = SegmentationMask.FromFile(path);

        Assert.AreEqual(6, mask.Width);
        Assert.AreEqual(5, mask.Height);
        CollectionAssert.AreEqual(values.Select(v => (ushort)v).ToArray(), mask.Labels);
    }

    [TestMethod]
    public void ChunkReaderUndoesEveryPngFilter()
    {
        // A smooth ramp plus noise, so each filter type actually changes the stored bytes.
        var rng = new Random(3);
        var values = new byte[17 * 9];
        for (int y = 0; y < 9; y++)
            for (int x = 0; x < 17; x++)
                values[y * 17 + x] = (byte)(x * 9 + y * 5 + rng.Next(4));
        foreach (var filter in new[] { SKPngEncoderFilterFlags.NoFilters, SKPngEncoderFilterFlags.Sub, SKPngEncoderFilterFlags.Up, SKPngEncoderFilterFlags.Avg, SKPngEncoderFilterFlags.Paeth })
        {
            var path = Path.Combine(Folder, $"filter-{filter}.png");
            SkiaSave(path, 17, 9, SKColorType.Gray8, values, filter);

            var samples = PngChunkReader.ReadIndexed(File.ReadAllBytes(path), path);

            CollectionAssert.AreEqual(values.Select(v => (ushort)v).ToArray(), samples.Samples, $"filter {filter}");
        }
    }

    [TestMethod]
    public void PalettePngGivesIndicesNotColours()
    {
        // A palette that is not VOC's: index i is drawn in a colour unrelated to i.
        var palette = new byte[3 * 256];
        for (int i = 0; i < 256; i++)
            (palette[3 * i], palette[3 * i + 1], palette[3 * i + 2]) = ((byte)(255 - i), (byte)(i * 7), (byte)(100 + i / 3));
        var indices = new byte[] { 0, 1, 2, 3, 7, 200, 255, 1, 0, 42, 42, 3 };
        var path = Path.Combine(Folder, "palette.png");
        using (var file = File.Create(path))
            PngWriter.WritePalette(file, 4, 3, indices, palette);

        var mask = SegmentationMask.FromFile(path);

        CollectionAssert.AreEqual(indices.Select(v => (ushort)v).ToArray(), mask.Labels);
        // An independent decoder sees the palette colours, so the file really is a palette image with that palette.
        var rgba = SkiaRgba(path);
        for (int i = 0; i < indices.Length; i++)
        {
            Assert.AreEqual(palette[3 * indices[i]], rgba[4 * i]);
            Assert.AreEqual(palette[3 * indices[i] + 1], rgba[4 * i + 1]);
            Assert.AreEqual(palette[3 * indices[i] + 2], rgba[4 * i + 2]);
        }
    }

    [TestMethod]
    public void LowBitDepthPaletteGivesIndices()
    {
        // A 2-bit palette PNG of 5×2 pixels, built by hand: rows pack four indices per byte.
        ushort[] expected = [0, 1, 2, 3, 1, 3, 2, 1, 0, 2];
        var rows = new byte[] { 0, 0b00_01_10_11, 0b01_000000, 0, 0b11_10_01_00, 0b10_000000 };
        var path = Path.Combine(Folder, "2bit.png");
        File.WriteAllBytes(path, BuildPng(5, 2, 2, 3, rows, [10, 10, 10, 20, 20, 20, 30, 30, 30, 40, 40, 40]));

        CollectionAssert.AreEqual(expected, SegmentationMask.FromFile(path).Labels);
        var rgba = SkiaRgba(path);
        for (int i = 0; i < expected.Length; i++)
            Assert.AreEqual(10 * (expected[i] + 1), rgba[4 * i]);
    }

    [TestMethod]
    public void InterlacedPaletteGivesTheSameIndicesAsSkia()
    {
        const int w = 11, h = 9;
        var indices = new byte[w * h];
        for (int i = 0; i < indices.Length; i++)
            indices[i] = (byte)(i * 13 % 64);
        var palette = new byte[3 * 64];
        for (int i = 0; i < 64; i++)
            (palette[3 * i], palette[3 * i + 1], palette[3 * i + 2]) = ((byte)(4 * i), (byte)(255 - 4 * i), (byte)(i * 3));
        var path = Path.Combine(Folder, "adam7.png");
        File.WriteAllBytes(path, BuildPng(w, h, 8, 3, Adam7Rows(indices, w, h), palette, interlace: 1));

        CollectionAssert.AreEqual(indices.Select(v => (ushort)v).ToArray(), SegmentationMask.FromFile(path).Labels);
        var rgba = SkiaRgba(path);
        for (int i = 0; i < indices.Length; i++)
            Assert.AreEqual(palette[3 * indices[i]], rgba[4 * i], $"pixel {i}");
    }

    [TestMethod]
    public void SixteenBitGrayscaleKeepsValuesAbove255()
    {
        ushort[] values = [0, 1, 255, 256, 1000, 3000, 40000, 65535];
        var path = Path.Combine(Folder, "wide.png");
        new SegmentationMask(4, 2, values).Save(path);

        CollectionAssert.AreEqual(values, SegmentationMask.FromFile(path).Labels);
        // Skia reads the same file as 16-bit and reduces it to 8 bits, which is why masks do not go through it.
        var rgba = SkiaRgba(path);
        for (int i = 0; i < values.Length; i++)
            Assert.AreEqual(values[i] / 257.0, rgba[4 * i], 1.0);
    }

    [TestMethod]
    public void SaveWritesEightBitWhenEveryValueFits()
    {
        var path = Path.Combine(Folder, "small.png");
        ushort[] values = [0, 5, 255, 3];
        new SegmentationMask(2, 2, values).Save(path);

        var header = PngChunkReader.ReadHeader(File.ReadAllBytes(path), path);
        Assert.AreEqual(8, header.BitDepth);
        Assert.AreEqual(PngHeader.Grayscale, header.ColorType);
        CollectionAssert.AreEqual(values, SegmentationMask.FromFile(path).Labels);
    }

    [TestMethod]
    public void RgbColourMapGivesClasses()
    {
        var rgba = new byte[] { 128, 0, 0, 255, 0, 128, 0, 255, 0, 0, 0, 255, 128, 0, 0, 255, 0, 128, 0, 255, 64, 64, 64, 255 };
        var path = Path.Combine(Folder, "camvid.png");
        SkiaSave(path, 3, 2, SKColorType.Rgba8888, rgba);
        var map = new Dictionary<(byte R, byte G, byte B), ushort> { [(128, 0, 0)] = 1, [(0, 128, 0)] = 2, [(0, 0, 0)] = 255, [(64, 64, 64)] = 7 };

        var mask = SegmentationMask.FromFile(path, new MaskDecodeOptions { ColorMap = map });

        CollectionAssert.AreEqual(new ushort[] { 1, 2, 255, 1, 2, 7 }, mask.Labels);
    }

    [TestMethod]
    public void UnknownColourNamesFilePixelAndColour()
    {
        var rgba = new byte[] { 128, 0, 0, 255, 128, 0, 0, 255, 128, 0, 0, 255, 128, 0, 0, 255, 12, 34, 56, 255, 128, 0, 0, 255 };
        var path = Path.Combine(Folder, "odd-colour.png");
        SkiaSave(path, 3, 2, SKColorType.Rgba8888, rgba);
        var options = new MaskDecodeOptions { Format = MaskFormat.RgbColorMap, ColorMap = new Dictionary<(byte R, byte G, byte B), ushort> { [(128, 0, 0)] = 1 } };

        var e = Assert.ThrowsExactly<InvalidDataException>(() => SegmentationMask.FromFile(path, options));

        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, "x=1, y=1");
        StringAssert.Contains(e.Message, "RGB(12, 34, 56)");
    }

    [TestMethod]
    public void ColourMaskWithoutMapIsAnErrorNamingTheFile()
    {
        var path = Path.Combine(Folder, "colour.png");
        SkiaSave(path, 2, 1, SKColorType.Rgba8888, [5, 5, 5, 255, 200, 10, 10, 255]);

        var e = Assert.ThrowsExactly<InvalidDataException>(() => SegmentationMask.FromFile(path));

        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, "x=1, y=0");
        StringAssert.Contains(e.Message, "ColorMap");
    }

    [TestMethod]
    public void GrayPixelsInAnRgbFileAreIndices()
    {
        var path = Path.Combine(Folder, "rgb-gray.png");
        SkiaSave(path, 3, 1, SKColorType.Rgba8888, [0, 0, 0, 255, 4, 4, 4, 255, 255, 255, 255, 255]);

        CollectionAssert.AreEqual(new ushort[] { 0, 4, 255 }, SegmentationMask.FromFile(path).Labels);
    }

    [TestMethod]
    public void PaletteFormatRejectsGrayscaleFiles()
    {
        var path = Path.Combine(Folder, "g.png");
        new SegmentationMask(2, 1, [1, 2]).Save(path);

        var e = Assert.ThrowsExactly<InvalidDataException>(() => SegmentationMask.FromFile(path, new MaskDecodeOptions { Format = MaskFormat.Palette }));

        StringAssert.Contains(e.Message, path);
    }

    [TestMethod]
    public void ValueMapTurnsBinary255IntoClassOne()
    {
        var path = Path.Combine(Folder, "binary.png");
        new SegmentationMask(4, 1, [0, 255, 255, 0]).Save(path);

        var mask = SegmentationMask.FromFile(path, new MaskDecodeOptions { ValueMap = new Dictionary<ushort, ushort> { [255] = 1 } });

        CollectionAssert.AreEqual(new ushort[] { 0, 1, 1, 0 }, mask.Labels);
    }

    [TestMethod]
    public void ReduceZeroLabelFollowsAde20k()
    {
        var path = Path.Combine(Folder, "ade.png");
        new SegmentationMask(5, 1, [0, 1, 2, 150, 255]).Save(path);

        var mask = SegmentationMask.FromFile(path, new MaskDecodeOptions { ReduceZeroLabel = true });

        CollectionAssert.AreEqual(new ushort[] { 255, 0, 1, 149, 255 }, mask.Labels);
    }

    [TestMethod]
    public void ReduceZeroLabelRefusesToTurnAClassIntoTheIgnoreIndex()
    {
        var path = Path.Combine(Folder, "ade16.png");
        new SegmentationMask(2, 1, [3, 256]).Save(path);

        var e = Assert.ThrowsExactly<InvalidDataException>(() => SegmentationMask.FromFile(path, new MaskDecodeOptions { ReduceZeroLabel = true }));
        StringAssert.Contains(e.Message, path);

        var wide = SegmentationMask.FromFile(path, new MaskDecodeOptions { ReduceZeroLabel = true, IgnoreIndex = 65535 });
        CollectionAssert.AreEqual(new ushort[] { 2, 255 }, wide.Labels);
    }

    [TestMethod]
    public void MissingFileIsNamed()
    {
        var path = Path.Combine(Folder, "nope.png");
        var e = Assert.ThrowsExactly<FileNotFoundException>(() => SegmentationMask.FromFile(path));
        StringAssert.Contains(e.Message, path);
    }

    [TestMethod]
    public void CorruptPngIsNamed()
    {
        var path = Path.Combine(Folder, "broken.png");
        new SegmentationMask(8, 8, new ushort[64]).SaveColorized(path);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length - 20)]);

        var e = Assert.ThrowsExactly<InvalidDataException>(() => SegmentationMask.FromFile(path));
        StringAssert.Contains(e.Message, path);
    }

    [TestMethod]
    public void DigitsSegPaletteMasksDecodeToTheGrayscaleIndices()
    {
        var files = Directory.GetFiles(SamplePath("masks"), "*.png");
        Assert.AreEqual(10, files.Length);
        int sawIgnore = 0, sawDigits = 0;
        foreach (var gray in files)
        {
            var palettePath = SamplePath("masks_palette", Path.GetFileName(gray));
            Assert.AreEqual(PngHeader.Palette, PngChunkReader.ReadHeader(File.ReadAllBytes(palettePath), palettePath).ColorType);

            var expected = SegmentationMask.FromFile(gray);
            var actual = SegmentationMask.FromFile(palettePath);

            Assert.AreEqual(84, actual.Width);
            Assert.AreEqual(64, actual.Height);
            CollectionAssert.AreEqual(expected.Labels, actual.Labels, Path.GetFileName(gray));
            sawIgnore += expected.Labels.Contains((ushort)255) ? 1 : 0;
            sawDigits += expected.Labels.Any(v => v is >= 1 and <= 10) ? 1 : 0;
        }
        Assert.IsTrue(sawIgnore > 0 && sawDigits == files.Length, "the sample should hold digits and ignore pixels");
    }

    [TestMethod]
    public void DigitsSegPaletteUsesTheVocColourMap()
    {
        var path = SamplePath("masks_palette", "test_00000.png");
        var labels = SegmentationMask.FromFile(path).Labels;
        var rgba = SkiaRgba(path);
        for (int i = 0; i < labels.Length; i++)
        {
            var (r, g, b) = SegmentationPalette.Voc(labels[i]);
            Assert.AreEqual((r, g, b), (rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]), $"pixel {i}, class {labels[i]}");
        }
        Assert.AreEqual(((byte)224, (byte)224, (byte)192), SegmentationPalette.Voc(255));
    }

    // Minimal PNG assembly for bit depths and interlacing no encoder at hand produces; rows carry their filter byte.
    internal static byte[] BuildPng(int width, int height, int bitDepth, int colorType, byte[] rows, byte[]? palette, int interlace = 0)
    {
        var ms = new MemoryStream();
        ms.Write([137, 80, 78, 71, 13, 10, 26, 10]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        (ihdr[8], ihdr[9], ihdr[12]) = ((byte)bitDepth, (byte)colorType, (byte)interlace);
        Chunk(ms, "IHDR", ihdr);
        if (palette is not null)
            Chunk(ms, "PLTE", palette);
        var z = new MemoryStream();
        using (var zs = new ZLibStream(z, CompressionLevel.Fastest, leaveOpen: true))
            zs.Write(rows);
        Chunk(ms, "IDAT", z.ToArray());
        Chunk(ms, "IEND", []);
        return ms.ToArray();
    }

    internal static void Chunk(Stream s, string type, byte[] data)
    {
        var head = new byte[8];
        BinaryPrimitives.WriteInt32BigEndian(head, data.Length);
        System.Text.Encoding.ASCII.GetBytes(type, head.AsSpan(4));
        s.Write(head);
        s.Write(data);
        var crcInput = head[4..].Concat(data).ToArray();
        uint crc = 0xFFFFFFFF;
        foreach (var b in crcInput)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++)
                crc = (crc & 1) != 0 ? 0xEDB88320 ^ (crc >> 1) : crc >> 1;
        }
        var tail = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(tail, ~crc);
        s.Write(tail);
    }

    static byte[] Adam7Rows(byte[] pixels, int w, int h)
    {
        (int X0, int Y0, int Dx, int Dy)[] passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)];
        var rows = new List<byte>();
        foreach (var (x0, y0, dx, dy) in passes)
        {
            if (x0 >= w || y0 >= h)
                continue;
            for (int y = y0; y < h; y += dy)
            {
                rows.Add(0);
                for (int x = x0; x < w; x += dx)
                    rows.Add(pixels[y * w + x]);
            }
        }
        return rows.ToArray();
    }

    [TestMethod]
    public void StreamsDecodeLikeFilesAndStayOpen()
    {
        foreach (var folder in new[] { "masks", "masks_palette" })
        {
            var path = SamplePath(folder, "test_00000.png");
            using var stream = File.OpenRead(path);
            var fromStream = SegmentationMask.FromStream(stream, name: path);
            Assert.IsTrue(stream.CanRead, "the caller's stream stays open");
            CollectionAssert.AreEqual(SegmentationMask.FromFile(path).Labels, fromStream.Labels, folder);
        }
        using var notAnImage = new MemoryStream(new byte[] { 1, 2, 3, 4 });
        var e = Assert.ThrowsExactly<InvalidDataException>(() => SegmentationMask.FromStream(notAnImage, name: "upload.png"));
        StringAssert.Contains(e.Message, "upload.png");
    }

    [TestMethod]
    public void DecodedImagesGiveTheirGrayValuesOrMappedColours()
    {
        ushort[] labels = [0, 1, 2, 3, 255, 1];
        var gray = new byte[4 * labels.Length];
        for (int i = 0; i < labels.Length; i++)
            (gray[4 * i], gray[4 * i + 1], gray[4 * i + 2], gray[4 * i + 3]) = ((byte)labels[i], (byte)labels[i], (byte)labels[i], 255);
        using (var image = MLImage.CreateFromPixels(3, 2, MLPixelFormat.Rgba32, gray))
            CollectionAssert.AreEqual(labels, SegmentationMask.FromMLImage(image).Labels);

        // A colourised mask (VOC colours, as ToMLImage draws it) back to classes through a colour map.
        var mask = new SegmentationMask(3, 2, labels);
        using var colours = mask.ToMLImage();
        var map = new[] { 0, 1, 2, 3, 255 }.ToDictionary(c => SegmentationPalette.Voc(c), c => (ushort)c);
        CollectionAssert.AreEqual(labels, SegmentationMask.FromMLImage(colours, new MaskDecodeOptions { ColorMap = map }).Labels);

        colours.Tag = "mask-42.png";
        var notGray = Assert.ThrowsExactly<InvalidDataException>(() => SegmentationMask.FromMLImage(colours));
        StringAssert.Contains(notGray.Message, "mask-42.png");
        StringAssert.Contains(notGray.Message, "ColorMap");
        var palette = Assert.ThrowsExactly<InvalidDataException>(() => SegmentationMask.FromMLImage(colours, new MaskDecodeOptions { Format = MaskFormat.Palette }));
        StringAssert.Contains(palette.Message, "FromFile");
    }
}
