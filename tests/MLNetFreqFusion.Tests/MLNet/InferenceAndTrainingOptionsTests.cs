using System.IO.Compression;
using System.Buffers.Binary;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetFreqFusion;
using MLNetFreqFusion.Data;
using MLNetFreqFusion.Networks;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.MLNet;

/// <summary>
/// The trainer and transformer options that change what Fit and Transform do: sliding-window and flip inference,
/// the probabilities column, the model format version, early stopping and backbone freezing. Predictions are
/// checked against the same network's logits computed here, outside the predictor.
/// </summary>
[TestClass]
public sealed class InferenceAndTrainingOptionsTests
{
    const int Classes = 11, Width = 84, Height = 64, TestRows = 2;

    /// <summary>A one-step model with these inference settings, and the test rows it scored.</summary>
    static (TransformerChain<SemanticSegmentationTransformer> Model, IDataView Scored, MLContext Ml) Score(Action<SemanticSegmentationTrainer.Options> configure)
    {
        var ml = new MLContext(seed: 1);
        var options = DigitsSeg.TinyOptions(epochs: 1);
        configure(options);
        var model = DigitsSeg.Fit(ml, options, rows: 4);
        return (model, model.Transform(DigitsSeg.Load(ml, "test", TestRows)), ml);
    }

    // The default inference settings and columns (Score included), shared by the tests that need no other option.
    static TransformerChain<SemanticSegmentationTransformer> _plain = null!;
    static IDataView _plainScored = null!;
    static MLContext _plainMl = null!;

    [ClassInitialize]
    public static void FitPlainModel(TestContext _) => (_plain, _plainScored, _plainMl) = Score(_ => { });

    [ClassCleanup]
    public static void DisposePlainModel() => _plain?.Dispose();

    sealed record Scored(MLImage Image, SegmentationMask PredictedLabel, float[] Probabilities);

    /// <summary>
    /// The image, mask and probabilities of every row, read through one cursor; every test scores the TestRows rows.
    /// </summary>
    static Scored[] Read(IDataView scored)
    {
        var columns = new[] { scored.Schema["Image"], scored.Schema["PredictedLabel"], scored.Schema["Score"] };
        var rows = new List<Scored>();
        using var cursor = scored.GetRowCursor(columns);
        var getImage = cursor.GetGetter<MLImage>(columns[0]);
        var getMask = cursor.GetGetter<SegmentationMask>(columns[1]);
        var getProbabilities = cursor.GetGetter<VBuffer<float>>(columns[2]);
        MLImage image = null!;
        SegmentationMask mask = null!;
        VBuffer<float> probabilities = default;
        while (cursor.MoveNext())
        {
            getImage(ref image);
            getMask(ref mask);
            getProbabilities(ref probabilities);
            // The image getter may reuse or dispose its MLImage when the cursor moves on.
            var copy = MLImage.CreateFromPixels(image.Width, image.Height, image.PixelFormat, image.Pixels);
            rows.Add(new Scored(copy, mask, probabilities.DenseValues().ToArray()));
        }
        Assert.AreEqual(TestRows, rows.Count, "rows scored");
        return rows.ToArray();
    }

    /// <summary>Class probabilities (K·H·W floats) of <paramref name="logits"/> computed on the image as a [1,3,H,W] batch.</summary>
    static float[] Softmax(MLImage image, Func<Tensor, Tensor> logits)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = ImageTensorConverter.ToTensor(image).unsqueeze(0);
        return logits(x).softmax(1).contiguous().data<float>().ToArray();
    }

    static double MaxDifference(float[] a, float[] b)
    {
        Assert.AreEqual(a.Length, b.Length);
        double max = 0;
        for (int i = 0; i < a.Length; i++)
            max = Math.Max(max, Math.Abs(a[i] - b[i]));
        return max;
    }

    /// <summary>
    /// Window origins along one side, as the option documents them: windows of <paramref name="window"/> pixels
    /// (the side itself when shorter) that overlap by the given fraction, the last one flush with the far edge.
    /// </summary>
    static int[] WindowStarts(int side, int window, double overlap)
    {
        int w = Math.Min(window, side);
        int stride = (int)Math.Round(window * (1 - overlap));
        int count = (Math.Max(side - w, 0) + stride - 1) / stride + 1;
        return Enumerable.Range(0, count).Select(i => Math.Min(i * stride, side - w)).ToArray();
    }

    [TestMethod]
    public void SlidingWindowsAverageTheLogitsOfOverlappingWindows()
    {
        const int window = 32;
        var (model, scored, _) = Score(o => o.SlidingWindowSize = window);
        using var _model = model;
        var network = model.LastTransformer.Network;
        var rows = Read(scored);
        int[] ys = WindowStarts(Height, window, 1.0 / 3), xs = WindowStarts(Width, window, 1.0 / 3);
        CollectionAssert.AreEqual(new[] { 0, 21, 32 }, ys, "the rule, worked by hand for 64 pixels");
        CollectionAssert.AreEqual(new[] { 0, 21, 42, 52 }, xs, "the rule, worked by hand for 84 pixels");

        for (int row = 0; row < TestRows; row++)
        {
            var (image, mask, probabilities) = rows[row];
            Assert.AreEqual(Width, mask.Width);
            Assert.AreEqual(Height, mask.Height);
            Assert.AreEqual(Width * Height, mask.Labels.Length);
            var expected = Softmax(image, x =>
            {
                var sum = zeros(1, Classes, Height, Width);
                var count = zeros(1, 1, Height, Width);
                foreach (int y in ys)
                foreach (int x0 in xs)
                {
                    var r = TensorIndex.Slice(y, y + window);
                    var c = TensorIndex.Slice(x0, x0 + window);
                    sum[TensorIndex.Colon, TensorIndex.Colon, r, c] += network.call(x[TensorIndex.Colon, TensorIndex.Colon, r, c]);
                    count[TensorIndex.Colon, TensorIndex.Colon, r, c] += 1;
                }
                return sum / count;
            });
            var wholeImage = Softmax(image, x => network.call(x));
            Assert.IsTrue(MaxDifference(expected, wholeImage) > 1e-3, "windows see less context than the whole image, so the two must differ for this test to mean anything");
            double difference = MaxDifference(expected, probabilities);
            Assert.IsTrue(difference < 1e-4, $"row {row}: largest probability difference {difference:G3}");
        }
    }

    [TestMethod]
    public void AWindowAsLargeAsTheImageGivesTheWholeImagePrediction()
    {
        // The longer side is exactly the window: the boundary case still takes the whole-image path.
        var (model, scored, _) = Score(o => o.SlidingWindowSize = Width);
        using var _model = model;
        var network = model.LastTransformer.Network;
        var rows = Read(scored);
        // Transform sends both rows through the network as one batch, and libtorch's convolutions round a batch of two
        // differently from a batch of one (by about 1e-8), so "the same" is to float rounding, far below what
        // windows or padding to the window would change (1e-3 and more).
        for (int row = 0; row < TestRows; row++)
        {
            double difference = MaxDifference(Softmax(rows[row].Image, x => network.call(x)), rows[row].Probabilities);
            Assert.IsTrue(difference < 1e-6, $"row {row}: largest probability difference {difference:G3}");
        }
    }

    [TestMethod]
    public void FlipTestAveragesTheLogitsOfTheImageAndItsMirror()
    {
        var (model, scored, _) = Score(o => o.FlipTest = true);
        using var _model = model;
        var network = model.LastTransformer.Network;
        var rows = Read(scored);
        for (int row = 0; row < TestRows; row++)
        {
            var expected = Softmax(rows[row].Image, x => (network.call(x) + network.call(x.flip(3)).flip(3)) / 2);
            var plain = Softmax(rows[row].Image, x => network.call(x));
            // A one-epoch network's probabilities sit near 1/K, so flipping moves them by a few 1e-4: the check is
            // ten times the tolerance of the comparison, which float32 softmax values near 0.1 meet by far.
            double flipEffect = MaxDifference(expected, plain);
            Assert.IsTrue(flipEffect > 1e-4, $"an untrained network is not mirror-symmetric, so flipping must change the result; largest change {flipEffect:G3}");
            double difference = MaxDifference(expected, rows[row].Probabilities);
            Assert.IsTrue(difference < 1e-5, $"row {row}: largest probability difference {difference:G3}");
        }
    }

    [TestMethod]
    public void ProbabilitiesAreADistributionPerPixelMatchThePredictionAndSurviveSaveAndLoad()
    {
        var (model, ml) = (_plain, _plainMl);
        Assert.AreEqual(NumberDataViewType.Single, ((VectorDataViewType)_plainScored.Schema["Score"].Type).ItemType);
        var rows = Read(_plainScored);
        const int pixels = Width * Height;
        for (int row = 0; row < TestRows; row++)
        {
            var p = rows[row].Probabilities;
            Assert.AreEqual(Classes * pixels, p.Length, "K·H·W");
            for (int i = 0; i < pixels; i++)
            {
                double sum = 0;
                int best = 0;
                for (int k = 0; k < Classes; k++)
                {
                    sum += p[k * pixels + i];
                    if (p[k * pixels + i] > p[best * pixels + i])
                        best = k;
                }
                Assert.AreEqual(1.0, sum, 1e-5, $"row {row}, pixel {i}");
                Assert.AreEqual(best, (int)rows[row].PredictedLabel.Labels[i], $"row {row}, pixel {i}: argmax of the probabilities");
            }
        }

        var path = Path.Combine(Path.GetTempPath(), $"ffseg-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, DigitsSeg.Load(ml, "test").Schema, path);
            var fresh = new MLContext(seed: 2);
            var loaded = fresh.Model.Load(path, out _);
            var reloaded = Read(loaded.Transform(DigitsSeg.Load(fresh, "test", TestRows)));
            Assert.AreEqual(TestRows, reloaded.Length);
            for (int row = 0; row < TestRows; row++)
                CollectionAssert.AreEqual(rows[row].Probabilities, reloaded[row].Probabilities, $"row {row} after Save/Load");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void EitherOutputColumnCanBeReadAlone()
    {
        var rows = Read(_plainScored);
        var masks = _plainScored.GetColumn<SegmentationMask>("PredictedLabel").ToArray();
        var probabilities = _plainScored.GetColumn<float[]>("Score").ToArray();
        for (int row = 0; row < TestRows; row++)
        {
            CollectionAssert.AreEqual(rows[row].PredictedLabel.Labels, masks[row].Labels, $"row {row}");
            CollectionAssert.AreEqual(rows[row].Probabilities, probabilities[row], $"row {row}");
        }
    }

    [TestMethod]
    public void NumberOfClassesIsInferredFromTheTrainingLabelsUnlessGivenAndAMismatchIsAClearError()
    {
        var ml = new MLContext(seed: 1);
        var train = DigitsSeg.Load(ml, "train", 4);
        int largest = DigitsSeg.Inputs(ml).Fit(train).Transform(train).GetColumn<SegmentationMask>("Label")
            .SelectMany(m => m.Labels).Where(v => v != 255).Max(v => (int)v);
        var inferred = DigitsSeg.TinyOptions(epochs: 1);
        inferred.NumberOfClasses = 0;
        using (var model = DigitsSeg.Fit(ml, inferred, rows: 4))
        {
            Assert.AreEqual(largest + 1, model.LastTransformer.NumberOfClasses, "the largest label + 1");
            Assert.AreEqual(largest + 1, ml.SemanticSegmentation().Evaluate(model.Transform(DigitsSeg.Load(ml, "test", 1))).NumberOfClasses);
        }

        var given = DigitsSeg.TinyOptions(epochs: 1);
        given.NumberOfClasses = largest + 3;
        using (var model = DigitsSeg.Fit(ml, given, rows: 4))
            Assert.AreEqual(largest + 3, model.LastTransformer.NumberOfClasses, "an explicit value wins");

        var tooFewNames = DigitsSeg.TinyOptions(epochs: 1);
        tooFewNames.NumberOfClasses = 0;
        tooFewNames.ClassNames = ["background", "one"];
        var e = Assert.Throws<InvalidOperationException>(() => DigitsSeg.Fit(ml, tooFewNames, rows: 4));
        StringAssert.Contains(e.Message, "is not a class (NumberOfClasses is 2)", "two ClassNames make two classes, which the labels exceed");
        StringAssert.Contains(e.Message, "train_00000.png");
    }

    [TestMethod]
    public void TheShortOverloadStartsFromThePretrainedBackboneAndAddsTheScoreColumn()
    {
        var ml = new MLContext(seed: 1);
        using var model = DigitsSeg.Inputs(ml)
            .Append(ml.SemanticSegmentation().Trainers.FreqFusion(numberOfClasses: Classes, maxEpochs: 1, batchSize: 4, cropSize: 64))
            .Fit(DigitsSeg.Load(ml, "train", 4));
        Assert.AreEqual(SegmentationBackbone.ResNet18ImageNet, model.LastTransformer.Backbone);
        var score = model.Transform(DigitsSeg.Load(ml, "test", 1)).Schema.GetColumnOrNull("Score");
        Assert.IsNotNull(score, "ML.NET's name for a trainer's per-class output");
        Assert.AreEqual(NumberDataViewType.Single, ((VectorDataViewType)score.Value.Type).ItemType);
    }

    [TestMethod]
    public void AModelSavedWithoutAScoreColumnAsBeforeTheRenameLoadsWithoutOne()
    {
        // Before the column was named Score it was optional and off by default: such models store no column name,
        // which is what ScoreColumnName = null writes today (same format version).
        var ml = new MLContext(seed: 1);
        var options = DigitsSeg.TinyOptions(epochs: 1);
        options.ScoreColumnName = null;
        using var model = DigitsSeg.Fit(ml, options, rows: 4);
        var path = Path.Combine(Path.GetTempPath(), $"ffseg-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, DigitsSeg.Load(ml, "test").Schema, path);
            var loaded = new MLContext().Model.Load(path, out _);
            var schema = loaded.Transform(DigitsSeg.Load(ml, "test", TestRows)).Schema;
            Assert.IsNotNull(schema.GetColumnOrNull("PredictedLabel"));
            Assert.IsNull(schema.GetColumnOrNull("Score"), "no Score column in a model that was saved without one");
            Assert.IsNotNull(_plainScored.Schema.GetColumnOrNull("Score"), "while a model with the default options has it");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void AModelOfANewerFormatAsksToUpdateThePackage()
    {
        var (model, ml) = (_plain, _plainMl);
        var path = Path.Combine(Path.GetTempPath(), $"ffseg-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, DigitsSeg.Load(ml, "test").Schema, path);
            using (var unchanged = (IDisposable)new MLContext().Model.Load(path, out _)) { }
            var written = RewriteModelVersion(path, version => version + 1);
            Assert.AreEqual(1, written.Length, "one FFSEGMNT entry in the zip");
            var e = Assert.Throws<Exception>(() => new MLContext().Model.Load(path, out _));
            var messages = string.Join(" | ", Chain(e).Select(x => x.Message));
            StringAssert.Contains(messages, "Update the MLNetFreqFusion package", messages);
            StringAssert.Contains(messages, $"0x{written[0] + 1:X8}", messages);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void AFreqFusionConcatModelOfTheFormatBeforeProjectedStagesAsksToRetrain()
    {
        // Format 0x00010003 differs from today's only in what the FreqFusion concat head was, so a model re-labelled
        // 0x00010003 is what the previous package wrote for that decoder.
        var (model, ml) = (_plain, _plainMl);
        Assert.AreEqual(SegmentationDecoder.FreqFusion, model.LastTransformer.Architecture.Decoder);
        var path = Path.Combine(Path.GetTempPath(), $"ffseg-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, DigitsSeg.Load(ml, "test").Schema, path);
            RewriteModelVersion(path, _ => 0x00010003);
            var e = Assert.Throws<Exception>(() => new MLContext().Model.Load(path, out _));
            var messages = string.Join(" | ", Chain(e).Select(x => x.Message));
            StringAssert.Contains(messages, "first FreqFusion concat head", messages);
            StringAssert.Contains(messages, "Train the model again", messages);
        }
        finally
        {
            File.Delete(path);
        }
    }

    static IEnumerable<Exception> Chain(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
            yield return e;
    }

    /// <summary>
    /// Makes every FFSEGMNT entry of an ML.NET model zip claim another format (<paramref name="version"/> of the one it
    /// was written in), as a newer or older package would have written it. ML.NET's ModelHeader (src/Microsoft.ML.Core/Data/ModelHeader.cs): signature "ML\0MODEL"
    /// at 0x00, the 8-character model signature at 0x40, ModelVerWritten at 0x48, ModelVerReadable at 0x4C
    /// (little-endian uint). Readable may not exceed written, so both are set. Returns the versions found.
    /// </summary>
    static uint[] RewriteModelVersion(string zipPath, Func<uint, uint> version)
    {
        using var zip = ZipFile.Open(zipPath, ZipArchiveMode.Update);
        var written = new List<uint>();
        foreach (var entry in zip.Entries.ToArray())
        {
            byte[] bytes;
            using (var stream = entry.Open())
            using (var copy = new MemoryStream())
            {
                stream.CopyTo(copy);
                bytes = copy.ToArray();
            }
            if (bytes.Length < 0x100 || System.Text.Encoding.ASCII.GetString(bytes, 0, 8) != "ML\0MODEL"
                || System.Text.Encoding.ASCII.GetString(bytes, 0x40, 8) != "FFSEGMNT")
                continue;
            uint found = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(0x48));
            written.Add(found);
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(0x48), version(found));
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(0x4C), version(found));
            var name = entry.FullName;
            entry.Delete();
            using (var stream = zip.CreateEntry(name).Open())
                stream.Write(bytes);
        }
        return written.ToArray();
    }

    [TestMethod]
    public void EarlyStoppingStopsAfterPatienceEpochsWithoutABetterValidationMeanIoU()
    {
        // Enough epochs for the head's batch-norm statistics, the only thing that moves, to settle: the validation mIoU
        // may rise while they converge and then stays put or wanders, and either ends the run.
        const int patience = 2, maxEpochs = 40;
        var ml = new MLContext(seed: 1);
        var log = new List<string>();
        ml.Log += (_, e) => { lock (log) log.Add(e.Message); };
        var validations = new List<double>();
        var options = DigitsSeg.TinyOptions(maxEpochs, new SynchronousProgress(r =>
        {
            if (r.ValidationMeanIoU is double v) validations.Add(v);
        }));
        // LearningRate must be positive; this one moves no weight of float magnitude, so training cannot improve the
        // predictions, and frozen batch norms keep the backbone's statistics from moving either.
        options.LearningRate = 1e-30;
        options.FreezeBatchNorm = true;
        options.EarlyStoppingPatience = patience;
        // One image per network call, as validation predicts, so that the kept model can be scored to the last bit.
        options.InferenceBatchSize = 1;
        var val = DigitsSeg.Load(ml, "val", 4);
        options.ValidationSet = DigitsSeg.Inputs(ml).Fit(val).Transform(val);
        using var model = DigitsSeg.Fit(ml, options, rows: 4);

        // The backbone cannot move and the head barely does, but the head's batch-norm statistics still follow the
        // training batches, so the validation mIoU wanders a little; the rule is checked on the values reported.
        var trace = "validation mIoU per epoch: " + string.Join(", ", validations);
        int best = 0, stopAfter = maxEpochs;
        for (int i = 1; i < validations.Count && stopAfter == maxEpochs; i++)
        {
            if (validations[i] > validations[best])
                best = i;
            else if (i - best >= patience)
                stopAfter = i + 1;
        }
        Assert.IsTrue(stopAfter < maxEpochs, "the run must reach a stop for this test to mean anything; " + trace);
        Assert.AreEqual(stopAfter, validations.Count, "training stops after the epoch that completes the patience; " + trace);
        lock (log)
            Assert.IsTrue(log.Any(m => m.Contains($"early stopping after epoch {stopAfter}") && m.Contains($"for {patience} epochs")),
                "the log says why training stopped");
        var kept = ml.SemanticSegmentation().Evaluate(model.Transform(val), labelColumnName: "Label").MeanIoU;
        Assert.AreEqual(validations[best], kept, 1e-12, "the model Fit returns is the best epoch's, not the last; " + trace);
    }

    [TestMethod]
    public void FrozenBackboneEpochsLeaveTheBackboneAsInitialisedWhileTheDecoderTrains()
    {
        var frozen = TrainOneStep(freezeBackboneEpochs: 1);
        var trained = TrainOneStep(freezeBackboneEpochs: 0);
        try
        {
            // One MLContext seed, one initialisation: the networks Fit started from are rebuilt from the seed it drew.
            Assert.AreEqual(frozen.Seed, trained.Seed);
            Assert.AreEqual(frozen.Initial.Backbone.Length + frozen.Initial.Decoder.Length, frozen.Initial.Backbone.Concat(frozen.Initial.Decoder)
                .Zip(trained.Initial.Backbone.Concat(trained.Initial.Decoder)).Count(p => Same(p.First, p.Second)));

            var backbone = frozen.Initial.Backbone;
            Assert.AreEqual(backbone.Length, frozen.Final.Backbone.Zip(backbone).Count(p => Same(p.First, p.Second)),
                "every backbone parameter is unchanged after an epoch with the backbone frozen");
            Assert.AreEqual(0, trained.Final.Backbone.Zip(backbone).Count(p => Same(p.First, p.Second)),
                "without freezing every backbone parameter moves in the step");
            foreach (var run in new[] { frozen, trained })
                Assert.AreEqual(0, run.Final.Decoder.Zip(run.Initial.Decoder).Count(p => Same(p.First, p.Second)),
                    $"FreezeBackboneEpochs {run.FreezeBackboneEpochs}: every decoder parameter moves in the step");
        }
        finally
        {
            foreach (var t in new[] { frozen, trained }.SelectMany(r => new[] { r.Initial, r.Final }).SelectMany(w => w.Backbone.Concat(w.Decoder)))
                t.Dispose();
        }
    }

    static bool Same(Tensor a, Tensor b) => a.eq(b).all().item<bool>();

    sealed record Weights(Tensor[] Backbone, Tensor[] Decoder)
    {
        public static Weights Of(SegmentationNetwork network)
        {
            using var _ = no_grad();
            return new(network.BackboneParameters().Select(p => p.clone()).ToArray(), network.DecoderParameters().Select(p => p.clone()).ToArray());
        }
    }

    sealed record Run(int FreezeBackboneEpochs, long Seed, Weights Initial, Weights Final);

    static Run TrainOneStep(int freezeBackboneEpochs)
    {
        var ml = new MLContext(seed: 4);
        var options = DigitsSeg.TinyOptions(epochs: 1);
        options.FreezeBackboneEpochs = freezeBackboneEpochs;
        Weights final;
        using (var model = DigitsSeg.Fit(ml, options, rows: 4))
            final = Weights.Of(model.LastTransformer.Network);
        // Fit seeds libtorch's generator with a number drawn from the MLContext, then builds the network; doing the
        // same here gives the weights it started from.
        long seed = torch.random.initial_seed();
        torch.random.manual_seed(seed);
        using var initial = SegmentationNetwork.Create(SegmentationModelSettings.FromOptions(options, options.NumberOfClasses).Architecture, options.PretrainedWeightsPath, options.FreezeBatchNorm);
        return new Run(freezeBackboneEpochs, seed, Weights.Of(initial), final);
    }
}
