using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using MLNetFreqFusion;
using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Decoders;

namespace MLNetFreqFusion.Tests.MLNet;

/// <summary>
/// The user's path of the issue: Fit → Transform → Evaluate → Save → Load in a new MLContext → PredictionEngine,
/// on a slice of digits-seg. One model is trained for the class and shared by its tests.
/// </summary>
[TestClass]
public sealed class SemanticSegmentationEndToEndTests
{
    static MLContext _ml = null!;
    static ITransformer _model = null!;
    static IDataView _train = null!, _test = null!;
    static readonly List<SemanticSegmentationProgress> Reports = new();
    static readonly List<string> Log = new();
    const int Epochs = 8, TrainRows = 48, Steps = Epochs * TrainRows / 8;

    public sealed class ModelInput
    {
        [ImageType(64, 84)]
        public MLImage Image { get; set; } = null!;
    }

    public sealed class ModelOutput
    {
        public SegmentationMask PredictedLabel { get; set; } = null!;
    }

    internal static SemanticSegmentationTrainer.Options SmallOptions(IDataView? validation, int epochs) => new()
    {
        NumberOfClasses = 2,
        IgnoreIndex = 255,
        ClassNames = new[] { "background", "digit" },
        ClassWeights = new[] { 0.2f, 1f },
        Backbone = SegmentationBackbone.ResNet18ImageNet,
        FreezeBatchNorm = true,
        Decoder = SegmentationDecoder.FreqFusion,
        DecoderChannels = 32,
        CropSize = 64,
        BatchSize = 8,
        MaxEpochs = epochs,
        LearningRate = 1e-3,
        HeadLearningRateMultiplier = 10,
        DiceLossWeight = 0.5,
        WarmupSteps = 0,
        ValidationSet = validation,
        Augmentation = new AugmentationOptions { MinScaleRatio = 1, MaxScaleRatio = 1, PhotometricDistortion = false },
    };

    [ClassInitialize]
    public static void TrainOnce(TestContext _)
    {
        _ml = new MLContext(seed: 1);
        _ml.Log += (_, e) => { lock (Log) Log.Add(e.Message); };
        _train = DigitsSeg.Load(_ml, "train", TrainRows);
        _test = DigitsSeg.Load(_ml, "test");
        var val = DigitsSeg.Inputs(_ml, DigitsSeg.Binary).Fit(DigitsSeg.Load(_ml, "val")).Transform(DigitsSeg.Load(_ml, "val"));
        var options = SmallOptions(val, epochs: Epochs);
        options.Progress = new SynchronousProgress(r => Reports.Add(r));
        _model = DigitsSeg.Inputs(_ml, DigitsSeg.Binary).Append(_ml.SemanticSegmentation().Trainers.FreqFusion(options)).Fit(_train);
    }

    [TestMethod]
    public void ValidationMeanIoURisesClearlyDuringTraining()
    {
        var validations = Reports.Where(r => r.ValidationMeanIoU is not null).Select(r => r.ValidationMeanIoU!.Value).ToArray();
        var trace = "validation mIoU per epoch: " + string.Join(", ", validations.Select(v => v.ToString("F3")));
        Console.WriteLine(trace);
        Assert.AreEqual(Epochs, validations.Length);
        // Where an untrained network starts: everything background, which scores the background IoU over two classes.
        var labels = DigitsSeg.Inputs(_ml, DigitsSeg.Binary).Fit(DigitsSeg.Load(_ml, "val")).Transform(DigitsSeg.Load(_ml, "val"))
            .GetColumn<SegmentationMask>("Label").ToArray();
        var allBackground = new SegmentationMetricsAccumulator(2);
        foreach (var label in labels)
            allBackground.Update(new ushort[label.Labels.Length], label.Labels, label.Width, label.Height);
        double start = allBackground.Compute().MeanIoU;
        Assert.IsTrue(validations.Max() > start + 0.15, $"all-background mIoU {start:F3}; {trace}");
    }

    [TestMethod]
    public void ProgressIsReportedToTheCallbackAndTheLog()
    {
        var steps = Reports.Where(r => r.ValidationMeanIoU is null).ToArray();
        Assert.AreEqual(Steps, steps.Length, "the training rows in batches of 8, every epoch");
        CollectionAssert.AreEqual(Enumerable.Range(1, steps.Length).ToArray(), steps.Select(r => r.Step).ToArray());
        Assert.IsTrue(steps.All(r => r.TotalSteps == Steps && r.Loss > 0 && r.ImagesPerSecond > 0 && r.LearningRate > 0));
        Assert.IsTrue(steps[^1].Loss < steps[0].Loss, "the loss falls");
        lock (Log)
            Assert.IsTrue(Log.Any(m => m.Contains("validation mIoU")), "the validation result goes to the ML.NET log");
    }

    [TestMethod]
    public void TransformEvaluateSaveLoadAndPredictionEngineAgree()
    {
        var scored = _model.Transform(_test);
        var metrics = _ml.SemanticSegmentation().Evaluate(scored, labelColumnName: "Label");
        Assert.AreEqual(2, metrics.NumberOfClasses);
        Assert.IsTrue(metrics.PixelAccuracy is > 0.8 and <= 1, metrics.ToString());
        Assert.IsTrue(metrics.MeanIoU is > 0 and <= 1);
        StringAssert.Contains(metrics.ToString(), "digit");

        var predictions = scored.GetColumn<SegmentationMask>("PredictedLabel").ToArray();
        var labels = scored.GetColumn<SegmentationMask>("Label").ToArray();
        Assert.AreEqual(16, predictions.Length);
        Assert.IsTrue(predictions.Zip(labels).All(p => p.First.Width == p.Second.Width && p.First.Height == p.Second.Height));

        var path = Path.Combine(Path.GetTempPath(), $"ffseg-{Guid.NewGuid():N}.zip");
        try
        {
            _ml.Model.Save(_model, _train.Schema, path);
            var fresh = new MLContext(seed: 7);
            var loaded = fresh.Model.Load(path, out var inputSchema);
            Assert.IsNotNull(inputSchema.GetColumnOrNull("ImagePath"));
            var reloaded = loaded.Transform(DigitsSeg.Load(fresh, "test")).GetColumn<SegmentationMask>("PredictedLabel").ToArray();
            for (int i = 0; i < predictions.Length; i++)
                CollectionAssert.AreEqual(predictions[i].Labels, reloaded[i].Labels, $"row {i} after Save/Load");

            // PredictionEngine on the image alone: the trained model minus the path-reading transforms.
            var segmenter = ((TransformerChain<ITransformer>)loaded).Last();
            var engine = fresh.Model.CreatePredictionEngine<ModelInput, ModelOutput>(segmenter);
            var image = MLImage.CreateFromFile(Path.Combine(DigitsSeg.Root, "test", "images", "test_00000.png"));
            var output = engine.Predict(new ModelInput { Image = image });
            CollectionAssert.AreEqual(predictions[0].Labels, output.PredictedLabel.Labels);
            CollectionAssert.AreEqual(new[] { "background", "digit" }, output.PredictedLabel.ClassNames!.ToArray());
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void FeatureConsistencyOfTheTrainedModelIsReportedOnItsDecoderFeatures()
    {
        var segmenter = (SemanticSegmentationTransformer)((IEnumerable<ITransformer>)_model).Last();
        var labelled = DigitsSeg.Inputs(_ml, DigitsSeg.Binary).Fit(_test).Transform(_test);
        var report = segmenter.AnalyzeFeatureConsistency(labelled);
        Assert.AreEqual(2, report.ClassCount);
        Assert.IsTrue(report.PixelCount > 16 * 16 * 21 / 2, $"pixels at 1/4 scale: {report.PixelCount}");
        Assert.IsTrue(report.BoundaryPixelCount > 0 && report.BoundaryPixelCount < report.PixelCount);
        // A trained two-class model separates its classes: pixels are closer to their own centre than to the other.
        Assert.IsTrue(report.MeanIntraClassSimilarity is > 0 and <= 1, report.ToString());
        Assert.IsTrue(report.MeanSimilarityMargin > 0, report.ToString());
    }
}
