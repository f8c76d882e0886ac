using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetFreqFusion.Tests.MLNet;

/// <summary>
/// Prediction in sliding windows stops within one window when it is cancelled: through the <c>MLContext</c>
/// (<c>CancelExecution</c>) for Transform, a PredictionEngine and Evaluate, and through a token for
/// <see cref="SemanticSegmentationTransformer.Predict"/>. An 8000² image in the default 1024² windows ran for ten
/// minutes without looking.
/// </summary>
[TestClass]
public sealed class SlidingWindowCancellationTests
{
    const int Window = 32, Side = 200;
    // Windows of 32 every 21 pixels (a third overlapping), the last flush with the edge: 9 along each side of 200.
    const int Windows = 81;
    static byte[] _model = null!;

    public sealed class ImageRow
    {
        [AnySizeImageType]
        public MLImage Image { get; set; } = null!;
    }

    public sealed class ImageAndLabelRow
    {
        [AnySizeImageType]
        public MLImage Image { get; set; } = null!;

        public SegmentationMask Label { get; set; } = null!;
    }

    public sealed class Output
    {
        public SegmentationMask PredictedLabel { get; set; } = null!;
    }

    [ClassInitialize]
    public static void TrainTinyModel(TestContext _)
    {
        var ml = new MLContext(seed: 3);
        var options = DigitsSeg.TinyOptions(epochs: 1);
        options.SlidingWindowSize = Window;
        using var model = DigitsSeg.Fit(ml, options, rows: 4);
        using var stream = new MemoryStream();
        ml.Model.Save(model.LastTransformer, inputSchema: null, stream);
        _model = stream.ToArray();
    }

    /// <summary>The model loaded through a new context, so that cancelling one test's context leaves the others alone.</summary>
    static (MLContext Ml, SemanticSegmentationTransformer Model) Load()
    {
        var ml = new MLContext(seed: 3);
        using var stream = new MemoryStream(_model);
        return (ml, (SemanticSegmentationTransformer)ml.Model.Load(stream, out _));
    }

    static MLImage LargeImage(int side = Side)
    {
        var random = new Random(4);
        var pixels = new byte[side * side * 4];
        random.NextBytes(pixels);
        for (int i = 3; i < pixels.Length; i += 4)
            pixels[i] = 255;
        return MLImage.CreateFromPixels(side, side, MLPixelFormat.Bgra32, pixels);
    }

    /// <summary>
    /// Runs <paramref name="action"/> while counting the network's forward calls (one per window), calling
    /// <paramref name="cancel"/> inside the first one: cancellation arrives while the first window runs.
    /// </summary>
    static int CountWindows(SemanticSegmentationTransformer model, Action cancel, Action action)
    {
        int calls = 0;
        var hook = model.Network.register_forward_hook((_, _, output) =>
        {
            if (++calls == 1)
                cancel();
            return output;
        });
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

    [TestMethod]
    public void UncancelledTheImageTakesEveryWindow()
    {
        var (_, model) = Load();
        using var _model = model;
        using var image = LargeImage();
        SegmentationMask mask = null!;

        int windows = CountWindows(model, () => { }, () => mask = model.Predict(image));

        Assert.AreEqual(Windows, windows);
        Assert.AreEqual((Side, Side), (mask.Width, mask.Height));
    }

    [TestMethod]
    public void PredictStopsAfterTheWindowDuringWhichItsTokenIsCancelled()
    {
        var (ml, model) = Load();
        using var _model = model;
        using var image = LargeImage();
        using var cancellation = new CancellationTokenSource();

        int windows = CountWindows(model, cancellation.Cancel,
            () => Assert.Throws<OperationCanceledException>(() => model.Predict(image, cancellation.Token)));

        Assert.AreEqual(1, windows, $"{windows} of {Windows} windows ran");
        // The token belongs to the call: the model and its context still predict.
        Assert.AreEqual(Side, model.Predict(image).Width);
        Assert.AreEqual(Side, ml.Model.CreatePredictionEngine<ImageRow, Output>(model).Predict(new ImageRow { Image = image }).PredictedLabel.Width);
    }

    [TestMethod]
    public void APredictionWhoseTokenIsCancelledBeforeItStartsDoesNotRunTheNetwork()
    {
        var (_, model) = Load();
        using var _model = model;
        using var image = LargeImage();

        int windows = CountWindows(model, () => { },
            () => Assert.Throws<OperationCanceledException>(() => model.Predict(image, new CancellationToken(canceled: true))));

        Assert.AreEqual(0, windows);
    }

    [TestMethod]
    public void CancelExecutionStopsTransformAfterTheCurrentWindow()
    {
        var (ml, model) = Load();
        using var _model = model;
        using var image = LargeImage();
        var scored = model.Transform(ml.Data.LoadFromEnumerable(new[] { new ImageRow { Image = image } }));

        int windows = CountWindows(model, ml.CancelExecution,
            () => Assert.Throws<OperationCanceledException>(() => scored.GetColumn<SegmentationMask>("PredictedLabel").ToArray()));

        Assert.AreEqual(1, windows, $"{windows} of {Windows} windows ran");
    }

    [TestMethod]
    public void CancelExecutionStopsAPredictionEngineAfterTheCurrentWindow()
    {
        var (ml, model) = Load();
        using var _model = model;
        using var image = LargeImage();
        var engine = ml.Model.CreatePredictionEngine<ImageRow, Output>(model);

        int windows = CountWindows(model, ml.CancelExecution,
            () => Assert.Throws<OperationCanceledException>(() => engine.Predict(new ImageRow { Image = image })));

        Assert.AreEqual(1, windows, $"{windows} of {Windows} windows ran");
    }

    [TestMethod]
    public void CancelExecutionStopsEvaluateAfterTheCurrentWindow()
    {
        var (ml, model) = Load();
        using var _model = model;
        using var image = LargeImage();
        var label = new SegmentationMask(Side, Side, new ushort[Side * Side]);
        var data = ml.Data.LoadFromEnumerable(new[] { new ImageAndLabelRow { Image = image, Label = label } });

        int windows = CountWindows(model, ml.CancelExecution,
            () => Assert.Throws<OperationCanceledException>(() => ml.SemanticSegmentation().Evaluate(model.Transform(data), numberOfClasses: 11)));

        Assert.AreEqual(1, windows, $"{windows} of {Windows} windows ran");
    }
}
