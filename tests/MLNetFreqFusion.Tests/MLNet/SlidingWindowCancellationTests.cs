using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.ML;
using Microsoft.ML.Data;
using SemanticSegmentation.WebApi;

namespace MLNetFreqFusion.Tests.MLNet;

/// <summary>
/// Prediction in sliding windows stops within one window when it is cancelled: through the <c>MLContext</c>
/// (<c>CancelExecution</c>) for Transform, a PredictionEngine and Evaluate, and through a token for
/// <see cref="SemanticSegmentationTransformer.Predict"/>, which the web sample passes its request's RequestAborted. An
/// 8000² image in the default 1024² windows ran for ten minutes without looking.
/// </summary>
[TestClass]
public sealed class SlidingWindowCancellationTests
{
    const int Window = 32, Side = 200;
    // Windows of 32 every 21 pixels (a third overlapping), the last flush with the edge: 9 along each side of 200.
    const int Windows = 81;
    static byte[] _model = null!;
    static string _modelPath = null!;

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
        // What the console sample writes: the whole chain, without its input schema.
        _modelPath = Path.Combine(Path.GetTempPath(), $"window-cancel-{Guid.NewGuid():N}.zip");
        ml.Model.Save(model, inputSchema: null, _modelPath);
    }

    [ClassCleanup]
    public static void DeleteModelFile()
    {
        if (_modelPath is not null)
            File.Delete(_modelPath);
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

    [TestMethod]
    public async Task TheWebSampleStopsARequestAfterTheWindowDuringWhichItIsCancelled()
    {
        using var service = new SegmentationService(_modelPath);
        using var image = LargeImage();
        using var cancellation = new CancellationTokenSource();
        long before = service.Predictions;

        int windows = 0;
        var hook = service.Segmenter.Network.register_forward_hook((_, _, output) =>
        {
            if (++windows == 1)
                cancellation.Cancel();
            return output;
        });
        try
        {
            await Assert.ThrowsAsync<OperationCanceledException>(() => service.PredictAsync(image, cancellation.Token));
        }
        finally
        {
            hook.remove();
        }

        Assert.AreEqual(1, windows, $"{windows} of {Windows} windows ran");
        Assert.AreEqual(before, service.Predictions, "a cancelled prediction is not counted");
        Assert.AreEqual(Side, (await service.PredictAsync(image, CancellationToken.None)).Width, "the service goes on serving");
    }

    /// <summary>
    /// Over real HTTP on 127.0.0.1: the client gives up while the first window runs, Kestrel reports the disconnect
    /// (RequestAborted) a moment later, and the prediction stops there instead of running all its windows. How many
    /// windows run in that moment depends on the machine's load (2 and 33 of 81 were seen), so the image has 225.
    /// </summary>
    [TestMethod]
    public async Task AClientThatDisconnectsStopsItsInferenceBetweenWindows()
    {
        const int side = 320, windowsOfTheImage = 15 * 15;
        await using var app = SegmentationApi.Build(["--model", _modelPath, "--urls", "http://127.0.0.1:0"], o => o.MaxPixels = side * side);
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };
        var service = app.Services.GetRequiredService<SegmentationService>();
        byte[] png;
        using (var image = LargeImage(side))
        {
            var path = Path.Combine(Path.GetTempPath(), $"window-cancel-{Guid.NewGuid():N}.png");
            image.Save(path);
            png = File.ReadAllBytes(path);
            File.Delete(path);
        }
        using var cancellation = new CancellationTokenSource();
        int windows = 0;
        var hook = service.Segmenter.Network.register_forward_hook((_, _, output) =>
        {
            if (Interlocked.Increment(ref windows) == 1)
                cancellation.Cancel();
            return output;
        });
        try
        {
            await Assert.ThrowsAsync<OperationCanceledException>(() => http.PostAsync("/segment", Form(png), cancellation.Token));
            // Predictions run one at a time: a one-window image (32 × 32) is predicted after the abandoned one has stopped.
            using var small = MLImage.CreateFromPixels(Window, Window, MLPixelFormat.Bgra32, new byte[Window * Window * 4]);
            var smallPath = Path.Combine(Path.GetTempPath(), $"window-cancel-{Guid.NewGuid():N}.png");
            small.Save(smallPath);
            using var response = await http.PostAsync("/segment", Form(File.ReadAllBytes(smallPath)));
            File.Delete(smallPath);
            Assert.AreEqual(System.Net.HttpStatusCode.OK, response.StatusCode, await response.Content.ReadAsStringAsync());
        }
        finally
        {
            hook.remove();
        }

        int abandoned = windows - 1;
        Assert.IsLessThan(windowsOfTheImage, abandoned, $"the abandoned request ran {abandoned} of {windowsOfTheImage} windows");
        await app.StopAsync();
    }

    static MultipartFormDataContent Form(byte[] png) => new() { { new ByteArrayContent(png), "image", "image.png" } };
}
