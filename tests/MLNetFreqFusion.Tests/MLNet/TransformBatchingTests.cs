using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetFreqFusion;
using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Decoders;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.MLNet;

/// <summary>
/// Transform predicts consecutive rows of one image size in batches, each row once for both output columns, and
/// gives what the row-by-row PredictionEngine gives.
/// </summary>
[TestClass]
public sealed class TransformBatchingTests
{
    const string Probabilities = "Probabilities";
    static MLContext _ml = null!;
    static SemanticSegmentationTransformer _segmenter = null!;
    static ITransformer _inputs = null!;
    static IDataView _mixedSizes = null!;
    static string _folder = null!;
    // Image sizes of the rows of _mixedSizes, in order: batches may only join rows of one size.
    static readonly (int Width, int Height)[] Sizes = { (84, 64), (84, 64), (84, 64), (40, 36), (84, 64), (84, 64), (40, 36), (40, 36) };

    public sealed class ModelInput
    {
        [AnySizeImageType]
        public MLImage Image { get; set; } = null!;
    }

    public sealed class ModelOutput
    {
        public SegmentationMask PredictedLabel { get; set; } = null!;
        public float[] Probabilities { get; set; } = null!;
    }

    public sealed class PathRow
    {
        public string ImagePath { get; set; } = "";
    }

    [ClassInitialize]
    public static void TrainTinyModel(TestContext _)
    {
        _ml = new MLContext(seed: 5);
        var options = new SemanticSegmentationTrainer.Options
        {
            NumberOfClasses = 11, Backbone = SegmentationBackbone.ResNet18, Decoder = SegmentationDecoder.FreqFusion,
            DecoderChannels = 16, CropSize = 32, BatchSize = 4, MaxEpochs = 1, WarmupSteps = 0, LearningRate = 1e-3,
            ProbabilitiesColumnName = Probabilities, InferenceBatchSize = 3,
        };
        var pipeline = DigitsSeg.Inputs(_ml).Append(_ml.SemanticSegmentation().Trainers.FreqFusion(options));
        var model = pipeline.Fit(DigitsSeg.Load(_ml, "train", 4));
        _segmenter = (SemanticSegmentationTransformer)model.Last();
        _inputs = DigitsSeg.Inputs(_ml).Fit(DigitsSeg.Load(_ml, "train", 4));

        // Test images cropped to the sizes above (the crop keeps real content at the new size).
        _folder = Path.Combine(Path.GetTempPath(), $"ffseg-batching-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_folder);
        var rows = new List<PathRow>();
        for (int i = 0; i < Sizes.Length; i++)
        {
            var source = Path.Combine(DigitsSeg.Root, "test", "images", $"test_{i:D5}.png");
            var path = Path.Combine(_folder, $"{i}.png");
            using (var image = MLImage.CreateFromFile(source))
                SaveCrop(image, Sizes[i].Width, Sizes[i].Height, path);
            rows.Add(new PathRow { ImagePath = path });
        }
        _mixedSizes = _ml.Data.LoadFromEnumerable(rows);
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        _segmenter?.Dispose();
        if (_folder is not null && Directory.Exists(_folder))
            Directory.Delete(_folder, recursive: true);
    }

    static void SaveCrop(MLImage image, int width, int height, string path)
    {
        var pixels = image.GetBGRPixels;
        var cropped = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
            pixels.AsSpan(y * image.Width * 3, width * 3).CopyTo(cropped.AsSpan(y * width * 3));
        using var crop = MLImage.CreateFromPixels(width, height, MLPixelFormat.Bgra32, ToBgra(cropped));
        crop.Save(path);
    }

    static byte[] ToBgra(byte[] bgr)
    {
        var bgra = new byte[bgr.Length / 3 * 4];
        for (int i = 0, j = 0; i < bgr.Length; i += 3, j += 4)
        {
            bgra[j] = bgr[i];
            bgra[j + 1] = bgr[i + 1];
            bgra[j + 2] = bgr[i + 2];
            bgra[j + 3] = 255;
        }
        return bgra;
    }

    static IDataView Images() =>
        _ml.Transforms.LoadImages("Image", imageFolder: "", inputColumnName: "ImagePath").Fit(_mixedSizes).Transform(_mixedSizes);

    /// <summary>Counts the network's forward calls while <paramref name="action"/> runs.</summary>
    static int CountForwardCalls(Action action)
    {
        int calls = 0;
        var hook = _segmenter.Network.register_forward_hook((_, _, output) => { calls++; return output; });
        try
        {
            action();
        }
        finally
        {
            hook.remove();
        }
        return calls;
    }

    static (SegmentationMask Mask, float[] Probabilities)[] ReadAll(IDataView scored)
    {
        var result = new List<(SegmentationMask, float[])>();
        using var cursor = scored.GetRowCursor(scored.Schema);
        var getMask = cursor.GetGetter<SegmentationMask>(scored.Schema["PredictedLabel"]);
        var getProbabilities = cursor.GetGetter<VBuffer<float>>(scored.Schema[Probabilities]);
        SegmentationMask mask = null!;
        VBuffer<float> probabilities = default;
        while (cursor.MoveNext())
        {
            getMask(ref mask);
            getProbabilities(ref probabilities);
            result.Add((mask, probabilities.DenseValues().ToArray()));
        }
        return result.ToArray();
    }

    [TestMethod]
    public void TransformRunsTheNetworkOncePerBatchOfOneSizeAndReadsBothColumnsFromIt()
    {
        var scored = _segmenter.Transform(Images());
        (SegmentationMask Mask, float[] Probabilities)[] rows = null!;
        int calls = CountForwardCalls(() => rows = ReadAll(scored));
        // Batch size 3 over sizes A A A B A A B B: [A A A] [B] [A A] [B B].
        Assert.AreEqual(4, calls);
        Assert.AreEqual(Sizes.Length, rows.Length);
        for (int i = 0; i < rows.Length; i++)
        {
            Assert.AreEqual(Sizes[i], (rows[i].Mask.Width, rows[i].Mask.Height), $"row {i}");
            Assert.AreEqual(11L * Sizes[i].Width * Sizes[i].Height, rows[i].Probabilities.Length, $"row {i}");
        }
    }

    [TestMethod]
    public void APipelineEndingInTheModelBatchesToo()
    {
        // A fitted pipeline is a TransformerChain that calls ITransformer.Transform, not the class's own method.
        ITransformer pipeline = _ml.Transforms.LoadImages("Image", imageFolder: "", inputColumnName: "ImagePath").Fit(_mixedSizes).Append(_segmenter);
        int calls = CountForwardCalls(() => pipeline.Transform(_mixedSizes).GetColumn<SegmentationMask>("PredictedLabel").ToArray());
        Assert.AreEqual(4, calls);
    }

    [TestMethod]
    public void BatchedPredictionsEqualThePredictionEngineRowByRow()
    {
        var batched = ReadAll(_segmenter.Transform(Images()));
        var engine = _ml.Model.CreatePredictionEngine<ModelInput, ModelOutput>(_segmenter);
        for (int i = 0; i < Sizes.Length; i++)
        {
            using var image = MLImage.CreateFromFile(Path.Combine(_folder, $"{i}.png"));
            ModelOutput single = null!;
            int calls = CountForwardCalls(() => single = engine.Predict(new ModelInput { Image = image }));
            Assert.AreEqual(1, calls, "the engine reads both columns from one prediction");
            AssertSamePrediction(single.PredictedLabel, single.Probabilities, batched[i].Mask, batched[i].Probabilities, $"row {i}");
        }
    }

    [TestMethod]
    public void TheModelGivesItsArchitectureAndACopyOfItsNetworkThatPredictsTheSame()
    {
        var architecture = _segmenter.Architecture;
        Assert.AreEqual(SegmentationBackbone.ResNet18, architecture.Backbone);
        Assert.AreEqual(SegmentationDecoder.FreqFusion, architecture.Decoder);
        Assert.AreEqual(11, architecture.NumberOfClasses);
        Assert.AreEqual(16, architecture.DecoderChannels);
        var engine = _ml.Model.CreatePredictionEngine<ModelInput, ModelOutput>(_segmenter);
        using var image = MLImage.CreateFromFile(Path.Combine(_folder, "0.png"));
        var predicted = engine.Predict(new ModelInput { Image = image }).PredictedLabel.Labels;
        using var copy = _segmenter.CopyNetwork();
        Assert.AreEqual(16, copy.DecoderChannels);
        Assert.IsFalse(copy.training, "the copy is in evaluation mode");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var labels = copy.call(MLNetFreqFusion.Data.ImageTensorConverter.ToTensor(image).unsqueeze(0)).argmax(1)[0];
        CollectionAssert.AreEqual(predicted, MLNetFreqFusion.Data.ImageTensorConverter.ToMask(labels).Labels,
            "the copy's argmax is the model's prediction");
        // The copy has its own weights: changing them leaves the model alone.
        foreach (var p in copy.parameters())
            p.detach().copy_(randn_like(p));
        CollectionAssert.AreEqual(predicted, engine.Predict(new ModelInput { Image = image }).PredictedLabel.Labels);
    }

    [TestMethod]
    public void RowsMovedPastWithoutReadingAreNotPredicted()
    {
        var scored = _segmenter.Transform(Images());
        var expected = ReadAll(scored);
        int calls = CountForwardCalls(() =>
        {
            using var cursor = scored.GetRowCursor(scored.Schema);
            var getMask = cursor.GetGetter<SegmentationMask>(scored.Schema["PredictedLabel"]);
            SegmentationMask mask = null!;
            for (int i = 0; i < Sizes.Length; i++)
            {
                Assert.IsTrue(cursor.MoveNext());
                if (i is 4 or 7)
                {
                    getMask(ref mask);
                    CollectionAssert.AreEqual(expected[i].Mask.Labels, mask.Labels, $"row {i}");
                }
            }
            Assert.IsFalse(cursor.MoveNext());
        });
        Assert.AreEqual(2, calls, "row 4 starts a batch [A A] (rows 4, 5) and row 7 one of its own");
    }

    [TestMethod]
    public void PassThroughColumnsAndRowCountsAreThoseOfTheInput()
    {
        var input = _inputs.Transform(DigitsSeg.Load(_ml, "test", 5));
        var scored = _segmenter.Transform(input);
        Assert.AreEqual(input.Schema.Count + 2, scored.Schema.Count);
        CollectionAssert.AreEqual(input.GetColumn<string>("MaskPath").ToArray(), scored.GetColumn<string>("MaskPath").ToArray());
        var labels = scored.GetColumn<SegmentationMask>("Label").ToArray();
        var predicted = scored.GetColumn<SegmentationMask>("PredictedLabel").ToArray();
        Assert.AreEqual(5, predicted.Length);
        Assert.IsTrue(labels.Zip(predicted).All(p => p.First.Width == p.Second.Width && p.First.Height == p.Second.Height));
        // Columns that do not depend on the prediction never run the network.
        Assert.AreEqual(0, CountForwardCalls(() => scored.GetColumn<string>("ImagePath").ToArray()));
    }

    [TestMethod]
    public void ConcurrentEnginesAndCursorsOnOneModelGiveTheSequentialPredictions()
    {
        int threads = get_num_threads();
        // Two intra-op threads as in an application; the suite otherwise runs libtorch on one.
        set_num_threads(2);
        try
        {
            // Each path against itself run alone: a batch and a single image may differ by float rounding.
            var expected = ReadAll(_segmenter.Transform(Images()));
            var sequentialEngine = _ml.Model.CreatePredictionEngine<ModelInput, ModelOutput>(_segmenter);
            var expectedSingle = Enumerable.Range(0, Sizes.Length).Select(i =>
            {
                using var image = MLImage.CreateFromFile(Path.Combine(_folder, $"{i}.png"));
                return sequentialEngine.Predict(new ModelInput { Image = image }).PredictedLabel.Labels;
            }).ToArray();
            var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
            Parallel.For(0, 6, new ParallelOptions { MaxDegreeOfParallelism = 6 }, worker =>
            {
                if (worker % 2 == 0)
                {
                    var engine = _ml.Model.CreatePredictionEngine<ModelInput, ModelOutput>(_segmenter);
                    for (int i = 0; i < Sizes.Length; i++)
                    {
                        using var image = MLImage.CreateFromFile(Path.Combine(_folder, $"{i}.png"));
                        if (!engine.Predict(new ModelInput { Image = image }).PredictedLabel.Labels.SequenceEqual(expectedSingle[i]))
                            failures.Add($"engine {worker}, row {i}");
                    }
                }
                else
                {
                    var rows = ReadAll(_segmenter.Transform(Images()));
                    for (int i = 0; i < Sizes.Length; i++)
                        if (!rows[i].Mask.Labels.SequenceEqual(expected[i].Mask.Labels))
                            failures.Add($"cursor {worker}, row {i}");
                }
            });
            Assert.AreEqual(0, failures.Count, string.Join("; ", failures));
        }
        finally
        {
            set_num_threads(threads);
        }
    }

    /// <summary>
    /// A batch runs other kernels than one image, so probabilities agree to float rounding; the masks agree
    /// wherever the two best classes are not within that rounding of each other.
    /// </summary>
    static void AssertSamePrediction(SegmentationMask mask, float[] probabilities, SegmentationMask expectedMask, float[] expectedProbabilities, string what)
    {
        Assert.AreEqual(expectedProbabilities.Length, probabilities.Length, what);
        float worst = expectedProbabilities.Zip(probabilities).Max(p => Math.Abs(p.First - p.Second));
        Assert.IsTrue(worst < 1e-4f, $"{what}: probabilities differ by up to {worst}");
        int pixels = mask.Width * mask.Height, classes = probabilities.Length / pixels;
        for (int p = 0; p < pixels; p++)
        {
            if (mask.Labels[p] == expectedMask.Labels[p])
                continue;
            float a = expectedProbabilities[mask.Labels[p] * pixels + p], b = expectedProbabilities[expectedMask.Labels[p] * pixels + p];
            Assert.IsTrue(Math.Abs(a - b) < 1e-4f, $"{what}: pixel {p} is class {mask.Labels[p]} one way and {expectedMask.Labels[p]} the other");
        }
        Assert.AreEqual(11, classes);
    }
}
