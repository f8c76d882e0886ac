using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace MLNetFreqFusion.Data;

/// <summary>
/// The one loop over an IDataView's image and mask columns: every row is checked (a value present in each column,
/// image and mask of one size, with one message naming the row and the files), and cancellation
/// (<c>MLContext.CancelExecution</c>) is honoured between rows. Used by training, validation, the label scan,
/// evaluation and the feature-consistency analysis.
/// </summary>
/// <remarks>
/// The yielded values belong to the cursor: an image column's getter may dispose or reuse its MLImage when the cursor
/// moves, so a caller that keeps an image past its row copies it.
/// </remarks>
internal static class SegmentationRows
{
    /// <summary>Each row's image and mask, checked to be present and of one size.</summary>
    public static IEnumerable<(long Row, MLImage Image, SegmentationMask Mask)> ImagesAndMasks(IHost host, IDataView data, string imageColumn, string maskColumn) =>
        Pairs<MLImage>(host, data, imageColumn, "image", maskColumn, "mask", image => (image.Width, image.Height, image.Tag));

    /// <summary>Each row's predicted and label masks, checked to be present and of one size.</summary>
    public static IEnumerable<(long Row, SegmentationMask Predicted, SegmentationMask Label)> PredictionsAndLabels(IHost host, IDataView data,
        string predictedColumn, string labelColumn) =>
        Pairs<SegmentationMask>(host, data, predictedColumn, "predicted mask", labelColumn, "label mask", mask => (mask.Width, mask.Height, mask.SourcePath));

    /// <summary>Each row's mask, checked to be present.</summary>
    public static IEnumerable<(long Row, SegmentationMask Mask)> Masks(IHost host, IDataView data, string maskColumn)
    {
        var column = data.Schema[maskColumn];
        using var cursor = data.GetRowCursor(new[] { column });
        var getMask = cursor.GetGetter<SegmentationMask>(column);
        SegmentationMask mask = null!;
        for (long row = 0; cursor.MoveNext(); row++)
        {
            host.CheckAlive();
            getMask(ref mask);
            yield return (row, mask ?? throw Missing(host, row, "mask", maskColumn));
        }
    }

    static IEnumerable<(long Row, T First, SegmentationMask Mask)> Pairs<T>(IHost host, IDataView data, string firstColumn, string firstWhat,
        string maskColumn, string maskWhat, Func<T, (int Width, int Height, string? Source)> describe)
        where T : class
    {
        var first = data.Schema[firstColumn];
        var second = data.Schema[maskColumn];
        using var cursor = data.GetRowCursor(new[] { first, second });
        var getFirst = cursor.GetGetter<T>(first);
        var getMask = cursor.GetGetter<SegmentationMask>(second);
        T value = null!;
        SegmentationMask mask = null!;
        for (long row = 0; cursor.MoveNext(); row++)
        {
            host.CheckAlive();
            getFirst(ref value);
            getMask(ref mask);
            if (value is null)
                throw Missing(host, row, firstWhat, firstColumn);
            if (mask is null)
                throw Missing(host, row, maskWhat, maskColumn);
            var (width, height, source) = describe(value);
            if (width != mask.Width || height != mask.Height)
                throw host.Except($"Row {row}: the {maskWhat}{Quoted(mask.SourcePath)} is {mask.Width}×{mask.Height} but the {firstWhat}{Quoted(source)} " +
                    $"is {width}×{height}; an image and its mask must have the same size. Resize neither with ResizeImages (it filters masks); " +
                    "fix the pair on disk.");
            yield return (row, value, mask);
        }
    }

    static Exception Missing(IHost host, long row, string what, string column) =>
        host.Except($"Row {row} has no {what} in column '{column}'.");

    static string Quoted(string? source) => string.IsNullOrEmpty(source) ? "" : $" '{source}'";
}
