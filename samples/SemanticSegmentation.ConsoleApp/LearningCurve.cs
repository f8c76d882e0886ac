using MLNetFreqFusion;

namespace SemanticSegmentation.ConsoleApp;

/// <summary>
/// The training loss of every step and the validation mIoU of every epoch, as the trainer reports them, and their
/// plot: loss on the left axis, validation mIoU (percent) on the right, both against the optimizer step.
/// </summary>
public sealed class LearningCurve
{
    readonly List<(double Step, double Loss)> _losses = new();
    readonly List<(double Step, double MeanIoU)> _validation = new();

    /// <summary>Step losses recorded so far.</summary>
    public IReadOnlyList<(double Step, double Loss)> Losses => _losses;

    /// <summary>Validation mIoU (fraction) after each epoch, at the step where that epoch ended.</summary>
    public IReadOnlyList<(double Step, double MeanIoU)> Validation => _validation;

    /// <summary>Records one progress report.</summary>
    public void Add(SemanticSegmentationProgress p)
    {
        if (p.ValidationMeanIoU is double miou)
            _validation.Add((p.Step, miou));
        else
            _losses.Add((p.Step, p.Loss));
    }

    /// <summary>Writes the plot as a PNG of <paramref name="width"/> × <paramref name="height"/> pixels.</summary>
    public void SavePng(string path, int width = 900, int height = 500)
    {
        if (_losses.Count == 0)
            throw new InvalidOperationException("No training step was recorded, so there is no learning curve to plot.");
        var plot = new ScottPlot.Plot();
        var loss = plot.Add.ScatterLine(_losses.Select(l => l.Step).ToArray(), _losses.Select(l => l.Loss).ToArray());
        loss.LegendText = "training loss (per step)";
        loss.LineWidth = 1;
        if (_validation.Count > 0)
        {
            var miou = plot.Add.Scatter(_validation.Select(v => v.Step).ToArray(), _validation.Select(v => 100 * v.MeanIoU).ToArray());
            miou.LegendText = "validation mIoU % (per epoch)";
            miou.Axes.YAxis = plot.Axes.Right;
            miou.MarkerSize = 7;
            miou.LineWidth = 2;
            plot.Axes.Right.Label.Text = "validation mIoU (%)";
        }
        plot.Axes.Bottom.Label.Text = "optimizer step";
        plot.Axes.Left.Label.Text = "loss";
        plot.Title("Learning curve");
        plot.ShowLegend(ScottPlot.Alignment.UpperCenter);
        plot.SavePng(path, width, height);
    }
}
