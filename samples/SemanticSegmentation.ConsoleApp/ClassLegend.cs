using MLNetFreqFusion;
using MLNetFreqFusion.Data;
using SkiaSharp;

namespace SemanticSegmentation.ConsoleApp;

/// <summary>
/// Adds a class legend to a colourised-mask or overlay PNG: a panel on the right with a colour swatch and the name of
/// every class the mask contains, in the colours <see cref="SegmentationMask.SaveColorized(string, IReadOnlyList{ValueTuple{byte, byte, byte}}?)"/>
/// uses (<see cref="SegmentationPalette.Voc"/>).
/// </summary>
public static class ClassLegend
{
    const float FontSize = 12, Line = 16, Swatch = 10, Pad = 5;

    /// <summary>Rewrites <paramref name="pngPath"/> with the legend of <paramref name="mask"/>'s classes beside it.</summary>
    public static void AddTo(string pngPath, SegmentationMask mask)
    {
        var counts = mask.CountPixelsPerClass();
        var classes = Enumerable.Range(0, counts.Length).Where(c => counts[c] > 0).ToArray();
        string Name(int c) => mask.ClassNames is { } names && c < names.Count ? names[c] : $"class {c}";

        using var picture = SKBitmap.Decode(pngPath) ?? throw new InvalidDataException($"{pngPath} is not an image SkiaSharp can read.");
        using var typeface = LegibleTypeface();
        using var font = new SKFont(typeface, FontSize);
        float textWidth = classes.Max(c => font.MeasureText(Name(c)));
        int width = picture.Width + (int)Math.Ceiling(3 * Pad + Swatch + textWidth);
        int height = Math.Max(picture.Height, (int)Math.Ceiling(2 * Pad + Line * classes.Length));

        using var surface = SKSurface.Create(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul))
            ?? throw new InvalidOperationException($"SkiaSharp could not create a {width}×{height} drawing surface.");
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        canvas.DrawBitmap(picture, 0, 0);
        using var fill = new SKPaint { IsAntialias = true };
        using var text = new SKPaint { IsAntialias = true, Color = SKColors.Black };
        using var outline = new SKPaint { Style = SKPaintStyle.Stroke, Color = SKColors.Gray, StrokeWidth = 1 };
        float x = picture.Width + Pad, y = Pad;
        foreach (int c in classes)
        {
            var (r, g, b) = SegmentationPalette.Voc(c);
            fill.Color = new SKColor(r, g, b);
            var box = SKRect.Create(x, y + (Line - Swatch) / 2, Swatch, Swatch);
            canvas.DrawRect(box, fill);
            canvas.DrawRect(box, outline);
            canvas.DrawText(Name(c), x + Swatch + Pad, y + Line - 4, SKTextAlign.Left, font, text);
            y += Line;
        }
        using var encoded = surface.Snapshot().Encode(SKEncodedImageFormat.Png, 100)
            ?? throw new InvalidOperationException($"SkiaSharp could not encode the legend of {pngPath}.");
        File.WriteAllBytes(pngPath, encoded.ToArray());
    }

    /// <summary>
    /// SkiaSharp's default typeface, or, where its Linux build finds no system fonts (it does not use fontconfig), the
    /// first TrueType font of the usual font folders: without one the legend's names would be invisible.
    /// </summary>
    static SKTypeface LegibleTypeface()
    {
        var fallback = SKTypeface.Default;
        if (fallback.GlyphCount > 0)
            return fallback;
        string[] folders = ["/usr/share/fonts", "/usr/local/share/fonts", "/Library/Fonts", "/System/Library/Fonts",
            Environment.GetFolderPath(Environment.SpecialFolder.Fonts)];
        var file = folders.Where(f => f.Length > 0 && Directory.Exists(f))
            .SelectMany(f => Directory.EnumerateFiles(f, "*.ttf", SearchOption.AllDirectories))
            .OrderBy(f => Path.GetFileName(f).Contains("Sans", StringComparison.OrdinalIgnoreCase) ? 0 : 1)
            .ThenBy(f => f, StringComparer.Ordinal)
            .FirstOrDefault();
        return (file is null ? null : SKTypeface.FromFile(file))
            ?? throw new InvalidOperationException("No font found for the legend's class names: install one (Debian: apt-get install fonts-dejavu-core).");
    }
}
