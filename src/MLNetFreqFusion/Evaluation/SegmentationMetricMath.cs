namespace MLNetFreqFusion.Evaluation;

/// <summary>
/// The pure arithmetic of mmsegmentation's <c>total_area_to_metrics</c>: per-class ratios of accumulated areas, NaN where
/// a denominator is zero, and NaN-ignoring means.
/// </summary>
internal static class SegmentationMetricMath
{
    /// <summary><paramref name="numerator"/> / <paramref name="denominator"/>, NaN when the denominator is zero.</summary>
    internal static double Ratio(double numerator, double denominator) => denominator == 0 ? double.NaN : numerator / denominator;

    /// <summary>Element-wise <see cref="Ratio"/> with an optional factor on the numerator.</summary>
    internal static double[] Ratios(long[] numerators, long[] denominators, double factor = 1)
    {
        var result = new double[numerators.Length];
        for (int c = 0; c < result.Length; c++)
            result[c] = Ratio(factor * numerators[c], denominators[c]);
        return result;
    }

    /// <summary>Union = predicted + label − intersection, per class.</summary>
    internal static long[] Union(long[] intersection, long[] predicted, long[] label)
    {
        var union = new long[intersection.Length];
        for (int c = 0; c < union.Length; c++)
            union[c] = predicted[c] + label[c] - intersection[c];
        return union;
    }

    /// <summary>Element-wise sum, for the Dice denominator predicted + label.</summary>
    internal static long[] Sum(long[] a, long[] b)
    {
        var sum = new long[a.Length];
        for (int c = 0; c < sum.Length; c++)
            sum[c] = a[c] + b[c];
        return sum;
    }

    /// <summary>
    /// F-score (1 + β²)·P·R / (β²·P + R): NaN when precision or recall is NaN, and 0 when both are 0 (mmsegmentation
    /// divides 0 by 0 there and gets NaN; a class that is labelled and predicted but never hit has F-score 0, as its
    /// Dice is).
    /// </summary>
    internal static double FScore(double precision, double recall, double beta = 1)
    {
        if (double.IsNaN(precision) || double.IsNaN(recall))
            return double.NaN;
        double b2 = beta * beta;
        double denominator = b2 * precision + recall;
        return denominator == 0 ? 0 : (1 + b2) * precision * recall / denominator;
    }

    /// <summary>Mean over the non-NaN entries (numpy's <c>nanmean</c>); NaN when every entry is NaN.</summary>
    internal static double NanMean(IReadOnlyList<double> values)
    {
        double sum = 0;
        int count = 0;
        foreach (double v in values)
        {
            if (double.IsNaN(v))
                continue;
            sum += v;
            count++;
        }
        return count == 0 ? double.NaN : sum / count;
    }

    /// <summary>
    /// Σ_c (label area_c / total label area) · IoU_c over the classes present in the labels; NaN when no pixel is labelled.
    /// </summary>
    internal static double FrequencyWeightedIoU(long[] labelArea, double[] iou)
    {
        double total = 0;
        foreach (long area in labelArea)
            total += area;
        if (total == 0)
            return double.NaN;
        double sum = 0;
        for (int c = 0; c < iou.Length; c++)
            if (labelArea[c] > 0)
                sum += labelArea[c] / total * iou[c];
        return sum;
    }
}
