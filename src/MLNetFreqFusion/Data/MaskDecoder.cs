using Microsoft.ML.Data;
using SkiaSharp;

namespace MLNetFreqFusion.Data;

/// <summary>
/// Turns a mask file into class indices. ML.NET's <c>LoadImages</c> cannot be used for masks: it replaces palette
/// indices by colours and reduces 16-bit values to 8 bits. Palette PNGs and non-8-bit grayscale PNGs are read with
/// <see cref="PngChunkReader"/>; everything else is decoded by SkiaSharp without colour management or premultiplication.
/// </summary>
internal static class MaskDecoder
{
    enum SourceKind { Palette, Gray, Colour }

    internal static SegmentationMask Decode(string path, MaskDecodeOptions? options = null, IReadOnlyList<string>? classNames = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        byte[] file;
        try
        {
            file = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new FileNotFoundException($"Mask file '{path}' does not exist.", path, e);
        }
        return Decode(file, path, options, classNames);
    }

    /// <param name="file">The encoded file.</param>
    /// <param name="path">The file's name, for error messages.</param>
    /// <param name="options">Decoding options; null means defaults.</param>
    /// <param name="classNames">Class names to attach to the mask.</param>
    internal static SegmentationMask Decode(byte[] file, string path, MaskDecodeOptions? options, IReadOnlyList<string>? classNames)
    {
        options ??= new MaskDecodeOptions();
        var format = ResolveFormat(options, path);

        PngHeader? png = PngChunkReader.IsPng(file) ? PngChunkReader.ReadHeader(file, path) : null;
        var kind = png switch
        {
            { ColorType: PngHeader.Palette } => SourceKind.Palette,
            { ColorType: PngHeader.Grayscale or PngHeader.GrayscaleAlpha } => SourceKind.Gray,
            _ => SourceKind.Colour,
        };

        int width, height;
        ushort[] labels;
        switch (format, kind)
        {
            case (MaskFormat.Palette, not SourceKind.Palette):
                throw new InvalidDataException(
                    $"Mask '{path}' is not a palette PNG ({Describe(png)}), but MaskFormat.Palette was asked for. Use MaskFormat.Auto or Grayscale for index masks, RgbColorMap for colour-coded ones.");
            case (MaskFormat.Grayscale, SourceKind.Palette):
                throw new InvalidDataException(
                    $"Mask '{path}' is a palette PNG: its pixels are palette indices, not gray values. Use MaskFormat.Palette (or Auto) for the indices, or RgbColorMap with a ColorMap for the colours.");
            case (MaskFormat.Auto or MaskFormat.Palette, SourceKind.Palette):
            case (MaskFormat.Auto or MaskFormat.Grayscale, SourceKind.Gray) when png!.Value.BitDepth != 8 || png.Value.ColorType == PngHeader.GrayscaleAlpha:
            {
                var samples = PngChunkReader.ReadIndexed(file, path);
                (width, height, labels) = (samples.Header.Width, samples.Header.Height, samples.Samples);
                break;
            }
            case (MaskFormat.Auto or MaskFormat.Grayscale, SourceKind.Gray):
                (width, height, labels) = DecodeGray8(file, path);
                break;
            case (MaskFormat.Auto or MaskFormat.Grayscale, SourceKind.Colour):
            {
                (width, height, var rgba) = DecodeRgba(file, path);
                labels = GrayFromColour(rgba, width, path, format);
                break;
            }
            case (MaskFormat.RgbColorMap, SourceKind.Palette):
            {
                var samples = PngChunkReader.ReadIndexed(file, path);
                (width, height) = (samples.Header.Width, samples.Header.Height);
                labels = MapPaletteColours(samples, options.ColorMap!, path);
                break;
            }
            case (MaskFormat.RgbColorMap, _):
            {
                if (png is { BitDepth: 16, ColorType: PngHeader.Grayscale or PngHeader.GrayscaleAlpha })
                    throw new InvalidDataException($"Mask '{path}' is a 16-bit grayscale PNG; colour maps apply to 8-bit colours. Use MaskFormat.Grayscale to read its values.");
                (width, height, var rgba) = DecodeRgba(file, path);
                labels = MapColours(rgba, width, options.ColorMap!, path);
                break;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(options), $"Unknown MaskFormat {options.Format}.");
        }

        Remap(labels, width, options, path);
        return new SegmentationMask(width, height, labels, classNames) { SourcePath = path };
    }

    /// <summary>
    /// A mask that is already decoded into an <see cref="MLImage"/>: gray pixels are class indices, or colours map to
    /// classes through the colour map. A palette's indices are gone once an image is decoded to colours.
    /// </summary>
    internal static SegmentationMask Decode(MLImage image, MaskDecodeOptions? options)
    {
        ArgumentNullException.ThrowIfNull(image);
        options ??= new MaskDecodeOptions();
        string name = string.IsNullOrEmpty(image.Tag) ? "(MLImage)" : image.Tag;
        var format = ResolveFormat(options, name);
        if (format == MaskFormat.Palette)
            throw new InvalidDataException($"Mask '{name}' is an MLImage, whose pixels are decoded colours: palette indices cannot be recovered from it. " +
                "Read palette masks from their files (SegmentationMask.FromFile, LoadSegmentationMasks), or map their colours with MaskFormat.RgbColorMap.");
        if (image.PixelFormat is not (MLPixelFormat.Bgra32 or MLPixelFormat.Rgba32))
            throw new ArgumentException($"Unsupported image pixel format {image.PixelFormat}; expected Bgra32 or Rgba32.", nameof(image));
        int width = image.Width, height = image.Height, rowBytes = image.Pixels.Length / height;
        CheckPixelCount(width, height, name);
        bool bgra = image.PixelFormat == MLPixelFormat.Bgra32;
        var pixels = image.Pixels;
        var rgba = new byte[4 * width * height];
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                int src = y * rowBytes + 4 * x, dst = 4 * (y * width + x);
                rgba[dst] = pixels[src + (bgra ? 2 : 0)];
                rgba[dst + 1] = pixels[src + 1];
                rgba[dst + 2] = pixels[src + (bgra ? 0 : 2)];
                rgba[dst + 3] = pixels[src + 3];
            }
        }
        var labels = format == MaskFormat.RgbColorMap ? MapColours(rgba, width, options.ColorMap!, name) : GrayFromColour(rgba, width, name, format);
        Remap(labels, width, options, name);
        return new SegmentationMask(width, height, labels) { SourcePath = string.IsNullOrEmpty(image.Tag) ? null : image.Tag };
    }

    static MaskFormat ResolveFormat(MaskDecodeOptions options, string path)
    {
        var format = options.Format == MaskFormat.Auto && options.ColorMap is not null ? MaskFormat.RgbColorMap : options.Format;
        if (format == MaskFormat.RgbColorMap && options.ColorMap is not { Count: > 0 })
            throw new ArgumentException($"MaskFormat.RgbColorMap needs a non-empty MaskDecodeOptions.ColorMap (colour → class); reading '{path}'.", nameof(options));
        return format;
    }

    static string Describe(PngHeader? png) => png switch
    {
        null => "not a PNG",
        { ColorType: PngHeader.Grayscale or PngHeader.GrayscaleAlpha } h => $"{h.BitDepth}-bit grayscale PNG",
        var h => $"{h.Value.BitDepth}-bit {(h.Value.ColorType == PngHeader.Rgb ? "RGB" : "RGBA")} PNG",
    };

    static (int Width, int Height, ushort[] Labels) DecodeGray8(byte[] file, string path)
    {
        var (width, height, pixels) = StrictImageDecoder.Decode(file, $"Mask '{path}'", SKColorType.Gray8, SKAlphaType.Opaque, SegmentationMask.MaxPixels, LimitName);
        var labels = new ushort[pixels.Length];
        for (int i = 0; i < pixels.Length; i++)
            labels[i] = pixels[i];
        return (width, height, labels);
    }

    // Unpremultiplied and without a colour space, so stored colours come back unchanged.
    static (int Width, int Height, byte[] Rgba) DecodeRgba(byte[] file, string path) =>
        StrictImageDecoder.Decode(file, $"Mask '{path}'", SKColorType.Rgba8888, SKAlphaType.Unpremul, SegmentationMask.MaxPixels, LimitName);

    internal const string LimitName = "SegmentationMask.MaxPixels";

    /// <summary>Refuses a mask whose declared size is above <see cref="SegmentationMask.MaxPixels"/>, naming the file.</summary>
    internal static void CheckPixelCount(long width, long height, string path) =>
        StrictImageDecoder.CheckPixelCount(width, height, SegmentationMask.MaxPixels, $"Mask '{path}'", LimitName);

    static ushort[] GrayFromColour(byte[] rgba, int width, string path, MaskFormat format)
    {
        var labels = new ushort[rgba.Length / 4];
        for (int i = 0; i < labels.Length; i++)
        {
            byte r = rgba[4 * i], g = rgba[4 * i + 1], b = rgba[4 * i + 2];
            if (r != g || g != b)
            {
                var hint = format == MaskFormat.Auto
                    ? "Colour-coded masks need MaskDecodeOptions.ColorMap (colour → class)."
                    : "MaskFormat.Grayscale needs gray pixels; use RgbColorMap with a ColorMap for colour-coded masks.";
                throw new InvalidDataException($"Mask '{path}' has colour {Colour(r, g, b)} at pixel (x={i % width}, y={i / width}), which is not gray. {hint}");
            }
            labels[i] = r;
        }
        return labels;
    }

    static ushort[] MapColours(byte[] rgba, int width, IReadOnlyDictionary<(byte R, byte G, byte B), ushort> map, string path)
    {
        var lookup = map.ToDictionary(kv => Pack(kv.Key.R, kv.Key.G, kv.Key.B), kv => kv.Value);
        var labels = new ushort[rgba.Length / 4];
        int lastKey = -1;
        ushort last = 0;
        for (int i = 0; i < labels.Length; i++)
        {
            int key = Pack(rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]);
            if (key != lastKey)
            {
                if (!lookup.TryGetValue(key, out last))
                    throw UnknownColour(path, i % width, i / width, rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2], map.Count);
                lastKey = key;
            }
            labels[i] = last;
        }
        return labels;
    }

    static ushort[] MapPaletteColours(PngSamples samples, IReadOnlyDictionary<(byte R, byte G, byte B), ushort> map, string path)
    {
        var palette = samples.Palette!;
        var labels = new ushort[samples.Samples.Length];
        for (int i = 0; i < labels.Length; i++)
        {
            int index = samples.Samples[i];
            if (3 * index + 2 >= palette.Length)
                throw new InvalidDataException($"Palette PNG '{path}' uses index {index} at pixel (x={i % samples.Header.Width}, y={i / samples.Header.Width}), beyond its {palette.Length / 3}-colour palette.");
            byte r = palette[3 * index], g = palette[3 * index + 1], b = palette[3 * index + 2];
            if (!map.TryGetValue((r, g, b), out labels[i]))
                throw UnknownColour(path, i % samples.Header.Width, i / samples.Header.Width, r, g, b, map.Count);
        }
        return labels;
    }

    static InvalidDataException UnknownColour(string path, int x, int y, byte r, byte g, byte b, int mapSize) =>
        new($"Mask '{path}' has colour {Colour(r, g, b)} at pixel (x={x}, y={y}), which is not in MaskDecodeOptions.ColorMap ({mapSize} colours). Add it to the map; map unlabelled or void colours to the IgnoreIndex.");

    static string Colour(byte r, byte g, byte b) => $"RGB({r}, {g}, {b}) #{r:X2}{g:X2}{b:X2}";

    static int Pack(byte r, byte g, byte b) => (r << 16) | (g << 8) | b;

    // mmsegmentation's order: label map first, then reduce_zero_label.
    static void Remap(ushort[] labels, int width, MaskDecodeOptions options, string path)
    {
        if (options.ValueMap is { Count: > 0 } valueMap)
        {
            for (int i = 0; i < labels.Length; i++)
                if (valueMap.TryGetValue(labels[i], out var mapped))
                    labels[i] = mapped;
        }
        if (!options.ReduceZeroLabel)
            return;
        ushort ignore = options.IgnoreIndex;
        for (int i = 0; i < labels.Length; i++)
        {
            ushort v = labels[i];
            if (v == 0 || v == ignore)
            {
                labels[i] = ignore;
                continue;
            }
            if (v - 1 == ignore)
                throw new InvalidDataException(
                    $"Mask '{path}' has value {v} at pixel (x={i % width}, y={i / width}), which ReduceZeroLabel turns into {v - 1}, the IgnoreIndex. Set MaskDecodeOptions.IgnoreIndex to a value no class uses (e.g. 65535).");
            labels[i] = (ushort)(v - 1);
        }
    }
}
