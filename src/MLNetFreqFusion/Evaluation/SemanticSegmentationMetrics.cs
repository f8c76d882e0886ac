using System.Collections.ObjectModel;
using System.Globalization;
using System.Text;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNetFreqFusion.Evaluation;

namespace MLNetFreqFusion;

/// <summary>
/// Semantic-segmentation metrics over a whole dataset, computed as mmsegmentation's <c>IoUMetric</c> does, plus
/// Boundary IoU (Cheng et al., CVPR 2021). Produced by <see cref="SegmentationMetricsAccumulator.Compute"/>.
/// </summary>
/// <remarks>
/// <para>
/// Per class c the dataset-wide areas are accumulated first: intersection I (pixels labelled c and predicted c),
/// predicted area P, label area G and union U = P + G − I. Pixels whose label is the ignore index are left out of
/// every count, and a predicted value outside [0, number of classes) is not counted as a prediction of any class
/// (its pixel still counts in G). Every value is a fraction in [0, 1]; <see cref="ToString"/> shows percent.
/// </para>
/// <para>
/// NaN cases — a per-class value is NaN when its denominator is zero, and every mean skips NaN entries:
/// <list type="bullet">
/// <item>A class absent from both labels and predictions (P = G = 0) has NaN for every per-class value and does not
/// take part in any mean.</item>
/// <item>A class predicted but absent from the labels (P &gt; 0, G = 0) has IoU 0, Dice 0 and Precision 0, which do
/// count in <see cref="MeanIoU"/>, <see cref="MeanDice"/> and <see cref="MeanPrecision"/> (they pull the means down);
/// its Accuracy and Recall are NaN (I / G with G = 0) and are left out, and so is its F-score.</item>
/// <item>A class labelled but never predicted (G &gt; 0, P = 0) has IoU, Dice, Accuracy and Recall 0 and NaN Precision
/// and F-score.</item>
/// <item>A class labelled and predicted but never hit (I = 0) has F-score 0. Here mmsegmentation computes 0/0 from
/// precision and recall and gets NaN, which it leaves out of mFscore; this class reports 0, equal to its Dice.</item>
/// </list>
/// A mean over classes that are all NaN is NaN; <see cref="PixelAccuracy"/> and <see cref="FrequencyWeightedIoU"/> are
/// NaN when no pixel is labelled. Boundary IoU follows the IoU rules with band areas in place of areas.
/// </para>
/// </remarks>
public sealed class SemanticSegmentationMetrics
{
    private readonly long[] _confusion;

    internal SemanticSegmentationMetrics(long[] confusion, long[] labelArea, long[] boundaryIntersection, long[] boundaryUnion,
        IReadOnlyList<string> classNames)
    {
        int classes = labelArea.Length;
        _confusion = (long[])confusion.Clone();
        var intersection = new long[classes];
        var predicted = new long[classes];
        for (int l = 0; l < classes; l++)
            for (int p = 0; p < classes; p++)
            {
                long count = confusion[l * classes + p];
                predicted[p] += count;
                if (l == p)
                    intersection[l] = count;
            }

        var union = SegmentationMetricMath.Union(intersection, predicted, labelArea);
        var iou = SegmentationMetricMath.Ratios(intersection, union);
        var accuracy = SegmentationMetricMath.Ratios(intersection, labelArea);
        var dice = SegmentationMetricMath.Ratios(intersection, SegmentationMetricMath.Sum(predicted, labelArea), factor: 2);
        var precision = SegmentationMetricMath.Ratios(intersection, predicted);
        var fscore = new double[classes];
        for (int c = 0; c < classes; c++)
            fscore[c] = SegmentationMetricMath.FScore(precision[c], accuracy[c]);
        var boundaryIoU = SegmentationMetricMath.Ratios(boundaryIntersection, boundaryUnion);

        ClassNames = new ReadOnlyCollection<string>(classNames.ToArray());
        PerClassIoU = Array.AsReadOnly(iou);
        PerClassAccuracy = Array.AsReadOnly(accuracy);
        PerClassDice = Array.AsReadOnly(dice);
        PerClassPrecision = Array.AsReadOnly(precision);
        PerClassRecall = PerClassAccuracy;
        PerClassFScore = Array.AsReadOnly(fscore);
        PerClassBoundaryIoU = Array.AsReadOnly(boundaryIoU);

        long totalIntersection = intersection.Sum();
        long totalLabel = labelArea.Sum();
        PixelAccuracy = SegmentationMetricMath.Ratio(totalIntersection, totalLabel);
        MeanIoU = SegmentationMetricMath.NanMean(iou);
        MeanAccuracy = SegmentationMetricMath.NanMean(accuracy);
        MeanDice = SegmentationMetricMath.NanMean(dice);
        MeanPrecision = SegmentationMetricMath.NanMean(precision);
        MeanRecall = MeanAccuracy;
        MeanFScore = SegmentationMetricMath.NanMean(fscore);
        FrequencyWeightedIoU = SegmentationMetricMath.FrequencyWeightedIoU(labelArea, iou);
        MeanBoundaryIoU = SegmentationMetricMath.NanMean(boundaryIoU);
    }

    /// <summary>Class names, index by index (the class index as text when no names were given).</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>Number of classes.</summary>
    public int NumberOfClasses => ClassNames.Count;

    /// <summary>Pixel accuracy (mmsegmentation's aAcc): Σ_c I_c / Σ_c G_c, the fraction of labelled pixels predicted right.
    /// It is ML.NET's micro-accuracy with each labelled pixel as one example: <see cref="MicroAccuracy"/>.</summary>
    public double PixelAccuracy { get; }

    /// <summary>ML.NET's name for <see cref="PixelAccuracy"/>, as in <c>MulticlassClassificationMetrics.MicroAccuracy</c>:
    /// every labelled pixel is one example.</summary>
    public double MicroAccuracy => PixelAccuracy;

    /// <summary>ML.NET's name for <see cref="MeanAccuracy"/>, as in <c>MulticlassClassificationMetrics.MacroAccuracy</c>:
    /// the accuracy of each class, averaged over classes (classes absent from the labels left out).</summary>
    public double MacroAccuracy => MeanAccuracy;

    /// <summary>Per-class intersection over union I / (P + G − I). NaN for a class absent from labels and predictions;
    /// 0 for a class only predicted.</summary>
    public IReadOnlyList<double> PerClassIoU { get; }

    /// <summary>Per-class accuracy I / G (equal to recall). NaN for a class absent from the labels, even if predicted.</summary>
    public IReadOnlyList<double> PerClassAccuracy { get; }

    /// <summary>Per-class Dice coefficient 2I / (P + G). NaN for a class absent from labels and predictions.</summary>
    public IReadOnlyList<double> PerClassDice { get; }

    /// <summary>Per-class precision I / P. NaN for a class never predicted.</summary>
    public IReadOnlyList<double> PerClassPrecision { get; }

    /// <summary>Per-class recall I / G (equal to accuracy). NaN for a class absent from the labels.</summary>
    public IReadOnlyList<double> PerClassRecall { get; }

    /// <summary>Per-class F-score (β = 1) of precision and recall. NaN when either is NaN; 0 when both are 0.</summary>
    public IReadOnlyList<double> PerClassFScore { get; }

    /// <summary>
    /// Per-class Boundary IoU: dataset-wide intersection over union of the label and prediction boundary bands. NaN for a
    /// class with no band pixel in labels or predictions (absent from both); 0 for a class only predicted.
    /// </summary>
    public IReadOnlyList<double> PerClassBoundaryIoU { get; }

    /// <summary>Mean IoU over classes, NaN entries left out (see the remarks of <see cref="SemanticSegmentationMetrics"/>).</summary>
    public double MeanIoU { get; }

    /// <summary>Mean accuracy over classes, NaN entries (classes absent from the labels) left out.</summary>
    public double MeanAccuracy { get; }

    /// <summary>Mean Dice over classes, NaN entries left out.</summary>
    public double MeanDice { get; }

    /// <summary>Mean precision over classes, NaN entries (classes never predicted) left out.</summary>
    public double MeanPrecision { get; }

    /// <summary>Mean recall over classes, NaN entries (classes absent from the labels) left out; equals <see cref="MeanAccuracy"/>.</summary>
    public double MeanRecall { get; }

    /// <summary>Mean F-score over classes, NaN entries left out.</summary>
    public double MeanFScore { get; }

    /// <summary>Frequency-weighted IoU: Σ_c (G_c / Σ G) · IoU_c. NaN when no pixel is labelled.</summary>
    public double FrequencyWeightedIoU { get; }

    /// <summary>Mean Boundary IoU over classes, NaN entries left out.</summary>
    public double MeanBoundaryIoU { get; }

    /// <summary>
    /// A copy of the confusion matrix: entry [l, p] counts the pixels labelled l and predicted p. Ignored pixels and
    /// predictions outside the class range are not in it, so a row may sum to less than the class's label area.
    /// </summary>
    /// <returns>A new array of NumberOfClasses × NumberOfClasses counts; rows are labels, columns predictions.</returns>
    public long[,] GetConfusionMatrix()
    {
        int classes = NumberOfClasses;
        var matrix = new long[classes, classes];
        for (int l = 0; l < classes; l++)
            for (int p = 0; p < classes; p++)
                matrix[l, p] = _confusion[l * classes + p];
        return matrix;
    }

    /// <summary>
    /// The confusion matrix as ML.NET's <see cref="Microsoft.ML.Data.ConfusionMatrix"/>, the type multiclass evaluation
    /// returns: <c>Counts[l][p]</c> counts the pixels labelled l and predicted p (as doubles, exact up to
    /// 2^53 pixels), <c>PerClassPrecision</c> and <c>PerClassRecall</c> are <see cref="PerClassPrecision"/> and
    /// <see cref="PerClassRecall"/>, and <c>GetFormattedConfusionTable()</c> heads rows and columns with <see cref="ClassNames"/>.
    /// <see cref="GetConfusionMatrix"/> gives the same counts as integers.
    /// </summary>
    public ConfusionMatrix ConfusionMatrix => _mlnetConfusionMatrix ??= ToMLNetConfusionMatrix();

    private ConfusionMatrix? _mlnetConfusionMatrix;

    private ConfusionMatrix ToMLNetConfusionMatrix()
    {
        int classes = NumberOfClasses;
        var counts = new double[classes][];
        for (int l = 0; l < classes; l++)
        {
            counts[l] = new double[classes];
            for (int p = 0; p < classes; p++)
                counts[l][p] = _confusion[l * classes + p];
        }
        // The constructor is internal (the library compiles against publicized ML.NET, docs/architecture.md); its host
        // only serves debug assertions.
        IHost host = ((IHostEnvironment)new MLContext()).Register(nameof(SemanticSegmentationMetrics));
        return new ConfusionMatrix(host, PerClassPrecision.ToArray(), PerClassRecall.ToArray(), counts,
            ClassNames.Select(n => n.AsMemory()).ToList(), isSampled: false, isBinary: false);
    }

    /// <summary>The confusion matrix as a text table: one row per label class, one column per predicted class.</summary>
    /// <returns>The table, with class names as row and column headers.</returns>
    public string GetFormattedConfusionTable()
    {
        int classes = NumberOfClasses;
        var headers = new string[classes + 1];
        headers[0] = "Label \\ Predicted";
        for (int c = 0; c < classes; c++)
            headers[c + 1] = ClassNames[c];
        var rows = new List<string[]>(classes);
        for (int l = 0; l < classes; l++)
        {
            var row = new string[classes + 1];
            row[0] = ClassNames[l];
            for (int p = 0; p < classes; p++)
                row[p + 1] = _confusion[l * classes + p].ToString(CultureInfo.InvariantCulture);
            rows.Add(row);
        }
        return FormatTable(headers, rows);
    }

    /// <summary>
    /// Per-class results and the summary as text tables, in percent with two decimals (mmsegmentation's log format;
    /// NaN shows as <c>nan</c>).
    /// </summary>
    /// <returns>The two tables.</returns>
    public override string ToString()
    {
        var perClass = new List<string[]>(NumberOfClasses);
        for (int c = 0; c < NumberOfClasses; c++)
            perClass.Add(
            [
                ClassNames[c], Percent(PerClassIoU[c]), Percent(PerClassAccuracy[c]), Percent(PerClassDice[c]),
                Percent(PerClassFScore[c]), Percent(PerClassPrecision[c]), Percent(PerClassRecall[c]),
                Percent(PerClassBoundaryIoU[c]),
            ]);
        var text = new StringBuilder();
        text.AppendLine("per class results:");
        text.AppendLine(FormatTable(["Class", "IoU", "Acc", "Dice", "Fscore", "Precision", "Recall", "BIoU"], perClass));
        text.AppendLine("Summary:");
        text.Append(FormatTable(
            ["aAcc", "mIoU", "mAcc", "mDice", "mFscore", "mPrecision", "mRecall", "fwIoU", "mBIoU"],
            [[
                Percent(PixelAccuracy), Percent(MeanIoU), Percent(MeanAccuracy), Percent(MeanDice), Percent(MeanFScore),
                Percent(MeanPrecision), Percent(MeanRecall), Percent(FrequencyWeightedIoU), Percent(MeanBoundaryIoU),
            ]]));
        return text.ToString();
    }

    private static string Percent(double fraction) =>
        double.IsNaN(fraction) ? "nan" : (fraction * 100).ToString("F2", CultureInfo.InvariantCulture);

    // A PrettyTable-style grid: first column left-aligned, the others right-aligned.
    private static string FormatTable(string[] headers, IReadOnlyList<string[]> rows)
    {
        var widths = headers.Select(h => h.Length).ToArray();
        foreach (var row in rows)
            for (int i = 0; i < row.Length; i++)
                widths[i] = Math.Max(widths[i], row[i].Length);
        string rule = "+" + string.Join("+", widths.Select(w => new string('-', w + 2))) + "+";
        var text = new StringBuilder();
        void Line(string[] cells)
        {
            text.Append('|');
            for (int i = 0; i < cells.Length; i++)
                text.Append(' ').Append(i == 0 ? cells[i].PadRight(widths[i]) : cells[i].PadLeft(widths[i])).Append(" |");
            text.AppendLine();
        }
        text.AppendLine(rule);
        Line(headers);
        text.AppendLine(rule);
        foreach (var row in rows)
            Line(row);
        text.Append(rule);
        return text.ToString();
    }
}
