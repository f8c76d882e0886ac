using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetFreqFusion;
using SemanticSegmentation.ConsoleApp;

SampleOptions options;
try
{
    options = SampleOptions.Parse(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine(e.Message);
    return 2;
}
if (options.Help)
{
    Console.WriteLine(SampleOptions.Usage);
    return 0;
}

try
{
    Directory.CreateDirectory(options.OutputFolder);
    TorchSharp.torch.set_num_threads(options.Threads);
    var mlContext = new MLContext(seed: options.Seed);

    if (options.PredictImages.Count > 0)
    {
        SegmentationModel.MLNetModelPath = Path.GetFullPath(options.ModelPath!);
        Console.WriteLine($"Predicting with {SegmentationModel.MLNetModelPath}; PNGs go to {Path.GetFullPath(options.OutputFolder)}");
        foreach (var image in options.PredictImages)
            SegmentationModel.WritePredictionPngs(image, options.OutputFolder);
        return 0;
    }

    var data = SampleData.Load(mlContext, options);
    Console.WriteLine($"Data: {data.Description}; {data.NumberOfClasses} classes.");

    if (options.Evaluate || options.Figure)
    {
        // <snippet:load-model>
        ITransformer model = mlContext.Model.Load(options.ModelPath!, out DataViewSchema inputSchema);
        // </snippet:load-model>
        if (options.Evaluate)
            SegmentationModel.Evaluate(mlContext, model, data);
        if (options.Figure)
        {
            string figure = Path.Combine(options.OutputFolder, "figure.png");
            FigureWriter.Write(mlContext, model, data, figure);
            Console.WriteLine($"Wrote {Path.GetFullPath(figure)}");
        }
        return 0;
    }

    string modelPath = Path.Combine(options.OutputFolder, "model.zip");
    Console.WriteLine($"Training {options.Backbone} + {options.Decoder} (decoder channels {options.DecoderChannels}), {options.Epochs} epochs, " +
        $"crop {(options.CropSize is int crop ? $"{crop}×{crop}" : "whole images")}, batch {options.BatchSize}, " +
        $"lr {(options.LearningRate is double lr ? lr.ToString("G3", CultureInfo.InvariantCulture) : "the recipe's")} " +
        $"(head ×{(options.HeadLearningRateMultiplier is double m ? m.ToString("G3", CultureInfo.InvariantCulture) : "the recipe's")}), seed {options.Seed}; " +
        $"{options.Threads} of {Environment.ProcessorCount} CPU threads.");
    var clock = Stopwatch.StartNew();
    var segmenter = SegmentationModel.Train(mlContext, options, data, modelPath);
    Console.WriteLine($"Saved {Path.GetFullPath(modelPath)} ({new FileInfo(modelPath).Length / 1024.0 / 1024.0:F1} MB).");
    // The same network as one ONNX file, for applications that run ONNX Runtime instead of libtorch (docs/deploy-onnx.md).
    string onnxPath = Path.Combine(options.OutputFolder, "model.onnx");
    segmenter.ExportToOnnx(onnxPath);
    Console.WriteLine($"Exported {Path.GetFullPath(onnxPath)} ({new FileInfo(onnxPath).Length / 1024.0 / 1024.0:F1} MB) for ONNX Runtime.");

    Console.WriteLine("Test metrics:");
    SegmentationModel.Evaluate(mlContext, segmenter, data);

    SegmentationModel.MLNetModelPath = Path.GetFullPath(modelPath);
    Console.WriteLine($"Predictions for {options.PredictionsToWrite} test images (index mask, colourised mask, overlay) in {Path.GetFullPath(options.OutputFolder)}:");
    foreach (var image in data.Test.GetColumn<string>("ImagePath").Take(options.PredictionsToWrite))
        SegmentationModel.WritePredictionPngs(image, options.OutputFolder);
    Console.WriteLine($"Done in {clock.Elapsed:mm\\:ss}.");
    return 0;
}
catch (Exception e) when (Cause(e) is ArgumentException or FileNotFoundException or DirectoryNotFoundException or InvalidDataException
    or InvalidOperationException or FormatException)
{
    Console.Error.WriteLine($"{Cause(e).GetType().Name}: {Cause(e).Message}");
    return 1;
}

// ML.NET builds a saved model's parts by reflection and wraps what a part's loader says (a damaged model.zip, a model
// of a newer format) twice: "Error during class instantiation" around "Exception has been thrown by the target of an
// invocation". The message that says what is wrong is the innermost one.
static Exception Cause(Exception e) => e.GetBaseException();
