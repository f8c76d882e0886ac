namespace MLNetFreqFusion.Evaluation;

/// <summary>Nearest-neighbour resizing of index masks, picking the same source pixels as PyTorch's
/// <c>F.interpolate(mode="nearest")</c> (and so mmsegmentation's label resize).</summary>
internal static class NearestMaskResize
{
    /// <summary>Resizes a row-major mask: output pixel (x, y) takes source pixel (⌊x·w/W⌋, ⌊y·h/H⌋).</summary>
    internal static ushort[] Resize(ReadOnlySpan<ushort> mask, int width, int height, int newWidth, int newHeight)
    {
        if (mask.Length != (long)width * height)
            throw new ArgumentException($"A {width}×{height} mask needs {(long)width * height} values; got {mask.Length}.", nameof(mask));
        if (newWidth <= 0 || newHeight <= 0)
            throw new ArgumentOutOfRangeException(nameof(newWidth), $"The target size must be positive; got {newWidth}×{newHeight}.");
        var sourceX = SourceIndices(width, newWidth);
        var result = new ushort[newWidth * newHeight];
        for (int y = 0; y < newHeight; y++)
        {
            var sourceRow = mask.Slice(NearestSource(y, height, newHeight) * width, width);
            var row = result.AsSpan(y * newWidth, newWidth);
            for (int x = 0; x < newWidth; x++)
                row[x] = sourceRow[sourceX[x]];
        }
        return result;
    }

    private static int[] SourceIndices(int inputSize, int outputSize)
    {
        var indices = new int[outputSize];
        for (int i = 0; i < outputSize; i++)
            indices[i] = NearestSource(i, inputSize, outputSize);
        return indices;
    }

    // PyTorch computes the scale in single precision; doing the same keeps the rare ties on the same side.
    private static int NearestSource(int outputIndex, int inputSize, int outputSize)
    {
        float scale = (float)inputSize / outputSize;
        return Math.Min((int)MathF.Floor(outputIndex * scale), inputSize - 1);
    }
}
