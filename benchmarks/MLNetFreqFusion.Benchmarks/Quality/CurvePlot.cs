using System.Globalization;
using SkiaSharp;

namespace MLNetFreqFusion.Benchmarks.Quality;

/// <summary>
/// A line chart of validation mIoU per epoch, one line per setting, drawn with SkiaSharp (already a dependency of the
/// library; ScottPlot 5.1 needs SkiaSharp 3, which the library's SkiaSharp 2.88 pin would conflict with).
/// </summary>
static class CurvePlot
{
    static readonly SKColor[] Colors =
    [
        new(31, 119, 180), new(255, 127, 14), new(44, 160, 44), new(214, 39, 40), new(148, 103, 189),
        new(140, 86, 75), new(227, 119, 194), new(127, 127, 127), new(188, 189, 34), new(23, 190, 207),
    ];

    public static void Write(string path, IReadOnlyList<(string Name, double[] Curve)> series)
    {
        const int width = 1240, height = 560, left = 60, right = 600, top = 30, bottom = 50;
        int epochs = Math.Max(2, series.Max(s => s.Curve.Length));
        double yMax = Math.Max(10, Math.Ceiling(series.SelectMany(s => s.Curve).DefaultIfEmpty(0).Max() / 10) * 10);
        float X(double epoch) => left + (float)((epoch - 1) / (epochs - 1) * (width - left - right));
        float Y(double miou) => top + (float)((1 - miou / yMax) * (height - top - bottom));

        using var surface = SKSurface.Create(new SKImageInfo(width, height));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        using var axis = new SKPaint { Color = SKColors.Black, StrokeWidth = 1, IsAntialias = true };
        using var grid = new SKPaint { Color = new SKColor(225, 225, 225), StrokeWidth = 1 };
        using var text = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        using var font = new SKFont { Size = 13 };
        for (double v = 0; v <= yMax; v += 10)
        {
            canvas.DrawLine(left, Y(v), width - right, Y(v), grid);
            canvas.DrawText(v.ToString(CultureInfo.InvariantCulture), left - 30, Y(v) + 4, SKTextAlign.Left, font, text);
        }
        for (int e = 1; e <= epochs; e++)
            canvas.DrawText(e.ToString(CultureInfo.InvariantCulture), X(e) - 4, height - bottom + 18, SKTextAlign.Left, font, text);
        canvas.DrawLine(left, top, left, height - bottom, axis);
        canvas.DrawLine(left, height - bottom, width - right, height - bottom, axis);
        canvas.DrawText("epoch", (left + width - right) / 2f - 15, height - 10, SKTextAlign.Left, font, text);
        canvas.DrawText("validation mIoU % (mean over seeds)", left, top - 10, SKTextAlign.Left, font, text);

        for (int i = 0; i < series.Count; i++)
        {
            using var line = new SKPaint { Color = Colors[i % Colors.Length], StrokeWidth = 2, IsAntialias = true, Style = SKPaintStyle.Stroke };
            if (i >= Colors.Length)
                line.PathEffect = SKPathEffect.CreateDash([6, 4], 0);
            var curve = series[i].Curve;
            using var p = new SKPath();
            for (int e = 0; e < curve.Length; e++)
                if (e == 0) p.MoveTo(X(1), Y(curve[0])); else p.LineTo(X(e + 1), Y(curve[e]));
            canvas.DrawPath(p, line);
            canvas.DrawLine(width - right + 15, top + 10 + i * 20, width - right + 40, top + 10 + i * 20, line);
            canvas.DrawText(series[i].Name, width - right + 46, top + 14 + i * 20, SKTextAlign.Left, font, text);
        }
        using var image = surface.Snapshot();
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        png.SaveTo(file);
    }
}
