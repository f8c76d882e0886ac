using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNetFreqFusion.Data;
using MLNetFreqFusion.Inference;
using static TorchSharp.torch;

namespace MLNetFreqFusion;

/// <summary>
/// The output of <see cref="SemanticSegmentationTransformer.Transform"/>: the input's columns plus the predictions,
/// which are made for several consecutive rows of one image size at once.
/// </summary>
/// <remarks>
/// A cursor reads its rows from the input as usual, and a second, look-ahead cursor over the input's image column
/// collects the next rows' images into a batch when a prediction is first asked for. Unshuffled cursors of one
/// data view return the same rows in the same order (IDataView's contract), so the two stay in step; this is
/// also why the view does not shuffle. Buffering the rows' other columns instead would need a copy of every value
/// of every type the input may hold.
/// </remarks>
internal sealed class BatchedSegmentationDataView : IDataView
{
    readonly IHost _host;
    readonly IDataView _input;
    readonly IDataView _rowByRow;
    readonly string _imageColumnName;
    readonly SegmentationPredictor _predictor;

    public BatchedSegmentationDataView(IHost host, IDataView input, IDataView rowByRow, string imageColumnName, SegmentationPredictor predictor)
    {
        _host = host;
        _input = input;
        _rowByRow = rowByRow;
        _imageColumnName = imageColumnName;
        _predictor = predictor;
    }

    public DataViewSchema Schema => _rowByRow.Schema;

    public bool CanShuffle => false;

    public long? GetRowCount() => _input.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.Select(c => c.Index).ToHashSet();
        int inputCount = _input.Schema.Count;
        bool wantMask = needed.Contains(inputCount), wantProbabilities = needed.Contains(inputCount + 1);
        if (!wantMask && !wantProbabilities)
            return _rowByRow.GetRowCursor(columnsNeeded, rand);
        var rows = _input.GetRowCursor(needed.Where(i => i < inputCount).Select(i => _input.Schema[i]));
        var images = _input.GetRowCursor(new[] { _input.Schema[_imageColumnName] });
        return new Cursor(this, rows, images, wantMask, wantProbabilities);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null)
        => new[] { GetRowCursor(columnsNeeded, rand) };

    sealed class Cursor : DataViewRowCursor
    {
        readonly BatchedSegmentationDataView _view;
        readonly DataViewRowCursor _rows, _images;
        readonly ValueGetter<MLImage> _getImage;
        readonly bool _wantMask, _wantProbabilities;
        readonly RowPrediction _prediction;
        readonly Queue<(long Row, SegmentationPrediction Prediction)> _predicted = new();
        // The look-ahead row read past the end of a batch because its size differed; it starts the next batch.
        (long Row, Tensor? Rgb)? _carried;
        MLImage _image = null!;

        public Cursor(BatchedSegmentationDataView view, DataViewRowCursor rows, DataViewRowCursor images, bool wantMask, bool wantProbabilities)
        {
            _view = view;
            _rows = rows;
            _images = images;
            _getImage = images.GetGetter<MLImage>(images.Schema[view._imageColumnName]);
            _wantMask = wantMask;
            _wantProbabilities = wantProbabilities;
            _prediction = new RowPrediction(this, PredictionAt);
        }

        public override DataViewSchema Schema => _view.Schema;

        public override long Position => _rows.Position;

        public override long Batch => _rows.Batch;

        public override ValueGetter<DataViewRowId> GetIdGetter() => _rows.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column)
        {
            int inputCount = _view._input.Schema.Count;
            if (column.Index < inputCount)
                return _rows.IsColumnActive(_view._input.Schema[column.Index]);
            return column.Index == inputCount ? _wantMask : _wantProbabilities;
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            int inputCount = _view._input.Schema.Count;
            if (column.Index < inputCount)
                return _rows.GetGetter<TValue>(_view._input.Schema[column.Index]);
            _view._host.Check(IsColumnActive(column), $"Column '{column.Name}' was not requested when the cursor was made.");
            return _prediction.Getter(column.Index - inputCount) as ValueGetter<TValue>
                ?? throw _view._host.Except($"Column '{column.Name}' holds {column.Type}; it cannot be read as {typeof(TValue).Name}.");
        }

        public override bool MoveNext() => _rows.MoveNext();

        SegmentationPrediction PredictionAt(long position)
        {
            _view._host.Check(position >= 0, "The cursor is before its first row; call MoveNext first.");
            while (_predicted.Count > 0 && _predicted.Peek().Row < position)
                _predicted.Dequeue();
            if (_predicted.Count == 0)
                PredictBatchFrom(position);
            return _predicted.Peek().Prediction;
        }

        /// <summary>Predicts up to InferenceBatchSize consecutive rows of one image size, starting at <paramref name="first"/>.</summary>
        void PredictBatchFrom(long first)
        {
            using var scope = NewDisposeScope();
            var batch = new List<(long Row, Tensor Rgb)>();
            Tensor? carriedRgb = null;
            try
            {
                if (_carried is { } carried && carried.Row == first)
                {
                    carriedRgb = carried.Rgb ?? throw NoImage(first);
                    batch.Add((first, carriedRgb));
                }
                else
                    _carried?.Rgb?.Dispose();
                _carried = null;
                // Rows the caller moved past without reading a prediction are skipped, not predicted.
                while (batch.Count == 0 && _images.Position < first - 1)
                {
                    if (!MoveImages())
                        break;
                }

                while (batch.Count < _view._predictor.Settings.BatchSize && MoveImages())
                {
                    _getImage(ref _image);
                    if (_image is null)
                    {
                        if (batch.Count == 0)
                            throw NoImage(_images.Position);
                        _carried = (_images.Position, null); // fails when its row is read, not before
                        break;
                    }
                    var rgb = ImageTensorConverter.ToTensor(_image).unsqueeze(0);
                    if (batch.Count > 0 && (rgb.shape[2] != batch[0].Rgb.shape[2] || rgb.shape[3] != batch[0].Rgb.shape[3]))
                    {
                        _carried = (_images.Position, rgb.DetachFromDisposeScope());
                        break;
                    }
                    batch.Add((_images.Position, rgb));
                }
                if (batch.Count == 0 || batch[0].Row != first)
                    throw _view._host.Except($"The input data gave a second cursor fewer rows, or other rows, than the first (row {first}). " +
                        "Batched prediction reads the input twice; give Transform a data view that returns the same rows each time it is " +
                        "read (for example cache it with mlContext.Data.Cache).");
                var predictions = _view._predictor.Predict(cat(batch.Select(b => b.Rgb).ToArray()), _wantProbabilities, _view._host.CheckAlive);
                for (int i = 0; i < batch.Count; i++)
                    _predicted.Enqueue((batch[i].Row, predictions[i]));
            }
            finally
            {
                carriedRgb?.Dispose();
            }
        }

        Exception NoImage(long row) => RowPrediction.NoImage(_view._host, _view._imageColumnName, row);

        bool MoveImages() => _images.MoveNext();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _carried?.Rgb?.Dispose();
                _carried = null;
                _images.Dispose();
                _rows.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
