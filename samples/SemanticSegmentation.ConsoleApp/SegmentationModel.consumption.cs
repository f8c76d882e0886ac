using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using MLNetFreqFusion;

namespace SemanticSegmentation.ConsoleApp;

public partial class SegmentationModel
{
    // <snippet:model-input-output>
    /// <summary>The model's input: one image of any size.</summary>
    public class ModelInput
    {
        // ML.NET's own [ImageType] needs a fixed size; the model predicts images of any size, and the mask it
        // returns has the image's size.
        [AnySizeImageType]
        public MLImage Image { get; set; } = null!;
    }

    /// <summary>The model's output: the class of every pixel, at the input image's size.</summary>
    public class ModelOutput
    {
        public SegmentationMask PredictedLabel { get; set; } = null!;
    }
    // </snippet:model-input-output>

    /// <summary>The model file <see cref="Predict"/> loads; set it before the first prediction.</summary>
    public static string MLNetModelPath { get; set; } = Path.GetFullPath(Path.Combine("output", "model.zip"));

    /// <summary>Created on first use: loading the model and building the engine is the slow part of the first prediction.</summary>
    public static readonly Lazy<PredictionEngine<ModelInput, ModelOutput>> PredictEngine = new(CreatePredictEngine, isThreadSafe: true);

    /// <summary>Predicts the mask of one image with the model at <see cref="MLNetModelPath"/>.</summary>
    public static ModelOutput Predict(ModelInput input) => PredictEngine.Value.Predict(input);

    static PredictionEngine<ModelInput, ModelOutput> CreatePredictEngine()
    {
        // <snippet:prediction-engine>
        var mlContext = new MLContext();
        ITransformer model = mlContext.Model.Load(MLNetModelPath, out _);
        var engine = mlContext.Model.CreatePredictionEngine<ModelInput, ModelOutput>(model);
        // </snippet:prediction-engine>
        return engine;
    }

    /// <summary>Writes the index mask, the colourised mask and the overlay of one prediction next to each other.</summary>
    public static void WritePredictionPngs(string imagePath, string outputFolder)
    {
        // <snippet:predict>
        using var image = MLImage.CreateFromFile(imagePath);
        ModelOutput output = Predict(new ModelInput { Image = image });
        string name = Path.GetFileNameWithoutExtension(imagePath);
        output.PredictedLabel.Save(Path.Combine(outputFolder, name + "_mask.png"));               // pixel value = class index
        output.PredictedLabel.SaveColorized(Path.Combine(outputFolder, name + "_color.png"));     // PASCAL VOC colours
        output.PredictedLabel.SaveOverlay(image, Path.Combine(outputFolder, name + "_overlay.png"));
        // </snippet:predict>
        ClassLegend.AddTo(Path.Combine(outputFolder, name + "_color.png"), output.PredictedLabel);
        ClassLegend.AddTo(Path.Combine(outputFolder, name + "_overlay.png"), output.PredictedLabel);
        var counts = output.PredictedLabel.CountPixelsPerClass();
        var names = output.PredictedLabel.ClassNames;
        var found = Enumerable.Range(1, counts.Length - 1).Where(c => counts[c] > 0)
            .Select(c => $"{(names is null ? c.ToString() : names[c])} {counts[c]} px");
        Console.WriteLine($"  {name}: {string.Join(", ", found.DefaultIfEmpty("only background"))}");
    }
}
