using System.Buffers.Binary;
using System.IO.Compression;

namespace MLNetFreqFusion.Data;

/// <summary>
/// Writes the PNG kinds masks need and SkiaSharp cannot produce: 16-bit grayscale and palette images. Rows are stored
/// unfiltered (filter type 0); zlib does the compression.
/// </summary>
internal static class PngWriter
{
    static readonly uint[] CrcTable = BuildCrcTable();

    /// <summary>8-bit grayscale when every value fits in a byte, otherwise 16-bit grayscale.</summary>
    internal static void WriteGray(Stream output, int width, int height, ReadOnlySpan<ushort> values)
    {
        bool wide = false;
        foreach (var v in values)
            if (v > 255) { wide = true; break; }
        int bytesPerPixel = wide ? 2 : 1;
        var pixels = new byte[(long)width * height * bytesPerPixel];
        if (wide)
            for (int i = 0; i < values.Length; i++)
                BinaryPrimitives.WriteUInt16BigEndian(pixels.AsSpan(i * 2), values[i]);
        else
            for (int i = 0; i < values.Length; i++)
                pixels[i] = (byte)values[i];
        Write(output, width, height, wide ? 16 : 8, PngHeader.Grayscale, pixels, null);
    }

    /// <summary>An 8-bit palette image; <paramref name="palette"/> holds RGB triplets (at most 256).</summary>
    internal static void WritePalette(Stream output, int width, int height, byte[] indices, byte[] palette) =>
        Write(output, width, height, 8, PngHeader.Palette, indices, palette);

    /// <summary>An 8-bit RGB image from interleaved RGB bytes.</summary>
    internal static void WriteRgb(Stream output, int width, int height, byte[] rgb) =>
        Write(output, width, height, 8, PngHeader.Rgb, rgb, null);

    static void Write(Stream file, int width, int height, int bitDepth, int colorType, byte[] pixels, byte[]? palette)
    {
        int rowBytes = (int)(pixels.LongLength / height);
        byte[] compressed;
        using (var buffer = new MemoryStream())
        {
            using (var z = new ZLibStream(buffer, CompressionLevel.Optimal, leaveOpen: true))
            {
                for (int y = 0; y < height; y++)
                {
                    z.WriteByte(0);
                    z.Write(pixels, y * rowBytes, rowBytes);
                }
            }
            compressed = buffer.ToArray();
        }

        file.Write([137, 80, 78, 71, 13, 10, 26, 10]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(ihdr, (uint)width);
        BinaryPrimitives.WriteUInt32BigEndian(ihdr.AsSpan(4), (uint)height);
        ihdr[8] = (byte)bitDepth;
        ihdr[9] = (byte)colorType;
        WriteChunk(file, "IHDR"u8, ihdr);
        if (palette is not null)
            WriteChunk(file, "PLTE"u8, palette);
        WriteChunk(file, "IDAT"u8, compressed);
        WriteChunk(file, "IEND"u8, []);
    }

    static void WriteChunk(Stream s, ReadOnlySpan<byte> type, ReadOnlySpan<byte> data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(word, (uint)data.Length);
        s.Write(word);
        s.Write(type);
        s.Write(data);
        BinaryPrimitives.WriteUInt32BigEndian(word, ChunkCrc(type, data));
        s.Write(word);
    }

    /// <summary>The CRC-32 of a chunk (its type and data), as stored after it.</summary>
    internal static uint ChunkCrc(ReadOnlySpan<byte> type, ReadOnlySpan<byte> data) => Crc(Crc(0xFFFFFFFFu, type), data) ^ 0xFFFFFFFFu;

    static uint Crc(uint crc, ReadOnlySpan<byte> data)
    {
        foreach (var b in data)
            crc = CrcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return crc;
    }

    static uint[] BuildCrcTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++)
                c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
        return table;
    }
}
