using MLNetFreqFusion.Evaluation;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion;

/// <summary>
/// The FreqFusion paper's feature-consistency analysis: per-class centres of a feature map, then per pixel the cosine
/// similarity to its own class centre (intra-class similarity) and that similarity minus the highest similarity to
/// another class's centre (the margin), averaged over all labelled pixels and over boundary pixels.
/// </summary>
/// <remarks>
/// <para>
/// Class centres are the mean features over the whole analysed set, as in the paper, so the analysis takes two passes
/// over the same data: <see cref="AddToClassCentres"/> for every batch, then <see cref="AddToSimilarities"/> for every
/// batch, then <see cref="Compute"/>. Only per-class sums are kept between calls, so memory does not grow with the set;
/// the price is running the network twice. <see cref="Analyze"/> does both passes over one in-memory batch.
/// </para>
/// <para>
/// Labels are resized to the feature map's size by nearest neighbour (as mmsegmentation resizes labels); pixels whose
/// label is the ignore index are skipped. Boundary pixels are labelled feature-map pixels with a different label among
/// their 8 neighbours (the Boundary IoU band with d = 1, the image border not counting). A zero feature has similarity 0
/// to every centre.
/// </para>
/// </remarks>
public sealed class FeatureConsistencyAnalyzer
{
    private readonly int _ignoreIndex;
    private readonly int _numberOfClasses;
    private int _channels = -1;
    private double[] _centreSums = [];
    private readonly long[] _centreCounts;

    // Set when the similarity pass starts: unit-length centres of the classes seen, and each class's row among them.
    private double[]? _unitCentres;
    private int[] _centreRow = [];
    private int _centreCount;

    private long _pixels, _boundaryPixels;
    private double _intraSum, _marginSum, _boundaryIntraSum, _boundaryMarginSum;

    /// <summary>Creates an analyzer with no data.</summary>
    /// <param name="numberOfClasses">Number of classes; label values are class indices 0 … numberOfClasses − 1 or the ignore index.</param>
    /// <param name="ignoreIndex">Label value of pixels to skip (255 by default); must not be a class index.</param>
    public FeatureConsistencyAnalyzer(int numberOfClasses, int ignoreIndex = 255)
    {
        if (numberOfClasses < 1 || numberOfClasses > ushort.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(numberOfClasses), numberOfClasses,
                $"The number of classes must be between 1 and {ushort.MaxValue}.");
        if (ignoreIndex >= 0 && ignoreIndex < numberOfClasses)
            throw new ArgumentOutOfRangeException(nameof(ignoreIndex), ignoreIndex,
                $"The ignore index {ignoreIndex} is a class index (there are {numberOfClasses} classes); use a value of at least {numberOfClasses}, or −1.");
        _numberOfClasses = numberOfClasses;
        _ignoreIndex = ignoreIndex;
        _centreCounts = new long[numberOfClasses];
    }

    /// <summary>Runs both passes over one batch held in memory.</summary>
    /// <param name="features">Feature maps, shape [N, C, h, w], floating point.</param>
    /// <param name="labels">The N label masks, at any size (resized to h × w by nearest neighbour).</param>
    /// <param name="numberOfClasses">Number of classes.</param>
    /// <param name="ignoreIndex">Label value of pixels to skip.</param>
    /// <returns>The report.</returns>
    public static FeatureConsistencyReport Analyze(Tensor features, IReadOnlyList<SegmentationMask> labels, int numberOfClasses,
        int ignoreIndex = 255)
    {
        var analyzer = new FeatureConsistencyAnalyzer(numberOfClasses, ignoreIndex);
        analyzer.AddToClassCentres(features, labels);
        analyzer.AddToSimilarities(features, labels);
        return analyzer.Compute();
    }

    /// <summary>First pass: adds a batch's labelled pixels to the class centres.</summary>
    /// <param name="features">Feature maps, shape [N, C, h, w], floating point; C must stay the same across batches.</param>
    /// <param name="labels">The N label masks, at any size.</param>
    /// <exception cref="InvalidOperationException">The similarity pass has already started.</exception>
    public void AddToClassCentres(Tensor features, IReadOnlyList<SegmentationMask> labels)
    {
        if (_unitCentres is not null)
            throw new InvalidOperationException(
                "The class centres are fixed once AddToSimilarities has been called; add every batch to the centres first.");
        CheckBatch(features, labels);
        for (int i = 0; i < labels.Count; i++)
        {
            using var scope = NewDisposeScope();
            var (pixels, classes, _) = LabelledPixels(features, labels, i);
            if (pixels is null)
                continue;
            var sums = zeros(_numberOfClasses, _channels, dtype: float64, device: pixels.device)
                .index_add_(0, tensor(classes, device: pixels.device), pixels, 1.0).cpu().data<double>().ToArray();
            for (int k = 0; k < sums.Length; k++)
                _centreSums[k] += sums[k];
            foreach (long c in classes)
                _centreCounts[c]++;
        }
    }

    /// <summary>Second pass: adds a batch's pixels to the similarity means, against the centres of the first pass.</summary>
    /// <param name="features">Feature maps, shape [N, C, h, w], as in the first pass.</param>
    /// <param name="labels">The N label masks, at any size.</param>
    /// <exception cref="InvalidOperationException">No centre was accumulated, or a labelled class has no centre (the
    /// two passes did not see the same data).</exception>
    public void AddToSimilarities(Tensor features, IReadOnlyList<SegmentationMask> labels)
    {
        if (_unitCentres is null)
            FixCentres();
        CheckBatch(features, labels);
        using var batchScope = NewDisposeScope();
        var centres = tensor(_unitCentres!, [_centreCount, _channels], dtype: float64, device: features.device);
        for (int i = 0; i < labels.Count; i++)
        {
            using var scope = NewDisposeScope();
            var (pixels, classes, boundary) = LabelledPixels(features, labels, i);
            if (pixels is null)
                continue;
            var rows = tensor(Array.ConvertAll(classes, c => CentreRow(c, i)), device: pixels.device);
            var similarity = nn.functional.normalize(pixels, p: 2, dim: 1).mm(centres.t());
            var intra = similarity.gather(1, rows.unsqueeze(1)).squeeze(1);
            var onBoundary = tensor(boundary, device: pixels.device);
            _pixels += intra.shape[0];
            _intraSum += intra.sum().item<double>();
            var boundaryIntra = intra.masked_select(onBoundary);
            _boundaryPixels += boundaryIntra.shape[0];
            _boundaryIntraSum += boundaryIntra.sum().item<double>();
            if (_centreCount < 2)
                continue;
            var own = nn.functional.one_hot(rows, _centreCount).to(@bool);
            var margin = intra - similarity.masked_fill(own, double.NegativeInfinity).max(1).values;
            _marginSum += margin.sum().item<double>();
            _boundaryMarginSum += margin.masked_select(onBoundary).sum().item<double>();
        }
    }

    /// <summary>The means of the similarity pass so far.</summary>
    /// <returns>The report; NaN where no pixel (or, for margins, no second class centre) was seen.</returns>
    public FeatureConsistencyReport Compute()
    {
        bool margins = _centreCount >= 2;
        return new FeatureConsistencyReport(_centreCount, _pixels,
            SegmentationMetricMath.Ratio(_intraSum, _pixels), margins ? SegmentationMetricMath.Ratio(_marginSum, _pixels) : double.NaN,
            _boundaryPixels, SegmentationMetricMath.Ratio(_boundaryIntraSum, _boundaryPixels),
            margins ? SegmentationMetricMath.Ratio(_boundaryMarginSum, _boundaryPixels) : double.NaN);
    }

    private void FixCentres()
    {
        if (_channels < 0 || _centreCounts.All(n => n == 0))
            throw new InvalidOperationException(
                "No class centre has been accumulated: call AddToClassCentres with every batch (with labelled pixels) before AddToSimilarities.");
        _centreRow = new int[_numberOfClasses];
        var unit = new List<double>();
        for (int c = 0; c < _numberOfClasses; c++)
        {
            if (_centreCounts[c] == 0)
            {
                _centreRow[c] = -1;
                continue;
            }
            _centreRow[c] = _centreCount++;
            // The mean's length does not matter for a cosine, only the sum's direction does.
            var sum = _centreSums.AsSpan(c * _channels, _channels);
            double norm = 0;
            foreach (double v in sum)
                norm += v * v;
            norm = Math.Max(Math.Sqrt(norm), 1e-12);
            foreach (double v in sum)
                unit.Add(v / norm);
        }
        _unitCentres = unit.ToArray();
    }

    private long CentreRow(long classIndex, int image) =>
        _centreRow[classIndex] >= 0
            ? _centreRow[classIndex]
            : throw new InvalidOperationException(
                $"Image #{image} of the batch labels class {classIndex}, which had no pixel in the centre pass; give both passes the same data.");

    private void CheckBatch(Tensor features, IReadOnlyList<SegmentationMask> labels)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(labels);
        if (features.dim() != 4)
            throw new ArgumentException($"Features must have shape [N, C, h, w]; got [{string.Join(", ", features.shape)}].", nameof(features));
        if (!features.is_floating_point())
            throw new ArgumentException($"Features must be floating point; got {features.dtype}.", nameof(features));
        if (features.shape[0] != labels.Count)
            throw new ArgumentException($"{features.shape[0]} feature maps were given with {labels.Count} label masks; give one mask per map.",
                nameof(labels));
        int channels = checked((int)features.shape[1]);
        if (_channels < 0)
        {
            _channels = channels;
            _centreSums = new double[_numberOfClasses * channels];
        }
        else if (channels != _channels)
            throw new ArgumentException($"Features have {channels} channels but earlier batches had {_channels}; analyse one feature map kind at a time.",
                nameof(features));
    }

    // The labelled pixels of image i at feature scale: features [n, C] (float64), class indices, boundary flags.
    // Null features when the image has no labelled pixel.
    private (Tensor? Pixels, long[] Classes, bool[] Boundary) LabelledPixels(Tensor features, IReadOnlyList<SegmentationMask> labels, int i)
    {
        var mask = labels[i] ?? throw new ArgumentNullException(nameof(labels), $"Label mask #{i} of the batch is null.");
        int height = checked((int)features.shape[2]), width = checked((int)features.shape[3]);
        var resized = NearestMaskResize.Resize(mask.Labels, mask.Width, mask.Height, width, height);
        var band = BoundaryBand.Compute(resized, width, height, d: 1, imageBorderIsBoundary: false);

        var positions = new List<long>();
        var classes = new List<long>();
        var boundary = new List<bool>();
        for (int p = 0; p < resized.Length; p++)
        {
            int l = resized[p];
            if (l == _ignoreIndex)
                continue;
            if (l >= _numberOfClasses)
                throw new ArgumentException(
                    $"Label mask #{i} of the batch holds value {l}, neither a class index in [0, {_numberOfClasses}) nor the ignore index " +
                    $"{_ignoreIndex}. Check the number of classes or the ignore index.", nameof(labels));
            positions.Add(p);
            classes.Add(l);
            boundary.Add(band[p]);
        }
        if (positions.Count == 0)
            return (null, [], []);
        var index = tensor(positions.ToArray(), device: features.device);
        var pixels = features[i].reshape(_channels, (long)height * width).index_select(1, index).t().to(float64);
        return (pixels, classes.ToArray(), boundary.ToArray());
    }
}
