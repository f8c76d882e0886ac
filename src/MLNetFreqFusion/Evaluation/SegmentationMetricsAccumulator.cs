using System.Globalization;
using MLNetFreqFusion.Evaluation;

namespace MLNetFreqFusion;

/// <summary>
/// Accumulates, image by image, the areas behind <see cref="SemanticSegmentationMetrics"/>: the confusion matrix, the
/// label area of every class and the Boundary IoU band intersections and unions. Not thread-safe: one accumulator per
/// thread (its scratch buffers are reused between images so that an update allocates nothing once warmed up).
/// </summary>
/// <remarks>
/// Masks are row-major (index = y × width + x) class indices stored as <see cref="ushort"/>, which covers 8- and 16-bit
/// index masks; predictions use the same type. A label equal to the ignore index removes its pixel from every count,
/// including the prediction at that pixel. A predicted value outside [0, number of classes) counts as a prediction of
/// no class. A label value that is neither a class nor the ignore index is an error.
/// </remarks>
public sealed class SegmentationMetricsAccumulator
{
    // Never a class: the constructor limits the class count to ushort.MaxValue, so class indices stop below it.
    private const ushort NoClass = ushort.MaxValue;

    private readonly long[] _confusion;
    private readonly long[] _labelArea;
    private readonly long[] _boundaryIntersection;
    private readonly long[] _boundaryUnion;
    private readonly string[] _classNames;

    private ushort[] _predictionKeys = [];
    private bool[] _labelBand = [];
    private bool[] _predictionBand = [];
    private int[] _columnRunStart = [];
    private bool[] _rowUniform = [];

    /// <summary>Creates an empty accumulator.</summary>
    /// <param name="numberOfClasses">Number of classes C; class indices are 0 … C − 1. Between 1 and 65535.</param>
    /// <param name="ignoreIndex">Label value whose pixels are left out of every count (mmsegmentation's default 255).
    /// Must not be a class index; any value outside [0, 65535], such as −1, means no pixel is ignored.</param>
    /// <param name="classNames">Names of the C classes, for <see cref="SemanticSegmentationMetrics.ClassNames"/> and the
    /// printed tables; null names them by index.</param>
    /// <param name="boundaryDilationRatio">Boundary IoU band width as a fraction of the image diagonal: per image,
    /// d = max(1, round(ratio × diagonal)) pixels. Cheng et al. use 0.02.</param>
    public SegmentationMetricsAccumulator(int numberOfClasses, int ignoreIndex = 255, IReadOnlyList<string>? classNames = null,
        double boundaryDilationRatio = 0.02)
    {
        if (numberOfClasses < 1 || numberOfClasses > ushort.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(numberOfClasses), numberOfClasses,
                $"The number of classes must be between 1 and {ushort.MaxValue} (masks hold 16-bit class indices).");
        if (ignoreIndex >= 0 && ignoreIndex < numberOfClasses)
            throw new ArgumentOutOfRangeException(nameof(ignoreIndex), ignoreIndex,
                $"The ignore index {ignoreIndex} is a class index (there are {numberOfClasses} classes). Use a value of at least " +
                $"{numberOfClasses}, such as 255, or −1 to ignore nothing.");
        if (classNames is not null && classNames.Count != numberOfClasses)
            throw new ArgumentException($"{classNames.Count} class names were given for {numberOfClasses} classes; give one name per class.",
                nameof(classNames));
        if (!(boundaryDilationRatio >= 0) || double.IsInfinity(boundaryDilationRatio))
            throw new ArgumentOutOfRangeException(nameof(boundaryDilationRatio), boundaryDilationRatio,
                "The boundary dilation ratio must be a finite fraction of the image diagonal, at least 0 (0.02 in Boundary IoU).");

        NumberOfClasses = numberOfClasses;
        IgnoreIndex = ignoreIndex;
        BoundaryDilationRatio = boundaryDilationRatio;
        _classNames = classNames?.ToArray()
            ?? Enumerable.Range(0, numberOfClasses).Select(c => c.ToString(CultureInfo.InvariantCulture)).ToArray();
        _confusion = new long[numberOfClasses * numberOfClasses];
        _labelArea = new long[numberOfClasses];
        _boundaryIntersection = new long[numberOfClasses];
        _boundaryUnion = new long[numberOfClasses];
    }

    /// <summary>Number of classes.</summary>
    public int NumberOfClasses { get; }

    /// <summary>Label value whose pixels are left out.</summary>
    public int IgnoreIndex { get; }

    /// <summary>Boundary IoU band width as a fraction of the image diagonal.</summary>
    public double BoundaryDilationRatio { get; }

    /// <summary>Number of images accumulated so far.</summary>
    public long ImageCount { get; private set; }

    /// <summary>Adds one image's prediction and label.</summary>
    /// <param name="predicted">The predicted mask.</param>
    /// <param name="label">The label mask, of the same size.</param>
    public void Update(SegmentationMask predicted, SegmentationMask label)
    {
        ArgumentNullException.ThrowIfNull(predicted);
        ArgumentNullException.ThrowIfNull(label);
        if (predicted.Width != label.Width || predicted.Height != label.Height)
            throw new ArgumentException(
                $"Image #{ImageCount}: the prediction is {predicted.Width}×{predicted.Height} but the label is {label.Width}×{label.Height}; " +
                "resize the prediction to the label's size before evaluating.", nameof(predicted));
        Update(predicted.Labels, label.Labels, label.Width, label.Height);
    }

    /// <summary>Adds one image's prediction and label.</summary>
    /// <param name="predicted">Predicted class index of every pixel, row-major, width × height values.</param>
    /// <param name="label">Label class index (or the ignore index) of every pixel, row-major, width × height values.</param>
    /// <param name="width">Image width in pixels.</param>
    /// <param name="height">Image height in pixels.</param>
    /// <exception cref="ArgumentException">A length does not match width × height, or a label is neither a class nor the
    /// ignore index; the accumulator is unchanged.</exception>
    public void Update(ReadOnlySpan<ushort> predicted, ReadOnlySpan<ushort> label, int width, int height)
    {
        if (width <= 0 || height <= 0)
            throw new ArgumentOutOfRangeException(nameof(width), $"Image #{ImageCount}: the size must be positive; got {width}×{height}.");
        long pixels = (long)width * height;
        if (pixels > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(width), $"Image #{ImageCount}: {width}×{height} is too large for one mask.");
        if (label.Length != pixels)
            throw new ArgumentException($"Image #{ImageCount}: a {width}×{height} label needs {pixels} values; got {label.Length}.", nameof(label));
        if (predicted.Length != pixels)
            throw new ArgumentException($"Image #{ImageCount}: a {width}×{height} prediction needs {pixels} values; got {predicted.Length}.",
                nameof(predicted));

        int n = (int)pixels;
        int classes = NumberOfClasses;
        EnsureScratch(n, width);
        var predictionKeys = _predictionKeys.AsSpan(0, n);

        // Validate before counting so that a bad label leaves the accumulator unchanged. Ignored pixels and
        // out-of-range predictions get a key that is no class, so no class's prediction mask holds them.
        for (int i = 0; i < n; i++)
        {
            int l = label[i];
            if (l == IgnoreIndex)
            {
                predictionKeys[i] = NoClass;
                continue;
            }
            if (l >= classes)
                throw new ArgumentException(
                    $"Image #{ImageCount}: label value {l} at pixel (x={i % width}, y={i / width}) is neither a class index in " +
                    $"[0, {classes}) nor the ignore index {IgnoreIndex}. Check the number of classes, the ignore index, or how the mask " +
                    "file encodes classes.", nameof(label));
            int p = predicted[i];
            predictionKeys[i] = p < classes ? (ushort)p : NoClass;
        }

        int d = BoundaryBand.DilationFor(width, height, BoundaryDilationRatio);
        var labelBand = _labelBand.AsSpan(0, n);
        var predictionBand = _predictionBand.AsSpan(0, n);
        // A valid label is a class or the ignore index, never a class when ignored, so labels serve as their own keys.
        BoundaryBand.Compute(label, width, height, d, imageBorderIsBoundary: true, labelBand, _columnRunStart, _rowUniform);
        BoundaryBand.Compute(predictionKeys, width, height, d, imageBorderIsBoundary: true, predictionBand, _columnRunStart, _rowUniform);

        for (int i = 0; i < n; i++)
        {
            int l = label[i];
            if (l == IgnoreIndex)
                continue;
            _labelArea[l]++;
            bool inLabelBand = labelBand[i];
            if (inLabelBand)
                _boundaryUnion[l]++;
            int p = predictionKeys[i];
            if (p == NoClass)
                continue;
            _confusion[l * classes + p]++;
            if (!predictionBand[i])
                continue;
            if (p != l)
                _boundaryUnion[p]++;
            else if (inLabelBand)
                _boundaryIntersection[l]++;
            else
                _boundaryUnion[l]++;
        }
        ImageCount++;
    }

    /// <summary>The metrics of everything accumulated so far; the accumulator can keep accumulating afterwards.</summary>
    /// <returns>The metrics.</returns>
    public SemanticSegmentationMetrics Compute() =>
        new(_confusion, _labelArea, _boundaryIntersection, _boundaryUnion, _classNames);

    private void EnsureScratch(int pixels, int width)
    {
        if (_predictionKeys.Length < pixels)
        {
            _predictionKeys = new ushort[pixels];
            _labelBand = new bool[pixels];
            _predictionBand = new bool[pixels];
        }
        if (_columnRunStart.Length < width)
        {
            _columnRunStart = new int[width];
            _rowUniform = new bool[width];
        }
    }
}
