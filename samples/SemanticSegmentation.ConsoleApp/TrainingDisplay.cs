using System.Diagnostics;
using MLNetFreqFusion;
using Spectre.Console;

namespace SemanticSegmentation.ConsoleApp;

/// <summary>
/// What the sample shows while it trains: a live progress bar (loss, images/s, ETA, validation mIoU) on a terminal, a
/// plain line per epoch and every 15 seconds when the output is redirected (CI, tests, a log file), where a redrawn
/// bar would only write control codes. Both record the learning curve.
/// </summary>
public static class TrainingDisplay
{
    /// <summary>Runs <paramref name="fit"/> with a progress sink that displays and records every report.</summary>
    public static T Run<T>(Func<IProgress<SemanticSegmentationProgress>, T> fit, LearningCurve curve)
    {
        if (Console.IsOutputRedirected || !AnsiConsole.Profile.Capabilities.Interactive)
            return fit(new Recording(curve, new PlainLines(Stopwatch.StartNew())));

        T result = default!;
        AnsiConsole.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new SpinnerColumn())
            .Start(context =>
            {
                var task = context.AddTask("starting", maxValue: 1);
                result = fit(new Recording(curve, new LiveBar(task)));
                task.Value = task.MaxValue;
                task.StopTask();
            });
        return result;
    }

    /// <summary>Adds each report to the curve, then hands it on.</summary>
    sealed class Recording(LearningCurve curve, IProgress<SemanticSegmentationProgress> display) : IProgress<SemanticSegmentationProgress>
    {
        public void Report(SemanticSegmentationProgress p)
        {
            curve.Add(p);
            display.Report(p);
        }
    }

    /// <summary>Updates one Spectre.Console task: the bar counts steps, the description carries the numbers.</summary>
    sealed class LiveBar(ProgressTask task) : IProgress<SemanticSegmentationProgress>
    {
        double? _lastMeanIoU;
        SemanticSegmentationProgress? _lastStep;

        public void Report(SemanticSegmentationProgress p)
        {
            if (p.ValidationMeanIoU is double miou)
                _lastMeanIoU = miou;
            else
                _lastStep = p;
            var s = _lastStep ?? p;
            task.MaxValue = Math.Max(1, p.TotalSteps);
            task.Value = p.Step;
            string validation = _lastMeanIoU is double v ? $"val mIoU {v:P1}" : "val mIoU –";
            task.Description = Markup.Escape(
                $"epoch {p.Epoch}/{p.MaxEpochs}  loss {s.Loss:F4}  {s.ImagesPerSecond:F1} img/s  ETA {p.EstimatedTimeRemaining:hh\\:mm\\:ss}  {validation}");
        }
    }

    /// <summary>A line per validation, and one per 15 seconds of steps, so a long Fit never looks frozen.</summary>
    sealed class PlainLines(Stopwatch clock) : IProgress<SemanticSegmentationProgress>
    {
        TimeSpan _last = TimeSpan.FromSeconds(-60);

        public void Report(SemanticSegmentationProgress p)
        {
            if (p.ValidationMeanIoU is double miou)
            {
                Console.WriteLine($"  epoch {p.Epoch,2}/{p.MaxEpochs}  validation mIoU {miou:P2}  ({clock.Elapsed:mm\\:ss} elapsed, about {p.EstimatedTimeRemaining:mm\\:ss} left)");
                return;
            }
            if (clock.Elapsed - _last < TimeSpan.FromSeconds(15) && p.Step != p.TotalSteps)
                return;
            _last = clock.Elapsed;
            Console.WriteLine($"  epoch {p.Epoch,2}/{p.MaxEpochs}  step {p.Step,4}/{p.TotalSteps}  loss {p.Loss:F4}  lr {p.LearningRate:G3}  {p.ImagesPerSecond:F1} images/s  ETA {p.EstimatedTimeRemaining:hh\\:mm\\:ss}");
        }
    }
}
