using System.Globalization;

namespace MLNetFreqFusion;

/// <summary>
/// Result of <see cref="FeatureConsistencyAnalyzer"/>: how close each pixel's feature is to its own class centre and how
/// far ahead of the nearest other class centre, averaged over pixels — the feature-consistency diagnostic of the
/// FreqFusion paper (Chen et al., TPAMI 2024), which shows FreqFusion raising both.
/// </summary>
/// <remarks>Similarities are cosine similarities in [−1, 1]; margins lie in [−2, 2]. Higher is more consistent.</remarks>
public sealed class FeatureConsistencyReport
{
    internal FeatureConsistencyReport(int classCount, long pixelCount, double meanIntra, double meanMargin,
        long boundaryPixelCount, double boundaryMeanIntra, double boundaryMeanMargin)
    {
        ClassCount = classCount;
        PixelCount = pixelCount;
        MeanIntraClassSimilarity = meanIntra;
        MeanSimilarityMargin = meanMargin;
        BoundaryPixelCount = boundaryPixelCount;
        BoundaryMeanIntraClassSimilarity = boundaryMeanIntra;
        BoundaryMeanSimilarityMargin = boundaryMeanMargin;
    }

    /// <summary>Number of classes that have a centre (at least one labelled pixel in the centre pass).</summary>
    public int ClassCount { get; }

    /// <summary>Number of labelled (not ignored) feature-map pixels the means are taken over.</summary>
    public long PixelCount { get; }

    /// <summary>Mean over pixels of the cosine similarity between a pixel's feature and its class centre. NaN without pixels.</summary>
    public double MeanIntraClassSimilarity { get; }

    /// <summary>
    /// Mean over pixels of the intra-class similarity minus the highest similarity to another class's centre. NaN without
    /// pixels or with fewer than two class centres.
    /// </summary>
    public double MeanSimilarityMargin { get; }

    /// <summary>Number of boundary pixels: labelled feature-map pixels with a differently labelled pixel among their 8 neighbours
    /// (the image border does not count as a boundary here).</summary>
    public long BoundaryPixelCount { get; }

    /// <summary><see cref="MeanIntraClassSimilarity"/> restricted to boundary pixels. NaN without boundary pixels.</summary>
    public double BoundaryMeanIntraClassSimilarity { get; }

    /// <summary><see cref="MeanSimilarityMargin"/> restricted to boundary pixels. NaN without boundary pixels.</summary>
    public double BoundaryMeanSimilarityMargin { get; }

    /// <summary>The values on two lines, similarities with four decimals.</summary>
    /// <returns>A short readable summary.</returns>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture,
            $"all pixels ({PixelCount}, {ClassCount} classes): intra-class similarity {MeanIntraClassSimilarity:F4}, margin {MeanSimilarityMargin:F4}") +
        Environment.NewLine +
        string.Create(CultureInfo.InvariantCulture,
            $"boundary pixels ({BoundaryPixelCount}): intra-class similarity {BoundaryMeanIntraClassSimilarity:F4}, margin {BoundaryMeanSimilarityMargin:F4}");
}
