using System.Buffers.Binary;
using System.IO.Compression;

namespace MLNetFreqFusion.Data;

/// <summary>The IHDR fields of a PNG file.</summary>
internal readonly record struct PngHeader(int Width, int Height, int BitDepth, int ColorType, int Interlace)
{
    internal const int Grayscale = 0, Rgb = 2, Palette = 3, GrayscaleAlpha = 4, Rgba = 6;

    internal int Channels => ColorType switch
    {
        Grayscale or Palette => 1,
        GrayscaleAlpha => 2,
        Rgb => 3,
        Rgba => 4,
        _ => throw new InvalidDataException($"PNG colour type {ColorType} is not defined by the PNG specification."),
    };
}

/// <summary>Samples of a palette or grayscale PNG, one per pixel, with the palette when there is one.</summary>
internal sealed record PngSamples(PngHeader Header, ushort[] Samples, byte[]? Palette);

/// <summary>
/// Reads the samples of palette and grayscale PNGs exactly as stored: palette <em>indices</em> (which decoders such as
/// SkiaSharp replace by colours) and 16-bit gray values (which they reduce to 8 bits). Only IHDR, PLTE, IDAT and IEND
/// matter; colour images are left to SkiaSharp.
/// </summary>
internal static class PngChunkReader
{
    static ReadOnlySpan<byte> Signature => [137, 80, 78, 71, 13, 10, 26, 10];

    // Adam7 passes: x start, y start, x step, y step.
    static readonly (int X0, int Y0, int Dx, int Dy)[] Adam7 =
        [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)];

    internal static bool IsPng(ReadOnlySpan<byte> file) => file.Length >= 8 && file[..8].SequenceEqual(Signature);

    internal static PngHeader ReadHeader(ReadOnlySpan<byte> file, string path)
    {
        if (!IsPng(file))
            throw new InvalidDataException($"'{path}' is not a PNG file (no PNG signature).");
        if (file.Length < 33 || !file.Slice(12, 4).SequenceEqual("IHDR"u8))
            throw new InvalidDataException($"PNG file '{path}' is truncated or does not start with an IHDR chunk.");
        var h = file.Slice(16, 13);
        uint width = BinaryPrimitives.ReadUInt32BigEndian(h), height = BinaryPrimitives.ReadUInt32BigEndian(h[4..]);
        if (width == 0 || height == 0 || width > int.MaxValue || height > int.MaxValue)
            throw new InvalidDataException($"PNG file '{path}' declares an image of {width}×{height} pixels; the PNG specification allows 1 to 2^31 - 1 on each side.");
        MaskDecoder.CheckPixelCount(width, height, path);
        var header = new PngHeader((int)width, (int)height, h[8], h[9], h[12]);
        _ = header.Channels;
        return header;
    }

    /// <summary>Reads a palette (colour type 3) or grayscale (colour types 0 and 4, the gray sample) PNG.</summary>
    internal static PngSamples ReadIndexed(byte[] file, string path)
    {
        var header = ReadHeader(file, path);
        if (header.ColorType is not (PngHeader.Palette or PngHeader.Grayscale or PngHeader.GrayscaleAlpha))
            throw new InvalidOperationException($"PNG colour type {header.ColorType} has no index samples ('{path}').");
        if (header.Interlace > 1)
            throw new InvalidDataException($"PNG file '{path}' uses interlace method {header.Interlace}, which the PNG specification does not define.");

        byte[]? palette = null;
        using var idat = new MemoryStream();
        int pos = 8;
        bool ended = false;
        while (pos + 8 <= file.Length && !ended)
        {
            long length = BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(pos));
            var type = file.AsSpan(pos + 4, 4);
            if (pos + 12L + length > file.Length)
                throw new InvalidDataException($"PNG file '{path}' is truncated inside a chunk at byte {pos} (the chunk declares {length} bytes; the file has {file.Length}).");
            var data = file.AsSpan(pos + 8, (int)length);
            // Flipped bits inside IDAT can still inflate; the chunk CRC is what tells damaged pixel data from good.
            if (BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(pos + 8 + (int)length)) != PngWriter.ChunkCrc(type, data))
                throw new InvalidDataException($"PNG file '{path}' is corrupt: the CRC of its {System.Text.Encoding.ASCII.GetString(type)} chunk at byte {pos} does not match its contents. Replace the file with an undamaged copy.");
            if (type.SequenceEqual("PLTE"u8))
                palette = data.ToArray();
            else if (type.SequenceEqual("IDAT"u8))
                idat.Write(data);
            else if (type.SequenceEqual("IEND"u8))
                ended = true;
            pos += 12 + (int)length;
        }
        if (!ended)
            throw new InvalidDataException($"PNG file '{path}' is truncated: it ends after {file.Length} bytes without the IEND chunk that closes every PNG. Replace the file with a complete copy.");
        if (header.ColorType == PngHeader.Palette && palette is null)
            throw new InvalidDataException($"Palette PNG '{path}' has no PLTE chunk.");
        if (idat.Length == 0)
            throw new InvalidDataException($"PNG file '{path}' has no image data (IDAT).");

        int bitsPerPixel = header.BitDepth * header.Channels;
        long expected = 0;
        foreach (var (w, h) in Passes(header))
            expected += h * (1 + ((long)w * bitsPerPixel + 7) / 8);
        var raw = new byte[expected];
        idat.Position = 0;
        using (var z = new ZLibStream(idat, CompressionMode.Decompress))
        {
            try
            {
                z.ReadExactly(raw);
            }
            catch (Exception e) when (e is EndOfStreamException or InvalidDataException)
            {
                throw new InvalidDataException($"PNG file '{path}' has corrupt or short image data: {e.Message}", e);
            }
        }

        var samples = new ushort[(long)header.Width * header.Height];
        int offset = 0;
        for (int pass = 0; pass < (header.Interlace == 1 ? 7 : 1); pass++)
        {
            var (x0, y0, dx, dy) = header.Interlace == 1 ? Adam7[pass] : (0, 0, 1, 1);
            var (pw, ph) = PassSize(header, x0, y0, dx, dy);
            if (pw == 0 || ph == 0)
                continue;
            int rowBytes = (int)(((long)pw * bitsPerPixel + 7) / 8);
            var rows = raw.AsSpan(offset, ph * (rowBytes + 1));
            offset += rows.Length;
            Unfilter(rows, rowBytes, Math.Max(1, bitsPerPixel / 8), path);
            for (int y = 0; y < ph; y++)
            {
                var row = rows.Slice(y * (rowBytes + 1) + 1, rowBytes);
                int target = (y0 + y * dy) * header.Width + x0;
                for (int x = 0; x < pw; x++, target += dx)
                    samples[target] = GraySample(row, x, header.BitDepth, header.Channels);
            }
        }
        return new PngSamples(header, samples, palette);
    }

    static IEnumerable<(int W, int H)> Passes(PngHeader header)
    {
        if (header.Interlace == 0)
        {
            yield return (header.Width, header.Height);
            yield break;
        }
        foreach (var (x0, y0, dx, dy) in Adam7)
        {
            var size = PassSize(header, x0, y0, dx, dy);
            if (size.W > 0 && size.H > 0)
                yield return size;
        }
    }

    static (int W, int H) PassSize(PngHeader header, int x0, int y0, int dx, int dy) =>
        ((header.Width - x0 + dx - 1) / dx, (header.Height - y0 + dy - 1) / dy);

    // The first sample of pixel x (the gray sample for gray+alpha, the index for palette images).
    static ushort GraySample(ReadOnlySpan<byte> row, int x, int bitDepth, int channels)
    {
        switch (bitDepth)
        {
            case 16:
                return BinaryPrimitives.ReadUInt16BigEndian(row.Slice(x * 2 * channels));
            case 8:
                return row[x * channels];
            default:
                int bit = x * bitDepth;
                int shift = 8 - bitDepth - (bit & 7);
                return (ushort)((row[bit >> 3] >> shift) & ((1 << bitDepth) - 1));
        }
    }

    // PNG filter types 0-4 (specification section 9), undone in place row by row.
    static void Unfilter(Span<byte> rows, int rowBytes, int bpp, string path)
    {
        int stride = rowBytes + 1;
        int height = rows.Length / stride;
        for (int y = 0; y < height; y++)
        {
            var line = rows.Slice(y * stride + 1, rowBytes);
            ReadOnlySpan<byte> prior = y > 0 ? rows.Slice((y - 1) * stride + 1, rowBytes) : default;
            byte filter = rows[y * stride];
            switch (filter)
            {
                case 0:
                    break;
                case 1:
                    for (int i = bpp; i < rowBytes; i++)
                        line[i] += line[i - bpp];
                    break;
                case 2:
                    if (y > 0)
                        for (int i = 0; i < rowBytes; i++)
                            line[i] += prior[i];
                    break;
                case 3:
                    for (int i = 0; i < rowBytes; i++)
                    {
                        int left = i >= bpp ? line[i - bpp] : 0;
                        int up = y > 0 ? prior[i] : 0;
                        line[i] += (byte)((left + up) >> 1);
                    }
                    break;
                case 4:
                    for (int i = 0; i < rowBytes; i++)
                    {
                        int a = i >= bpp ? line[i - bpp] : 0;
                        int b = y > 0 ? prior[i] : 0;
                        int c = i >= bpp && y > 0 ? prior[i - bpp] : 0;
                        line[i] += Paeth(a, b, c);
                    }
                    break;
                default:
                    throw new InvalidDataException($"PNG file '{path}' uses unknown filter type {filter} on row {y}.");
            }
        }
    }

    static byte Paeth(int a, int b, int c)
    {
        int p = a + b - c;
        int pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return (byte)(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
    }
}
