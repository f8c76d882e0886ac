using Microsoft.ML;
using Microsoft.ML.Runtime;
using MLNetFreqFusion.Data;

namespace MLNetFreqFusion.Training;

/// <summary>
/// One pass over a label column before training: counts the rows, finds the largest label value other than the
/// ignore index, and, when the number of classes is known (not 0), rejects label values that are neither a class nor
/// the ignore index, naming the row and file, so that a bad mask fails in seconds rather than mid-epoch. What it
/// measures on the way (rows, largest label, largest mask) is what the run-dependent defaults are chosen from.
/// </summary>
internal static class LabelScan
{
    /// <summary>What one pass over the labels found; <paramref name="PixelsPerClass"/> counts each label value up to the largest.</summary>
    public sealed record Result(int Rows, int LargestLabel, int MaxHeight, int MaxWidth, long[] PixelsPerClass);

    // what: the data's name in messages ("training data", "ValidationSet"); purpose: what an unusable set leaves
    // undone ("learn from", "measure"); numberOfClasses 0 while it is still to be inferred; classesFrom: where the
    // class count came from when not from NumberOfClasses (the label column's class names), for the fix a bad value names.
    public static Result Run(IHost host, IDataView data, string labelColumnName, int ignoreIndex, int numberOfClasses, string what,
        string purpose = "learn from", string? classesFrom = null)
    {
        int rows = 0, largest = -1, maxHeight = 0, maxWidth = 0;
        var counts = new long[ushort.MaxValue + 1];
        long classPixels = 0, ignorePixels = 0, labelledPixels = 0;
        foreach (var (_, mask) in SegmentationRows.Masks(host, data, labelColumnName))
        {
            maxHeight = Math.Max(maxHeight, mask.Height);
            maxWidth = Math.Max(maxWidth, mask.Width);
            foreach (var value in mask.Labels)
            {
                if (value == ignoreIndex) { ignorePixels++; continue; }
                largest = Math.Max(largest, value);
                counts[value]++;
                if (numberOfClasses == 0 || value < numberOfClasses) { labelledPixels++; if (value > 0) classPixels++; continue; }
                throw host.Except(BadValueMessage(rows, mask, value, numberOfClasses, ignoreIndex, classesFrom));
            }
            rows++;
        }
        if (rows == 0)
            throw host.Except($"The {what} has no rows: nothing to {purpose}. Check the file or folder the IDataView was loaded from.");
        if (labelledPixels == 0)
            throw host.Except($"Every pixel of the {what} is {ignoreIndex}, the ignore index: there is nothing to {purpose}. " +
                (ignoreIndex == 255
                    ? "If 255 marks a class (masks saved as 0/255 for background/foreground, or 255 as a class value), map it with " +
                      "LoadSegmentationMasks(..., options: new MaskDecodeOptions { ValueMap = new Dictionary<ushort, ushort> { [255] = 1 } }); "
                    : "") +
                "otherwise check the label column (LoadSegmentationMasks options ReduceZeroLabel, ValueMap, IgnoreIndex).");
        if (classPixels == 0 && ignorePixels > 0 && ignoreIndex == 255)
            throw host.Except($"Every labelled pixel of the {what} is class 0; the other pixels are 255, which is the ignore index. " +
                "Masks saved as 0/255 mean class 1 by 255: read them with LoadSegmentationMasks(..., options: new MaskDecodeOptions " +
                "{ ValueMap = new Dictionary<ushort, ushort> { [255] = 1 } }) and NumberOfClasses = 2.");
        return new Result(rows, largest, maxHeight, maxWidth, counts[..(largest + 1)]);
    }

    static string BadValueMessage(int row, SegmentationMask mask, int value, int numberOfClasses, int ignoreIndex, string? classesFrom)
    {
        string source = mask.SourcePath is null ? "" : $" ('{mask.SourcePath}')";
        string hint = value == 255
            ? " Masks saved as 0/255 use 255 for the foreground: map it to class 1 with MaskDecodeOptions.ValueMap ({ [255] = 1 }), or set IgnoreIndex = 255 if 255 marks pixels to ignore."
            : classesFrom is null
                ? $" Set NumberOfClasses to at least {value + 1}, or remap the value with MaskDecodeOptions.ValueMap."
                : $" Give LoadSegmentationMasks' classNames a name for every class up to {value} ({value + 1} names), or remap the value with MaskDecodeOptions.ValueMap.";
        string classes = classesFrom ?? $"NumberOfClasses is {numberOfClasses}";
        return $"Row {row}{source}: label value {value} is not a class ({classes}) and not the ignore index {ignoreIndex}.{hint}";
    }
}
