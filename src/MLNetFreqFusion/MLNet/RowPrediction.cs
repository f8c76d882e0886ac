using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNetFreqFusion.Inference;

namespace MLNetFreqFusion;

/// <summary>
/// The prediction of the row a cursor or row is on, made at most once per row however many output columns are
/// read, and the getters of the output columns. Shared by the PredictionEngine row mapper and the batched cursor,
/// which differ only in how a row's prediction is made.
/// </summary>
internal sealed class RowPrediction
{
    readonly DataViewRow _row;
    readonly Func<long, SegmentationPrediction> _predict;
    long _position = -1;
    SegmentationPrediction _prediction;

    /// <param name="row">The row whose <see cref="DataViewRow.Position"/> says which prediction is current.</param>
    /// <param name="predict">Makes the prediction of the row at a position.</param>
    public RowPrediction(DataViewRow row, Func<long, SegmentationPrediction> predict)
    {
        _row = row;
        _predict = predict;
    }

    /// <summary>
    /// The output columns of a model: the predicted mask, carrying the model's class names as the
    /// <see cref="SegmentationAnnotations.ClassNames"/> annotation, then the optional probabilities (K × H × W, class-major).
    /// </summary>
    public static DataViewSchema.DetachedColumn[] OutputColumns(string predictedLabel, string? probabilities, IReadOnlyList<string> classNames)
    {
        var columns = new List<DataViewSchema.DetachedColumn>
        {
            new(predictedLabel, SegmentationMaskDataViewType.Instance, SegmentationAnnotations.Of(classNames)),
        };
        if (probabilities is not null)
            columns.Add(new(probabilities, new VectorDataViewType(NumberDataViewType.Single)));
        return columns.ToArray();
    }

    /// <summary><see cref="OutputColumns"/> as an estimator's schema shape columns (a trained model always has class names).</summary>
    public static SchemaShape.Column[] OutputShape(string predictedLabel, string? probabilities)
    {
        var columns = new List<SchemaShape.Column> { SegmentationAnnotations.MaskColumnShape(predictedLabel, hasNames: true) };
        if (probabilities is not null)
            columns.Add(new(probabilities, SchemaShape.Column.VectorKind.VariableVector, NumberDataViewType.Single, false));
        return columns.ToArray();
    }

    /// <summary>The error of a row whose image column holds no image.</summary>
    public static Exception NoImage(IExceptionContext ectx, string imageColumn, long row) =>
        ectx.Except($"Row {row}: the image column '{imageColumn}' holds no image.");

    /// <summary>The getter of output column <paramref name="index"/> (0 = mask, 1 = probabilities).</summary>
    public Delegate Getter(int index) => index == 0
        ? (ValueGetter<SegmentationMask>)((ref SegmentationMask value) => value = Current().Mask)
        : (ValueGetter<VBuffer<float>>)((ref VBuffer<float> value) => CopyProbabilities(Current(), ref value));

    SegmentationPrediction Current()
    {
        if (_position != _row.Position)
        {
            _prediction = _predict(_row.Position);
            _position = _row.Position;
        }
        return _prediction;
    }

    static void CopyProbabilities(SegmentationPrediction prediction, ref VBuffer<float> value)
    {
        var probabilities = prediction.Probabilities!;
        var editor = VBufferEditor.Create(ref value, probabilities.Length);
        probabilities.CopyTo(editor.Values);
        value = editor.Commit();
    }
}
