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
    /// <summary>
    /// mmsegmentation's IoU metrics of the predicted masks against the labels over the whole data. The classes are
    /// named, and counted unless <paramref name="numberOfClasses"/> is given, by the class names of the predicted
    /// column (a model's own), else of the label column (<c>LoadSegmentationMasks(..., classNames: ...)</c>), else of
    /// the predicted masks themselves.
    /// </summary>
    public static SemanticSegmentationMetrics Evaluate(IHost host, IDataView data, string labelColumnName, string predictedLabelColumnName,
        int? numberOfClasses, int ignoreIndex, double boundaryDilationRatio)
    {
        var annotated = AnnotatedClassNames(host, data.Schema, labelColumnName, predictedLabelColumnName);
        SegmentationMetricsAccumulator? accumulator = null;
        long rows = 0;
        foreach (var (_, predicted, label) in SegmentationRows.PredictionsAndLabels(host, data, predictedLabelColumnName, labelColumnName))
        {
            if (accumulator is null)
            {
                var (names, source) = annotated ?? (predicted.ClassNames, $"the predicted masks of column '{predictedLabelColumnName}'");
                int classes = numberOfClasses ?? names?.Count
                    ?? throw host.Except($"Neither column '{predictedLabelColumnName}' nor column '{labelColumnName}' carries class names, so the " +
                        "number of classes is unknown; pass numberOfClasses, or load the labels with LoadSegmentationMasks(..., classNames: ...).");
                host.CheckUserArg(classes >= 2, nameof(numberOfClasses), "There must be at least 2 classes.");
                if (names is not null && names.Count != classes)
                    throw host.ExceptUserArg(nameof(numberOfClasses), $"numberOfClasses is {classes}, but {source} carries {names.Count} class names; " +
                        $"pass numberOfClasses: {names.Count}, or leave it null to take the number of classes from the names.");
                accumulator = new SegmentationMetricsAccumulator(classes, ignoreIndex, names, boundaryDilationRatio);
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
    /// The class names the schema's annotations give (<see cref="SegmentationAnnotations.ClassNames"/>), with where they
    /// come from: the predicted column's, as ML.NET's evaluators name classes after the score column's slots, else the
    /// label column's; null when neither has any. Two lists of different lengths describe different classes: an error.
    /// </summary>
    static (IReadOnlyList<string>? Names, string Source)? AnnotatedClassNames(IHost host, DataViewSchema schema, string labelColumnName,
        string predictedLabelColumnName)
    {
        var predicted = schema[predictedLabelColumnName].GetClassNames();
        var label = schema[labelColumnName].GetClassNames();
        if (predicted is not null && label is not null && predicted.Count != label.Count)
            throw host.Except($"The predicted column '{predictedLabelColumnName}' carries {predicted.Count} class names (the model's) but the label " +
                $"column '{labelColumnName}' carries {label.Count}: the model predicts other classes than the labels describe. Evaluate it on " +
                $"labels of its own {predicted.Count} classes (LoadSegmentationMasks with the classNames it was trained with).");
        if (predicted is not null)
            return (predicted, $"the predicted column '{predictedLabelColumnName}'");
        if (label is not null)
            return (label, $"the label column '{labelColumnName}'");
        return null;
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
