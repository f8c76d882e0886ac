using Microsoft.ML;
using Microsoft.ML.Runtime;
using MLNetFreqFusion.Data;

namespace MLNetFreqFusion.Training;

/// <summary>
/// One pass over a label column before training: counts the rows and rejects label values that are neither a class
/// nor the ignore index, naming the row and file, so that a bad mask fails in seconds rather than mid-epoch.
/// </summary>
internal static class LabelScan
{
    public static int Run(IHost host, IDataView data, TrainingSettings o, string what)
    {
        int rows = 0;
        long classPixels = 0, ignorePixels = 0;
        foreach (var (_, mask) in SegmentationRows.Masks(host, data, o.LabelColumnName))
        {
            foreach (var value in mask.Labels)
            {
                if (value == o.IgnoreIndex) { ignorePixels++; continue; }
                if (value < o.NumberOfClasses) { if (value > 0) classPixels++; continue; }
                throw host.Except(BadValueMessage(rows, mask, value, o));
            }
            rows++;
        }
        if (rows == 0)
            throw host.Except($"The {what} has no rows: nothing to train on. Check the file or folder the IDataView was loaded from.");
        if (classPixels == 0 && ignorePixels > 0 && o.IgnoreIndex == 255)
            throw host.Except($"Every labelled pixel of the {what} is class 0; the other pixels are 255, which is the ignore index. " +
                "Masks saved as 0/255 mean class 1 by 255: read them with LoadSegmentationMasks(..., options: new MaskDecodeOptions " +
                "{ ValueMap = new Dictionary<ushort, ushort> { [255] = 1 } }) and NumberOfClasses = 2.");
        return rows;
    }

    static string BadValueMessage(int row, SegmentationMask mask, int value, TrainingSettings o)
    {
        string source = mask.SourcePath is null ? "" : $" ('{mask.SourcePath}')";
        string hint = value == 255
            ? " Masks saved as 0/255 use 255 for the foreground: map it to class 1 with MaskDecodeOptions.ValueMap ({ [255] = 1 }), or set IgnoreIndex = 255 if 255 marks pixels to ignore."
            : $" Set NumberOfClasses to at least {value + 1}, or remap the value with MaskDecodeOptions.ValueMap.";
        return $"Row {row}{source}: label value {value} is not a class (NumberOfClasses is {o.NumberOfClasses}) and not the ignore index {o.IgnoreIndex}.{hint}";
    }
}
