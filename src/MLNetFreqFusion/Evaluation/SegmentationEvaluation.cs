using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNetFreqFusion.Data;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Evaluation;

/// <summary>
/// The work behind <see cref="SemanticSegmentationCatalog.Evaluate"/> and
/// <see cref="SemanticSegmentationTransformer.AnalyzeFeatureConsistency"/>, which check their arguments and schema
/// and call here.
/// </summary>
internal static class SegmentationEvaluation
{
    /// <summary>mmsegmentation's IoU metrics of the predicted masks against the labels over the whole data.</summary>
    public static SemanticSegmentationMetrics Evaluate(IHost host, IDataView data, string labelColumnName, string predictedLabelColumnName,
        int? numberOfClasses, int ignoreIndex, double boundaryDilationRatio)
    {
        SegmentationMetricsAccumulator? accumulator = null;
        long rows = 0;
        foreach (var (_, predicted, label) in SegmentationRows.PredictionsAndLabels(host, data, predictedLabelColumnName, labelColumnName))
        {
            if (accumulator is null)
            {
                int classes = numberOfClasses ?? predicted.ClassNames?.Count
                    ?? throw host.Except("The predicted masks carry no class names, so the number of classes is unknown; pass numberOfClasses.");
                host.CheckUserArg(classes >= 2, nameof(numberOfClasses), "There must be at least 2 classes.");
                accumulator = new SegmentationMetricsAccumulator(classes, ignoreIndex, predicted.ClassNames, boundaryDilationRatio);
            }
            accumulator.Update(predicted.Labels, label.Labels, label.Width, label.Height);
            rows++;
        }
        if (accumulator is null)
            throw host.Except("The data to evaluate has no rows.");
        var metrics = accumulator.Compute();
        // Pixel accuracy is NaN exactly when no label pixel counted: every metric is then NaN, which says nothing.
        if (double.IsNaN(metrics.PixelAccuracy))
            throw host.Except($"Every label pixel of the {rows} row(s) in column '{labelColumnName}' is {ignoreIndex}, the ignore index, so there is " +
                "nothing to measure and every metric would be NaN. Check that the column holds the masks you meant (LoadSegmentationMasks " +
                "options ValueMap, ReduceZeroLabel, IgnoreIndex) and that Evaluate's ignoreIndex is the one the masks use.");
        return metrics;
    }

    /// <summary>
    /// The paper's feature-consistency analysis over the whole data, with <paramref name="decoderFeatures"/> giving an
    /// image's fused decoder features [1, C, h, w] on the CPU.
    /// </summary>
    public static FeatureConsistencyReport AnalyzeFeatureConsistency(IHost host, IDataView data, string imageColumnName, string labelColumnName,
        int numberOfClasses, int ignoreIndex, Func<MLImage, Tensor> decoderFeatures)
    {
        var analyzer = new FeatureConsistencyAnalyzer(numberOfClasses, ignoreIndex);
        var images = new ImageSourceCheck();
        // Class centres need every image before any similarity, so the images pass through the network twice
        // rather than keeping all feature maps in memory.
        foreach (var pass in new Action<Tensor, IReadOnlyList<SegmentationMask>>[] { analyzer.AddToClassCentres, analyzer.AddToSimilarities })
        {
            foreach (var (_, image, label) in SegmentationRows.ImagesAndMasks(host, data, imageColumnName, labelColumnName, images))
            {
                using var scope = NewDisposeScope();
                using var _ = no_grad();
                pass(decoderFeatures(image), new[] { label });
            }
        }
        return analyzer.Compute();
    }
}
