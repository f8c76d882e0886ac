using Microsoft.ML.Data;
using MLNetFreqFusion.Data;

namespace MLNetFreqFusion;

/// <summary>
/// A semantic-segmentation mask: one class index per pixel, row-major, with the image's width and height.
/// Used for label columns (read by <c>LoadSegmentationMasks</c>) and for predictions (<c>PredictedLabel</c>).
/// </summary>
public sealed class SegmentationMask
{
    /// <summary>
    /// The largest mask the file readers (<see cref="FromFile"/>, <see cref="FromStream"/>, <c>LoadSegmentationMasks</c>)
    /// decode, in pixels: 2^28 = 268,435,456 (16384 × 16384). The size is checked from the file header before anything is
    /// decoded, so a small file that declares a huge image fails with a message naming it instead of exhausting memory.
    /// </summary>
    public const long MaxPixels = 1L << 28;

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
            throw new ArgumentException($"A {width}×{height} mask needs {(long)width * height} labels; got {labels.Length}.", nameof(labels));
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

    /// <summary>Reads a mask file: index PNG (8 or 16 bit), palette PNG (its indices) or a colour-coded image.</summary>
    /// <param name="path">The mask file.</param>
    /// <param name="options">How pixels encode classes; null reads index and palette PNGs as they are.</param>
    /// <returns>The mask, with the file's size.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file cannot be read as a mask under <paramref name="options"/>, is truncated or
    /// corrupt, or declares more than <see cref="MaxPixels"/> pixels; the message names the file (and pixel).</exception>
    public static SegmentationMask FromFile(string path, MaskDecodeOptions? options = null) => MaskDecoder.Decode(path, options);

    /// <summary>Reads a mask from an encoded image in a stream (an upload, a blob), with the same rules as <see cref="FromFile"/>.</summary>
    /// <param name="input">A readable stream positioned at the start of the encoded image; it is read to its end and left open.</param>
    /// <param name="options">How pixel values become class indices; null: <see cref="MaskFormat.Auto"/>.</param>
    /// <param name="name">What error messages call the mask (a file or upload name). Default "(stream)".</param>
    /// <exception cref="InvalidDataException">The data cannot be read as a mask under <paramref name="options"/>, is truncated or
    /// corrupt, or declares more than <see cref="MaxPixels"/> pixels; the message names the mask (and pixel).</exception>
    public static SegmentationMask FromStream(Stream input, MaskDecodeOptions? options = null, string name = "(stream)")
    {
        ArgumentNullException.ThrowIfNull(input);
        using var buffer = new MemoryStream();
        input.CopyTo(buffer);
        return MaskDecoder.Decode(buffer.ToArray(), name, options, null);
    }

    /// <summary>
    /// Reads a mask from an image that is already decoded: gray pixels are the class indices (<see cref="MaskFormat.Auto"/>
    /// or <see cref="MaskFormat.Grayscale"/>), or colours map to classes (<see cref="MaskFormat.RgbColorMap"/>). Palette
    /// indices do not survive decoding to an MLImage, so palette masks are read with <see cref="FromFile"/> instead.
    /// </summary>
    /// <param name="image">The decoded mask image (Bgra32 or Rgba32); its <see cref="MLImage.Tag"/> names it in errors.</param>
    /// <param name="options">How pixel values become class indices; null: <see cref="MaskFormat.Auto"/>.</param>
    /// <exception cref="InvalidDataException">A pixel is not gray (Auto, Grayscale), has no class in the colour map, or Palette was asked for.</exception>
    public static SegmentationMask FromMLImage(MLImage image, MaskDecodeOptions? options = null) => MaskDecoder.Decode(image, options);

    /// <summary>
    /// Saves the class indices as a PNG whose pixel values are the indices: 8-bit grayscale when every index is below 256,
    /// otherwise 16-bit grayscale. <see cref="FromFile"/> reads it back exactly.
    /// </summary>
    /// <param name="path">The file to write; must end in .png.</param>
    public void Save(string path) => ToPngFile(path, Save);

    /// <summary>Writes the PNG of <see cref="Save(string)"/> to <paramref name="output"/> (an HTTP response, a blob), which stays open.</summary>
    /// <param name="output">A writable stream.</param>
    public void Save(Stream output) => PngWriter.WriteGray(CheckWritable(output), Width, Height, Labels);

    /// <summary>
    /// Saves the mask in colour for viewing: a palette PNG (its indices are still the class indices) when every index is
    /// below 256, otherwise an RGB PNG.
    /// </summary>
    /// <param name="path">The file to write; must end in .png.</param>
    /// <param name="palette">Colour of each class index; null uses the PASCAL VOC colour map (255, the usual ignore
    /// index, is VOC's boundary colour).</param>
    public void SaveColorized(string path, IReadOnlyList<(byte R, byte G, byte B)>? palette = null)
        => ToPngFile(path, output => SaveColorized(output, palette));

    /// <summary>Writes the PNG of <see cref="SaveColorized(string, IReadOnlyList{ValueTuple{byte, byte, byte}}?)"/> to <paramref name="output"/>, which stays open.</summary>
    /// <param name="output">A writable stream.</param>
    /// <param name="palette">Colour of each class index; null uses the PASCAL VOC colour map.</param>
    public void SaveColorized(Stream output, IReadOnlyList<(byte R, byte G, byte B)>? palette = null)
    {
        CheckWritable(output);
        var colours = SegmentationPalette.For(Labels, palette);
        if (colours.Length > 256)
        {
            PngWriter.WriteRgb(output, Width, Height, ToRgb(colours));
            return;
        }
        var plte = new byte[3 * colours.Length];
        for (int i = 0; i < colours.Length; i++)
            (plte[3 * i], plte[3 * i + 1], plte[3 * i + 2]) = colours[i];
        var indices = new byte[Labels.Length];
        for (int i = 0; i < indices.Length; i++)
            indices[i] = (byte)Labels[i];
        PngWriter.WritePalette(output, Width, Height, indices, plte);
    }

    /// <summary>Saves <paramref name="image"/> with the mask's class colours blended over it, as an RGB PNG.</summary>
    /// <param name="image">The image the mask belongs to; it must have the mask's size.</param>
    /// <param name="path">The file to write; must end in .png.</param>
    /// <param name="alpha">Weight of the class colour, from 0 (image only) to 1 (mask only). Default 0.5.</param>
    /// <param name="palette">Colour of each class index; null uses the PASCAL VOC colour map.</param>
    public void SaveOverlay(MLImage image, string path, float alpha = 0.5f, IReadOnlyList<(byte R, byte G, byte B)>? palette = null)
        => ToPngFile(path, output => SaveOverlay(image, output, alpha, palette));

    /// <summary>Writes the PNG of <see cref="SaveOverlay(MLImage, string, float, IReadOnlyList{ValueTuple{byte, byte, byte}}?)"/> to <paramref name="output"/>, which stays open.</summary>
    /// <param name="image">The image the mask belongs to; it must have the mask's size.</param>
    /// <param name="output">A writable stream.</param>
    /// <param name="alpha">Weight of the class colour, from 0 (image only) to 1 (mask only). Default 0.5.</param>
    /// <param name="palette">Colour of each class index; null uses the PASCAL VOC colour map.</param>
    public void SaveOverlay(MLImage image, Stream output, float alpha = 0.5f, IReadOnlyList<(byte R, byte G, byte B)>? palette = null)
    {
        CheckOverlay(image, alpha);
        CheckWritable(output);
        var rgb = ToRgb(SegmentationPalette.For(Labels, palette));
        var pixels = image.Pixels;
        int rowBytes = pixels.Length / Height;
        bool bgr = image.PixelFormat == MLPixelFormat.Bgra32;
        for (int y = 0; y < Height; y++)
        {
            for (int x = 0; x < Width; x++)
            {
                int src = y * rowBytes + 4 * x, dst = 3 * (y * Width + x);
                byte r = pixels[src + (bgr ? 2 : 0)], g = pixels[src + 1], b = pixels[src + (bgr ? 0 : 2)];
                rgb[dst] = Blend(r, rgb[dst], alpha);
                rgb[dst + 1] = Blend(g, rgb[dst + 1], alpha);
                rgb[dst + 2] = Blend(b, rgb[dst + 2], alpha);
            }
        }
        PngWriter.WriteRgb(output, Width, Height, rgb);
    }

    void CheckOverlay(MLImage image, float alpha)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (!(alpha >= 0 && alpha <= 1))
            throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "The overlay weight must be between 0 and 1.");
        if (image.Width != Width || image.Height != Height)
            throw new ArgumentException($"The image is {image.Width}×{image.Height} but the mask is {Width}×{Height}; an overlay needs both the same size.", nameof(image));
        if (image.PixelFormat is not (MLPixelFormat.Bgra32 or MLPixelFormat.Rgba32))
            throw new ArgumentException($"Unsupported image pixel format {image.PixelFormat}; expected Bgra32 or Rgba32.", nameof(image));
    }

    /// <summary>The mask in colour as an ML.NET image (Rgba32, opaque).</summary>
    /// <param name="palette">Colour of each class index; null uses the PASCAL VOC colour map.</param>
    /// <returns>A new image the caller disposes.</returns>
    public MLImage ToMLImage(IReadOnlyList<(byte R, byte G, byte B)>? palette = null)
    {
        var colours = SegmentationPalette.For(Labels, palette);
        var rgba = new byte[4 * Labels.Length];
        for (int i = 0; i < Labels.Length; i++)
        {
            (rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]) = colours[Labels[i]];
            rgba[4 * i + 3] = 255;
        }
        return MLImage.CreateFromPixels(Width, Height, MLPixelFormat.Rgba32, rgba);
    }

    /// <summary>Number of pixels of each class index: element i counts the pixels labelled i.</summary>
    /// <returns>An array as long as the largest index present plus one (the ignore index counts like any other).</returns>
    public long[] CountPixelsPerClass()
    {
        int max = 0;
        foreach (var v in Labels)
            max = Math.Max(max, v);
        var counts = new long[max + 1];
        foreach (var v in Labels)
            counts[v]++;
        return counts;
    }

    byte[] ToRgb((byte R, byte G, byte B)[] colours)
    {
        var rgb = new byte[3 * Labels.Length];
        for (int i = 0; i < Labels.Length; i++)
            (rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]) = colours[Labels[i]];
        return rgb;
    }

    static byte Blend(byte image, byte colour, float alpha) => (byte)MathF.Round((1 - alpha) * image + alpha * colour);

    static void ToPngFile(string path, Action<Stream> write)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!string.Equals(Path.GetExtension(path), ".png", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"Masks are written as PNG (lossless); '{path}' should end in .png.", nameof(path));
        // Encoded in memory first, so that a call that fails (bad palette, image of another size) leaves no file behind.
        using var png = new MemoryStream();
        write(png);
        File.WriteAllBytes(path, png.ToArray());
    }

    static Stream CheckWritable(Stream output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (!output.CanWrite)
            throw new ArgumentException("The stream is not writable; pass a stream opened for writing.", nameof(output));
        return output;
    }
}
