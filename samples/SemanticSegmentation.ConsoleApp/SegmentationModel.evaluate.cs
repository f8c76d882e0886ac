using Microsoft.ML;
using MLNetFreqFusion;

namespace SemanticSegmentation.ConsoleApp;

public partial class SegmentationModel
{
    /// <summary>Scores the test pairs with <paramref name="model"/> and computes the IoU metrics.</summary>
    public static SemanticSegmentationMetrics Evaluate(MLContext mlContext, ITransformer model, SampleData data)
    {
        // <snippet:evaluate>
        IDataView testData = BuildInputPipeline(mlContext, data.MaskOptions).Fit(data.Test).Transform(data.Test);
        IDataView scored = model.Transform(testData);            // adds PredictedLabel
        SemanticSegmentationMetrics metrics = mlContext.SemanticSegmentation().Evaluate(scored, labelColumnName: "Label",
            numberOfClasses: data.NumberOfClasses, ignoreIndex: data.MaskOptions.IgnoreIndex);
        Console.WriteLine(metrics);                               // per-class and summary tables, in percent
        // </snippet:evaluate>
        return metrics;
    }
}
