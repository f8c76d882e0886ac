using System.Globalization;
using SkiaSharp;

namespace MLNetFreqFusion.Benchmarks.Quality;

/// <summary>
/// Line charts for docs/benchmarks.md, one line per setting, drawn with SkiaSharp (already a dependency of the
/// library; ScottPlot 5.1 needs SkiaSharp 3, which the library's SkiaSharp 2.88 pin would conflict with).
/// </summary>
static class CurvePlot
{
    static readonly SKColor[] Colors =
    [
        new(31, 119, 180), new(255, 127, 14), new(44, 160, 44), new(214, 39, 40), new(148, 103, 189),
        new(140, 86, 75), new(227, 119, 194), new(127, 127, 127), new(188, 189, 34), new(23, 190, 207),
    ];

    /// <summary>Validation mIoU per epoch (percent), epochs numbered from 1.</summary>
    public static void Write(string path, IReadOnlyList<(string Name, double[] Curve)> series) =>
        Write(path, series.Select(s => (s.Name, Enumerable.Range(1, s.Curve.Length).Select(e => (double)e).ToArray(), s.Curve)).ToList(),
            "epoch", "validation mIoU % (mean over seeds)", x => x.ToString(CultureInfo.InvariantCulture), yFromZero: true);

    /// <summary>
    /// Any curves: a tick at every integer x from the smallest to the largest (labelled by <paramref name="xTick"/>),
    /// ten horizontal grid lines over the y range (from 0 when <paramref name="yFromZero"/>).
    /// </summary>
    public static void Write(string path, IReadOnlyList<(string Name, double[] X, double[] Y)> series, string xLabel, string yLabel,
        Func<double, string> xTick, bool yFromZero = false)
    {
        const int width = 1240, height = 560, left = 60, right = 600, top = 30, bottom = 50;
        var xs = series.SelectMany(s => s.X).ToArray();
        var ys = series.SelectMany(s => s.Y).Where(double.IsFinite).DefaultIfEmpty(0).ToArray();
        double xMin = Math.Floor(xs.Min()), xMax = Math.Max(xMin + 1, Math.Ceiling(xs.Max()));
        double yStep = NiceStep(((yFromZero ? Math.Max(10, ys.Max()) : ys.Max()) - (yFromZero ? 0 : ys.Min())) / 10);
        double yMin = yFromZero ? 0 : Math.Floor(ys.Min() / yStep) * yStep, yMax = Math.Max(yMin + yStep, Math.Ceiling(ys.Max() / yStep) * yStep);
        float X(double x) => left + (float)((x - xMin) / (xMax - xMin) * (width - left - right));
        float Y(double y) => top + (float)((1 - (Math.Clamp(y, yMin, yMax) - yMin) / (yMax - yMin)) * (height - top - bottom));

        using var surface = SKSurface.Create(new SKImageInfo(width, height));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        using var axis = new SKPaint { Color = SKColors.Black, StrokeWidth = 1, IsAntialias = true };
        using var grid = new SKPaint { Color = new SKColor(225, 225, 225), StrokeWidth = 1 };
        using var text = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        using var font = new SKFont { Size = 13 };
        for (double v = yMin; v <= yMax + yStep / 2; v += yStep)
        {
            canvas.DrawLine(left, Y(v), width - right, Y(v), grid);
            canvas.DrawText(v.ToString("G3", CultureInfo.InvariantCulture), 4, Y(v) + 4, SKTextAlign.Left, font, text);
        }
        for (double x = xMin; x <= xMax; x++)
            canvas.DrawText(xTick(x), X(x) - 4, height - bottom + 18, SKTextAlign.Left, font, text);
        canvas.DrawLine(left, top, left, height - bottom, axis);
        canvas.DrawLine(left, height - bottom, width - right, height - bottom, axis);
        canvas.DrawText(xLabel, (left + width - right) / 2f - 15, height - 10, SKTextAlign.Left, font, text);
        canvas.DrawText(yLabel, left, top - 10, SKTextAlign.Left, font, text);

        for (int i = 0; i < series.Count; i++)
        {
            using var line = new SKPaint { Color = Colors[i % Colors.Length], StrokeWidth = 2, IsAntialias = true, Style = SKPaintStyle.Stroke };
            if (i >= Colors.Length)
                line.PathEffect = SKPathEffect.CreateDash([6, 4], 0);
            var (name, x, y) = series[i];
            using var p = new SKPath();
            for (int e = 0; e < Math.Min(x.Length, y.Length); e++)
                if (e == 0) p.MoveTo(X(x[0]), Y(y[0])); else p.LineTo(X(x[e]), Y(y[e]));
            canvas.DrawPath(p, line);
            canvas.DrawLine(width - right + 15, top + 10 + i * 20, width - right + 40, top + 10 + i * 20, line);
            canvas.DrawText(name, width - right + 46, top + 14 + i * 20, SKTextAlign.Left, font, text);
        }
        using var image = surface.Snapshot();
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        png.SaveTo(file);
    }

    // 1, 2 or 5 times a power of ten.
    static double NiceStep(double raw)
    {
        if (!(raw > 0))
            return 1;
        double power = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        return new[] { 1, 2, 5, 10 }.Select(m => m * power).First(s => s >= raw);
    }
}
