using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetFreqFusion;

// Train (with the ImageNet weights of the documented weights package), evaluate, save, load and predict through the
// packed library: what a user's first program does.
string root = args[0];
var ml = new MLContext(seed: 1);
var train = ml.Data.TakeRows(ml.Data.LoadFromTextFile<Row>(Path.Combine(root, "train.csv"), separatorChar: ',', hasHeader: true), 4);
var pipeline = ml.Transforms.LoadImages("Image", imageFolder: root, inputColumnName: "ImagePath")
    .Append(ml.Transforms.LoadSegmentationMasks("Label", imageFolder: root, inputColumnName: "MaskPath"))
    .Append(ml.SemanticSegmentation().Trainers.FreqFusion(new SemanticSegmentationTrainer.Options
    {
        NumberOfClasses = 11, Backbone = SegmentationBackbone.ResNet18ImageNet, DecoderChannels = 16, CropSize = 64, BatchSize = 4, MaxEpochs = 1, WarmupSteps = 0,
    }));
using var model = pipeline.Fit(train);
var metrics = ml.SemanticSegmentation().Evaluate(model.Transform(train));
ml.Model.Save(model, train.Schema, "model.zip");
var loaded = new MLContext().Model.Load("model.zip", out _);
var engine = ml.Model.CreatePredictionEngine<ModelInput, ModelOutput>(((TransformerChain<ITransformer>)loaded).Last());
using var image = MLImage.CreateFromFile(Path.Combine(root, "test", "images", "test_00000.png"));
var mask = engine.Predict(new ModelInput { Image = image }).PredictedLabel;
Console.WriteLine($"evaluated {metrics.NumberOfClasses} classes with ResNet18ImageNet; predicted {mask.Width}x{mask.Height}");

public sealed class Row
{
    [LoadColumn(0)] public string ImagePath = "";
    [LoadColumn(1)] public string MaskPath = "";
}

public sealed class ModelInput
{
    [AnySizeImageType]
    public MLImage Image { get; set; } = null!;
}

public sealed class ModelOutput
{
    public SegmentationMask PredictedLabel { get; set; } = null!;
}
