namespace MLNetFreqFusion.Data;

/// <summary>
/// Colours for drawing masks: the PASCAL VOC colour map, extended to every 16-bit class index. It is the default of
/// <see cref="SegmentationMask.SaveColorized(string, IReadOnlyList{ValueTuple{byte, byte, byte}}?)"/> and
/// <see cref="SegmentationMask.SaveOverlay(Microsoft.ML.Data.MLImage, string, float, IReadOnlyList{ValueTuple{byte, byte, byte}}?)"/>,
/// so a legend drawn with <see cref="Voc"/> matches their PNGs.
/// </summary>
public static class SegmentationPalette
{
    /// <summary>
    /// VOC's colour of <paramref name="index"/>: the index's bits are spread over the high bits of R, G and B in turn,
    /// so 0 is black and 255 (VOC's boundary/ignore label) is (224, 224, 192). Distinct for all indices below 2^24.
    /// </summary>
    /// <param name="index">A class index, ≥ 0.</param>
    /// <returns>The class's colour as red, green, blue.</returns>
    public static (byte R, byte G, byte B) Voc(int index)
    {
        int r = 0, g = 0, b = 0;
        for (int bit = 7; bit >= 0; bit--)
        {
            r |= (index & 1) << bit;
            g |= ((index >> 1) & 1) << bit;
            b |= ((index >> 2) & 1) << bit;
            index >>= 3;
        }
        return ((byte)r, (byte)g, (byte)b);
    }

    /// <summary>The colour of every class index that occurs in <paramref name="labels"/>, as a lookup table.</summary>
    internal static (byte R, byte G, byte B)[] For(ReadOnlySpan<ushort> labels, IReadOnlyList<(byte R, byte G, byte B)>? palette)
    {
        int max = 0;
        foreach (var v in labels)
            max = Math.Max(max, v);
        if (palette is not null && palette.Count <= max)
            throw new ArgumentException($"The palette has {palette.Count} colours, but the mask uses class {max}; give a colour for every class index up to {max}.", nameof(palette));
        var table = new (byte R, byte G, byte B)[max + 1];
        for (int i = 0; i <= max; i++)
            table[i] = palette is null ? Voc(i) : palette[i];
        return table;
    }
}
