namespace MLNetFreqFusion.Evaluation;

/// <summary>
/// The boundary band of Boundary IoU (Cheng et al., "Boundary IoU: Improving Object-Centric Image Segmentation
/// Evaluation", CVPR 2021), computed for every class of an index map at once.
/// </summary>
/// <remarks>
/// For a binary mask X the band is X minus its erosion by a 3×3 square applied d times. Eroding d times by a 3×3
/// square is eroding once by a (2d+1)×(2d+1) square, and a pixel of class c survives that erosion exactly when its
/// whole window holds class c. So one map answers for all classes: a pixel is in its own class's band when its window
/// holds another value. Rows are scanned for runs of equal values (a pixel is horizontally uniform when its run
/// reaches d pixels to both sides), then columns for runs of horizontally uniform pixels of equal value. Both scans
/// are linear in the pixel count and independent of d.
/// </remarks>
internal static class BoundaryBand
{
    /// <summary>
    /// Band width d = max(1, round(ratio × image diagonal)), rounding half to even as the reference implementation
    /// (Python's <c>round</c>) does.
    /// </summary>
    internal static int DilationFor(int width, int height, double dilationRatio)
    {
        double diagonal = Math.Sqrt((double)width * width + (double)height * height);
        double d = Math.Round(dilationRatio * diagonal, MidpointRounding.ToEven);
        return d < 1 ? 1 : (int)Math.Min(d, Math.Max(width, height));
    }

    /// <summary>Allocating form of <see cref="Compute(ReadOnlySpan{ushort}, int, int, int, bool, Span{bool}, Span{int}, Span{bool})"/>.</summary>
    internal static bool[] Compute(ReadOnlySpan<ushort> keys, int width, int height, int d, bool imageBorderIsBoundary)
    {
        var band = new bool[keys.Length];
        Compute(keys, width, height, d, imageBorderIsBoundary, band, new int[width], new bool[width]);
        return band;
    }

    /// <summary>
    /// Marks in <paramref name="band"/> every pixel whose (2d+1)×(2d+1) window holds a value other than its own.
    /// With <paramref name="imageBorderIsBoundary"/> the outside of the image counts as another value (zero padding,
    /// Boundary IoU's definition); without it, windows are clipped to the image, so only changes of value count.
    /// </summary>
    /// <param name="keys">Row-major values; pixels that must not merge with any class carry a value outside the classes.</param>
    /// <param name="width">Width in pixels.</param>
    /// <param name="height">Height in pixels.</param>
    /// <param name="d">Band width in pixels (the number of 3×3 erosions), at least 1.</param>
    /// <param name="imageBorderIsBoundary">Whether the outside of the image counts as another value.</param>
    /// <param name="band">Output, length width × height.</param>
    /// <param name="columnRunStart">Scratch, length ≥ width.</param>
    /// <param name="rowUniform">Scratch, length ≥ width.</param>
    internal static void Compute(ReadOnlySpan<ushort> keys, int width, int height, int d, bool imageBorderIsBoundary,
        Span<bool> band, Span<int> columnRunStart, Span<bool> rowUniform)
    {
        if (d < 1)
            throw new ArgumentOutOfRangeException(nameof(d), $"The band width must be at least 1; got {d}.");
        // A band wider than the image marks the same pixels as one as wide as the image, and keeps run ends in range.
        d = Math.Min(d, Math.Max(width, height));
        int n = width * height;
        band = band[..n];
        band.Fill(true);
        columnRunStart = columnRunStart[..width];
        columnRunStart.Fill(-1);
        rowUniform = rowUniform[..width];

        for (int y = 0; y < height; y++)
        {
            var row = keys.Slice(y * width, width);
            rowUniform.Clear();
            for (int a = 0; a < width;)
            {
                int b = a;
                ushort value = row[a];
                while (b + 1 < width && row[b + 1] == value)
                    b++;
                MarkInterior(a, b, width, d, imageBorderIsBoundary, out int lo, out int hi);
                if (lo <= hi)
                    rowUniform[lo..(hi + 1)].Fill(true);
                a = b + 1;
            }

            for (int x = 0; x < width; x++)
            {
                int start = columnRunStart[x];
                if (start >= 0 && rowUniform[x] && row[x] == keys[(y - 1) * width + x])
                    continue;
                if (start >= 0)
                    CloseColumnRun(band, x, start, y - 1, width, height, d, imageBorderIsBoundary);
                columnRunStart[x] = rowUniform[x] ? y : -1;
            }
        }

        for (int x = 0; x < width; x++)
            if (columnRunStart[x] >= 0)
                CloseColumnRun(band, x, columnRunStart[x], height - 1, width, height, d, imageBorderIsBoundary);
    }

    // Positions of a run [first, last] (in a line of the given length) whose window of radius d stays inside the run.
    private static void MarkInterior(int first, int last, int length, int d, bool borderIsBoundary, out int lo, out int hi)
    {
        lo = first == 0 && !borderIsBoundary ? 0 : first + d;
        hi = last == length - 1 && !borderIsBoundary ? length - 1 : last - d;
    }

    private static void CloseColumnRun(Span<bool> band, int x, int first, int last, int width, int height, int d, bool borderIsBoundary)
    {
        MarkInterior(first, last, height, d, borderIsBoundary, out int lo, out int hi);
        for (int y = lo; y <= hi; y++)
            band[y * width + x] = false;
    }
}
