using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetFreqFusion;
using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Decoders;
using MLNetFreqFusion.Networks;

namespace SemanticSegmentation.ConsoleApp;

/// <summary>
/// Code of the docs/*.md snippets that the sample does not run itself. It is compiled with the sample, and
/// tests/MLNetFreqFusion.Tests/Docs checks that the docs quote it exactly, so the docs cannot drift from the API.
/// </summary>
internal static class DocSnippets
{
    public static ITransformer FirstModel(string root)
    {
        // <snippet:first-model>
        var ml = new MLContext(seed: 1);
        IDataView train = ml.Data.LoadSegmentationPairsFromTextFile(Path.Combine(root, "train.csv"));
        IDataView val = ml.Data.LoadSegmentationPairsFromTextFile(Path.Combine(root, "val.csv"));

        var inputs = ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "ImagePath")
            .Append(ml.Transforms.LoadSegmentationMasks("Label", imageFolder: null, inputColumnName: "MaskPath"));
        // The trainer's defaults (ImageNet-pretrained ResNet-18 + FreqFusion; learning rate, warmup, augmentation, class
        // weights and crop chosen from the run's length and the images) are chosen to train on a CPU.
        var pipeline = inputs.Append(ml.SemanticSegmentation().Trainers.FreqFusion(   // classes: inferred from the labels
            validationSet: inputs.Fit(val).Transform(val)));   // mIoU after every epoch; the best epoch is kept
        ml.Log += (_, e) => { if (e.Source.Contains(nameof(SemanticSegmentationTrainer))) Console.WriteLine(e.Message); };   // progress
        ITransformer model = pipeline.Fit(train);
        // </snippet:first-model>
        return model;
    }

    public static void OptionsOverload(MLContext ml, IDataView validation)
    {
        // <snippet:options-overload>
        var trainer = ml.SemanticSegmentation().Trainers.FreqFusion(new SemanticSegmentationTrainer.Options
        {
            NumberOfClasses = 11,
            ClassNames = new[] { "background", "digit_0", "digit_1", "digit_2", "digit_3", "digit_4", "digit_5", "digit_6", "digit_7", "digit_8", "digit_9" },
            MaxEpochs = 40,                 // the sample's 14 epochs end with validation mIoU still rising
            EarlyStoppingPatience = 5,      // but stop when validation mIoU has not improved for 5 epochs
            ValidationSet = validation,
        });
        // </snippet:options-overload>
    }

    public static void MaskFormats(MLContext ml)
    {
        // <snippet:mask-binary>
        // Masks saved as 0 = background, 255 = object: map 255 to class 1 (otherwise 255 is the ignore index).
        var binary = new MaskDecodeOptions { ValueMap = new Dictionary<ushort, ushort> { [255] = 1 } };
        var loadBinary = ml.Transforms.LoadSegmentationMasks("Label", imageFolder: null, inputColumnName: "MaskPath", options: binary);
        // </snippet:mask-binary>

        // <snippet:mask-colors>
        // CamVid-style colour masks: every colour that occurs must be in the map; "void" goes to the ignore index.
        var colours = new MaskDecodeOptions
        {
            ColorMap = new Dictionary<(byte R, byte G, byte B), ushort>
            {
                [(128, 128, 128)] = 0,   // sky
                [(128, 0, 0)] = 1,       // building
                [(128, 64, 128)] = 2,    // road
                [(0, 0, 0)] = 255,       // void: ignored
            },
        };
        var loadColours = ml.Transforms.LoadSegmentationMasks("Label", imageFolder: null, inputColumnName: "MaskPath", options: colours);
        // </snippet:mask-colors>

        // <snippet:mask-ade20k>
        // ADE20K: 0 is "other" → ignored; classes 1..150 become 0..149. Train with NumberOfClasses = 150.
        var ade = new MaskDecodeOptions { ReduceZeroLabel = true };
        var loadAde = ml.Transforms.LoadSegmentationMasks("Label", imageFolder: null, inputColumnName: "MaskPath", options: ade);
        // </snippet:mask-ade20k>
    }

    public static ITransformer ClassNamesOnTheMasks(MLContext ml, IDataView train, IDataView test)
    {
        // <snippet:mask-class-names>
        // Name the classes once, on the label column, as ML.NET's key columns carry their values.
        string[] classNames = { "background", "digit_0", "digit_1", "digit_2", "digit_3", "digit_4", "digit_5", "digit_6", "digit_7", "digit_8", "digit_9" };
        var inputs = ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "ImagePath")
            .Append(ml.Transforms.LoadSegmentationMasks("Label", imageFolder: null, inputColumnName: "MaskPath", classNames: classNames));
        // No numberOfClasses and no ClassNames: the trainer takes both from the label column,
        ITransformer model = inputs.Append(ml.SemanticSegmentation().Trainers.FreqFusion()).Fit(train);
        IDataView scored = model.Transform(test);
        IReadOnlyList<string>? predicted = scored.Schema["PredictedLabel"].GetClassNames();   // the model's names, on its output
        // and Evaluate names its per-class metrics after them.
        SemanticSegmentationMetrics metrics = ml.SemanticSegmentation().Evaluate(scored);
        // </snippet:mask-class-names>
        return model;
    }

    public static void ReadAndWriteMasks(MLImage image)
    {
        // <snippet:mask-files>
        SegmentationMask mask = SegmentationMask.FromFile("label.png");   // index, palette or 16-bit PNG
        ushort classOfTopLeftPixel = mask.Labels[0];                       // row-major: index = y * Width + x
        long[] pixelsPerClass = mask.CountPixelsPerClass();
        mask.Save("copy.png");                                             // index PNG, reads back exactly
        mask.SaveColorized("color.png");                                   // PASCAL VOC colours
        mask.SaveOverlay(image, "overlay.png", alpha: 0.5f);               // colours over the image
        // </snippet:mask-files>
    }

    public static SemanticSegmentationTrainer.Options AllOptions(IDataView validation, IProgress<SemanticSegmentationProgress> progress)
    {
        // <snippet:all-options>
        var options = new SemanticSegmentationTrainer.Options
        {
            // Columns
            ImageColumnName = "Image", LabelColumnName = "Label", PredictedLabelColumnName = "PredictedLabel",
            ScoreColumnName = "Score",
            // Classes
            NumberOfClasses = 11, IgnoreIndex = 255, ClassNames = null,
            // Network
            Backbone = SegmentationBackbone.ResNet18, Decoder = SegmentationDecoder.FreqFusion,
            DecoderChannels = null, DecoderInputStages = null, CompressRatio = 4, DropoutRatio = 0.1,
            PretrainedWeightsPath = null,
            FreezeBatchNorm = false, FreezeBackboneEpochs = 0,
            // Optimisation: AdamW, poly schedule with linear warmup; null = the recipe's value (Auto: ShortRun
            // under 10 000 steps, MMSegmentation above) and, for the crop, the training images' size up to 512
            Recipe = TrainingRecipe.Auto, CropSize = null, BatchSize = 8, MaxEpochs = 20,
            LearningRate = null, HeadLearningRateMultiplier = null, WeightDecay = 0.01,
            WarmupSteps = null, PolyPower = 1.0,
            // Loss
            ClassWeights = null, DiceLossWeight = 0,
            // Data
            Augmentation = null,
            ValidationSet = validation, EarlyStoppingPatience = null, Progress = progress,
            // Inference
            SlidingWindowSize = 1024, SlidingWindowOverlap = 1.0 / 3, FlipTest = false, InferenceBatchSize = 8,
        };
        // </snippet:all-options>
        return options;
    }

    public static void Augmentation()
    {
        // <snippet:augmentation>
        var augmentation = new AugmentationOptions
        {
            MinScaleRatio = 0.5f, MaxScaleRatio = 2.0f,   // random resize of the image's own size (or of BaseScale)
            BaseScale = (2048, 512),                     // mmseg's ADE20K img_scale; null = the image's size
            CatMaxRatio = 0.75f,                         // redraw crops that one class dominates
            FlipProbability = 0.5f,
            PhotometricDistortion = true,
        };
        // </snippet:augmentation>
    }

    public static void Device()
    {
        // <snippet:gpu>
        var ml = new MLContext(seed: 1) { GpuDeviceId = 0, FallbackToCpu = false };
        // </snippet:gpu>
    }

    public static void ProgressAndCancel(MLContext ml, SemanticSegmentationTrainer.Options options)
    {
        // <snippet:progress>
        var start = DateTime.UtcNow;
        options.Progress = new Progress<SemanticSegmentationProgress>(p =>
        {
            if (p.ValidationMeanIoU is double miou)
                Console.WriteLine($"epoch {p.Epoch}: validation mIoU {miou:P1}");
            else if (DateTime.UtcNow - start > TimeSpan.FromHours(2))
                ml.CancelExecution();                 // Fit throws OperationCanceledException at the next step
        });
        // </snippet:progress>
    }

    public static void Reproducible()
    {
        // <snippet:reproducible>
        // Same seed, same data order, same CPU build → the same losses and metrics (within float rounding).
        var ml = new MLContext(seed: 42);
        TorchSharp.torch.set_num_threads(1);   // optional: removes the last run-to-run differences from parallel sums
        // </snippet:reproducible>
    }

    public static SemanticSegmentationMetrics EvaluateSaved(MLContext ml, IDataView testPairs)
    {
        // <snippet:metrics>
        ITransformer model = ml.Model.Load("model.zip", out _);
        IDataView test = ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "ImagePath")
            .Append(ml.Transforms.LoadSegmentationMasks("Label", imageFolder: null, inputColumnName: "MaskPath"))
            .Fit(testPairs).Transform(testPairs);
        SemanticSegmentationMetrics metrics = ml.SemanticSegmentation().Evaluate(model.Transform(test));
        Console.WriteLine($"mIoU {metrics.MeanIoU:P2}, pixel accuracy {metrics.PixelAccuracy:P2}, boundary IoU {metrics.MeanBoundaryIoU:P2}");
        Console.WriteLine(metrics.PerClassIoU[1]);          // one class
        Console.WriteLine(metrics.GetFormattedConfusionTable());
        // </snippet:metrics>
        return metrics;
    }

    public static MLNetFreqFusion.Networks.SegmentationNetwork PretrainedNetwork()
    {
        // <snippet:pretrained-network>
        var network = SegmentationNetwork.Create(new SegmentationArchitecture
        {
            Backbone = SegmentationBackbone.ResNet18ImageNet,
            Decoder = SegmentationDecoder.FreqFusion,
            NumberOfClasses = 11,
            // PretrainedWeightsPath = "/models/ResNet18.onnx",   // optional: any other location of the same file
        });
        // </snippet:pretrained-network>
        return network;
    }
}
