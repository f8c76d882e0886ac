namespace MLNetFreqFusion;

/// <summary>
/// A semantic-segmentation mask: one class index per pixel, row-major, with the image's width and height.
/// Used for label columns (read by <c>LoadSegmentationMasks</c>) and for predictions (<c>PredictedLabel</c>).
/// </summary>
public sealed class SegmentationMask
{
    /// <summary>Creates a mask from row-major class indices.</summary>
    /// <param name="width">Width in pixels.</param>
    /// <param name="height">Height in pixels.</param>
    /// <param name="labels">Class index of every pixel, row by row; length must be width × height.</param>
    /// <param name="classNames">Class names, index by index, when known.</param>
    public SegmentationMask(int width, int height, ushort[] labels, IReadOnlyList<string>? classNames = null)
    {
        ArgumentNullException.ThrowIfNull(labels);
        if (width <= 0 || height <= 0)
            throw new ArgumentOutOfRangeException(nameof(width), $"A mask needs a positive size; got {width}×{height}.");
        if (labels.Length != (long)width * height)
            throw new ArgumentException($"A {width}×{height} mask needs {width * height} labels; got {labels.Length}.", nameof(labels));
        Width = width;
        Height = height;
        Labels = labels;
        ClassNames = classNames;
    }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }

    /// <summary>Height in pixels.</summary>
    public int Height { get; }

    /// <summary>Class index of every pixel, row-major (index = y × Width + x).</summary>
    public ushort[] Labels { get; }

    /// <summary>Class names, index by index, when known; otherwise null.</summary>
    public IReadOnlyList<string>? ClassNames { get; }

    /// <summary>The file the mask was read from, when it was read from one; used in error messages.</summary>
    public string? SourcePath { get; init; }
}
