using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Tests.MLNet;
using SemanticSegmentation.WebApi;

namespace MLNetFreqFusion.Tests.Samples;

/// <summary>
/// samples/SemanticSegmentation.WebApi served by Kestrel on 127.0.0.1 (a free port) with a tiny model trained once,
/// called with real HTTP requests.
/// </summary>
[TestClass]
public sealed class WebApiTests
{
    const long UploadLimit = 64 * 1024;
    const long PixelLimit = 200 * 200;

    static string _modelPath = null!;
    static string _schemalessModelPath = null!;
    static WebApplication _app = null!;
    static HttpClient _http = null!;
    static SegmentationMask _expected = null!;
    static string _imagePath = null!;

    [ClassInitialize]
    public static async Task StartService(TestContext _)
    {
        var ml = new MLContext(seed: 1);
        var train = DigitsSeg.Load(ml, "train", take: 8);
        using var model = DigitsSeg.Inputs(ml).Append(ml.SemanticSegmentation().Trainers.FreqFusion(TinyOptions())).Fit(train);
        _modelPath = Path.Combine(Path.GetTempPath(), $"webapi-{Guid.NewGuid():N}.zip");
        ml.Model.Save(model, train.Schema, _modelPath);
        // What the console sample and the docs write: the chain without its input schema.
        _schemalessModelPath = Path.Combine(Path.GetTempPath(), $"webapi-{Guid.NewGuid():N}.zip");
        ml.Model.Save(model, inputSchema: null, _schemalessModelPath);

        // The reference prediction comes from the trained pipeline itself, not from the service.
        _imagePath = Path.Combine(DigitsSeg.Root, "test", "images", "test_00000.png");
        _expected = Predicted(ml, model);

        _app = SegmentationApi.Build(["--model", _modelPath, "--urls", "http://127.0.0.1:0"], o =>
        {
            o.MaxUploadBytes = UploadLimit;
            o.MaxPixels = PixelLimit;
            o.MaxConcurrentRequests = 8; // room for the six concurrent requests below; the bound has its own test
        });
        await _app.StartAsync();
        _http = new HttpClient { BaseAddress = new Uri(_app.Urls.Single()) };
    }

    // The service is under test, not the training: a tiny network, one epoch.
    static SemanticSegmentationTrainer.Options TinyOptions(int slidingWindowSize = SemanticSegmentationTrainer.Defaults.SlidingWindowSize) => new()
    {
        NumberOfClasses = 11,
        IgnoreIndex = 255,
        ClassNames = DigitsSeg.ClassNames,
        Backbone = SegmentationBackbone.ResNet18,
        Decoder = SegmentationDecoder.FreqFusion,
        DecoderChannels = 16,
        CropSize = 64,
        BatchSize = 8,
        MaxEpochs = 1,
        WarmupSteps = 0,
        Augmentation = new AugmentationOptions { MinScaleRatio = 1, MaxScaleRatio = 1, PhotometricDistortion = false },
        SlidingWindowSize = slidingWindowSize,
    };

    static SegmentationMask Predicted(MLContext ml, ITransformer model) =>
        model.Transform(ml.Data.TakeRows(DigitsSeg.Load(ml, "test"), 1)).GetColumn<SegmentationMask>("PredictedLabel").Single();

    [ClassCleanup]
    public static async Task StopService()
    {
        _http?.Dispose();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        if (_modelPath is not null)
            File.Delete(_modelPath);
        if (_schemalessModelPath is not null)
            File.Delete(_schemalessModelPath);
    }

    [TestMethod]
    public async Task HealthDescribesTheLoadedModel()
    {
        Assert.IsTrue(new Uri(_app.Urls.Single()).Port > 0);
        using var response = await _http.GetAsync("/health");
        Assert.AreEqual(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.AreEqual("ok", json.RootElement.GetProperty("status").GetString());
        Assert.AreEqual("FreqFusion", json.RootElement.GetProperty("decoder").GetString());
        Assert.AreEqual(Path.GetFullPath(_modelPath), json.RootElement.GetProperty("model").GetString());
        CollectionAssert.AreEqual(DigitsSeg.ClassNames, json.RootElement.GetProperty("classes").EnumerateArray().Select(e => e.GetString()).ToArray());
    }

    [TestMethod]
    public async Task MaskPngHasTheImageSizeAndThePipelinesPrediction()
    {
        foreach (var request in new[] { "/segment", "/segment?format=mask" })
        {
            using var response = await _http.PostAsync(request, ImageForm(File.ReadAllBytes(_imagePath), "digit.png"));
            Assert.AreEqual(HttpStatusCode.OK, response.StatusCode, await response.Content.ReadAsStringAsync());
            Assert.AreEqual("image/png", response.Content.Headers.ContentType?.MediaType);
            var mask = await ReadMaskAsync(response);
            Assert.AreEqual(84, mask.Width);
            Assert.AreEqual(64, mask.Height);
            CollectionAssert.AreEqual(_expected.Labels, mask.Labels, request);
        }
    }

    [TestMethod]
    public async Task OverlayIsAnRgbPngOfTheImageSizeThatDiffersFromTheImage()
    {
        using var response = await _http.PostAsync("/segment?format=overlay", ImageForm(File.ReadAllBytes(_imagePath), "digit.png"));
        Assert.AreEqual(HttpStatusCode.OK, response.StatusCode, await response.Content.ReadAsStringAsync());
        Assert.AreEqual("image/png", response.Content.Headers.ContentType?.MediaType);
        using var overlay = MLImage.CreateFromStream(await response.Content.ReadAsStreamAsync());
        using var input = MLImage.CreateFromFile(_imagePath);
        Assert.AreEqual((84, 64), (overlay.Width, overlay.Height));
        Assert.IsFalse(overlay.Pixels.SequenceEqual(input.Pixels), "the class colours are blended over the image");
    }

    [TestMethod]
    public async Task JsonCountsEveryPixelOnceByQueryAndByAcceptHeader()
    {
        using var byAccept = new HttpRequestMessage(HttpMethod.Post, "/segment") { Content = ImageForm(File.ReadAllBytes(_imagePath), "digit.png") };
        byAccept.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        foreach (var request in new[] { new HttpRequestMessage(HttpMethod.Post, "/segment?format=json") { Content = ImageForm(File.ReadAllBytes(_imagePath), "digit.png") }, byAccept })
        {
            using var response = await _http.SendAsync(request);
            Assert.AreEqual(HttpStatusCode.OK, response.StatusCode, await response.Content.ReadAsStringAsync());
            Assert.AreEqual("application/json", response.Content.Headers.ContentType?.MediaType);
            using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            var root = json.RootElement;
            Assert.AreEqual(84, root.GetProperty("width").GetInt32());
            Assert.AreEqual(64, root.GetProperty("height").GetInt32());
            var classes = root.GetProperty("classes").EnumerateArray().ToArray();
            Assert.AreEqual(11, classes.Length);
            Assert.AreEqual(84L * 64, classes.Sum(c => c.GetProperty("pixels").GetInt64()));
            var expected = _expected.CountPixelsPerClass();
            for (int i = 0; i < classes.Length; i++)
            {
                Assert.AreEqual(i, classes[i].GetProperty("index").GetInt32());
                Assert.AreEqual(DigitsSeg.ClassNames[i], classes[i].GetProperty("name").GetString());
                Assert.AreEqual(i < expected.Length ? expected[i] : 0, classes[i].GetProperty("pixels").GetInt64(), DigitsSeg.ClassNames[i]);
            }
        }
    }

    [TestMethod]
    public async Task ConcurrentRequestsAllGetTheSamePrediction()
    {
        var bytes = File.ReadAllBytes(_imagePath);
        var masks = await Task.WhenAll(Enumerable.Range(0, 6).Select(async _ =>
        {
            using var response = await _http.PostAsync("/segment", ImageForm(bytes, "digit.png"));
            Assert.AreEqual(HttpStatusCode.OK, response.StatusCode);
            return await ReadMaskAsync(response);
        }));
        foreach (var mask in masks)
            CollectionAssert.AreEqual(_expected.Labels, mask.Labels);
    }

    /// <summary>Several PredictionEngines predicting at once over one model crashed natively; the service serialises them.</summary>
    [TestMethod]
    public void ParallelPredictionsThroughTheServiceAgree()
    {
        var service = _app.Services.GetRequiredService<SegmentationService>();
        for (int round = 0; round < 3; round++)
            Parallel.For(0, 6, new ParallelOptions { MaxDegreeOfParallelism = 6 }, _ =>
            {
                using var image = MLImage.CreateFromFile(_imagePath);
                CollectionAssert.AreEqual(_expected.Labels, service.Predict(image).Labels);
            });
    }

    [TestMethod]
    public async Task NoFileGets400()
    {
        using var other = new MultipartFormDataContent { { new ByteArrayContent(File.ReadAllBytes(_imagePath)), "picture", "digit.png" } };
        await AssertBadRequestAsync(await _http.PostAsync("/segment", other), "No file field named 'image'", "file 'picture'");
        await AssertBadRequestAsync(await _http.PostAsync("/segment", new ByteArrayContent(File.ReadAllBytes(_imagePath))), "multipart/form-data");
    }

    [TestMethod]
    public async Task EmptyFileGets400()
        => await AssertBadRequestAsync(await _http.PostAsync("/segment", ImageForm([], "empty.png")), "'empty.png' is empty");

    [TestMethod]
    public async Task NotAnImageGets400()
    {
        await AssertBadRequestAsync(await _http.PostAsync("/segment", ImageForm("not an image, just text"u8.ToArray(), "notes.png")), "not an image");
        // A real PNG cut off in its image data: the header is read, the pixels are not all there.
        var png = File.ReadAllBytes(_imagePath);
        await AssertBadRequestAsync(await _http.PostAsync("/segment", ImageForm(png[..(png.Length / 2)], "cut.png")), "Png image (84×64) is truncated");
    }

    [TestMethod]
    public async Task TooLargeFileGets400()
    {
        var big = new byte[UploadLimit + 1];
        File.ReadAllBytes(_imagePath).CopyTo(big, 0);
        await AssertBadRequestAsync(await _http.PostAsync("/segment", ImageForm(big, "big.png")), $"limit is {UploadLimit} bytes");
    }

    [TestMethod]
    public async Task TooManyPixelsGets400BeforeDecoding()
    {
        var path = Path.Combine(Path.GetTempPath(), $"webapi-{Guid.NewGuid():N}.png");
        try
        {
            // 300 × 300 = 90,000 pixels > 40,000; a uniform mask PNG compresses to a few hundred bytes.
            new SegmentationMask(300, 300, new ushort[300 * 300]).Save(path);
            await AssertBadRequestAsync(await _http.PostAsync("/segment", ImageForm(File.ReadAllBytes(path), "wide.png")), "300×300 = 90000 pixels; the limit is 40000 pixels");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public async Task UnknownFormatGets400()
        => await AssertBadRequestAsync(await _http.PostAsync("/segment?format=jpeg", ImageForm(File.ReadAllBytes(_imagePath), "digit.png")), "Unknown format 'jpeg'");

    [TestMethod]
    public void MissingModelStopsStartupWithAClearMessage()
    {
        var missing = Path.Combine(Path.GetTempPath(), $"no-such-model-{Guid.NewGuid():N}.zip");
        var e = Assert.ThrowsExactly<SegmentationStartupException>(() => SegmentationApi.Build(["--model", missing]));
        StringAssert.Contains(e.Message, missing);
        StringAssert.Contains(e.Message, "does not exist");
        var none = Assert.ThrowsExactly<SegmentationStartupException>(() => SegmentationApi.Build([]));
        StringAssert.Contains(none.Message, "--model");
    }

    [TestMethod]
    public void ADamagedModelStopsStartupWithTheLoadersMessageNotMLNetsWrappers()
    {
        var damaged = Path.Combine(Path.GetTempPath(), $"webapi-damaged-{Guid.NewGuid():N}.zip");
        File.Copy(_modelPath, damaged);
        try
        {
            MLNetFreqFusion.Tests.MLNet.ModelZip.FlipBitsInWeights(damaged, 1 / 2.0);
            var e = Assert.ThrowsExactly<SegmentationStartupException>(() => SegmentationApi.Build(["--model", damaged]));
            StringAssert.Contains(e.Message, "do not match the checksum");
            Assert.IsFalse(e.Message.Contains("Error during class instantiation", StringComparison.Ordinal), e.Message);
            Assert.IsFalse(e.Message.Contains("target of an invocation", StringComparison.Ordinal), e.Message);
        }
        finally
        {
            File.Delete(damaged);
        }
    }

    [TestMethod]
    public async Task ServesAModelSavedWithoutItsInputSchemaAsTheConsoleSampleAndDocsSaveIt()
    {
        await using var app = SegmentationApi.Build(["--model", _schemalessModelPath, "--urls", "http://127.0.0.1:0"]);
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };

        using var response = await http.PostAsync("/segment", ImageForm(File.ReadAllBytes(_imagePath), "digit.png"));

        Assert.AreEqual(HttpStatusCode.OK, response.StatusCode, await response.Content.ReadAsStringAsync());
        CollectionAssert.AreEqual(_expected.Labels, (await ReadMaskAsync(response)).Labels);
        await app.StopAsync();
    }

    [TestMethod]
    public async Task ARequestWhoseClientHasGoneDoesNotRunTheNetwork()
    {
        var service = _app.Services.GetRequiredService<SegmentationService>();
        using var image = MLImage.CreateFromFile(_imagePath);
        long before = service.Predictions;

        await Assert.ThrowsAsync<OperationCanceledException>(() => service.PredictAsync(image, new CancellationToken(canceled: true)));

        Assert.AreEqual(before, service.Predictions);
    }

    /// <summary>
    /// A burst far above the admission bound, images of two sizes, in a few bounded rounds on 127.0.0.1: every answer is
    /// a correct mask or an immediate 503 with Retry-After, the bound is released after every request, and the process
    /// does not keep growing.
    /// </summary>
    [TestMethod]
    public async Task ABurstBeyondTheBoundGets503AndMemoryStaysBounded()
    {
        const int bound = 2, burst = 16, rounds = 3;
        // Predictions must outlast the burst's arrival on any host's kernels: with a 32-pixel sliding window the
        // 200 × 200 image takes 81 network calls. (With whole-image predictions a fast host served every request in
        // turn and none was refused.)
        var ml = new MLContext(seed: 1);
        var train = DigitsSeg.Load(ml, "train", take: 8);
        using var windowed = DigitsSeg.Inputs(ml).Append(ml.SemanticSegmentation().Trainers.FreqFusion(TinyOptions(slidingWindowSize: 32))).Fit(train);
        var expected = Predicted(ml, windowed);
        var modelPath = Path.Combine(Path.GetTempPath(), $"webapi-windowed-{Guid.NewGuid():N}.zip");
        ml.Model.Save(windowed, inputSchema: null, modelPath);
        try
        {
            await BurstAsync(modelPath, expected, bound, burst, rounds);
        }
        finally
        {
            File.Delete(modelPath);
        }
    }

    static async Task BurstAsync(string modelPath, SegmentationMask expected, int bound, int burst, int rounds)
    {
        await using var app = SegmentationApi.Build(["--model", modelPath, "--urls", "http://127.0.0.1:0"], o =>
        {
            o.MaxPixels = PixelLimit;
            o.MaxConcurrentRequests = bound;
        });
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };
        var digit = File.ReadAllBytes(_imagePath);
        var large = LargestAcceptedImage();
        using var process = System.Diagnostics.Process.GetCurrentProcess();
        long? afterFirstRound = null;
        int ok = 0, busy = 0;

        for (int round = 0; round < rounds; round++)
        {
            var answers = await Task.WhenAll(Enumerable.Range(0, burst).Select(async i =>
            {
                bool small = i % 2 == 0;
                using var response = await http.PostAsync("/segment", ImageForm(small ? digit : large, small ? "digit.png" : "large.png"));
                var body = await response.Content.ReadAsByteArrayAsync();
                if (response.StatusCode == HttpStatusCode.ServiceUnavailable)
                {
                    Assert.IsTrue(response.Headers.RetryAfter is not null, "503 carries Retry-After");
                    StringAssert.Contains(JsonDocument.Parse(body).RootElement.GetProperty("detail").GetString(), "MaxConcurrentRequests");
                    return false;
                }
                Assert.AreEqual(HttpStatusCode.OK, response.StatusCode, System.Text.Encoding.UTF8.GetString(body));
                if (small)
                    CollectionAssert.AreEqual(expected.Labels, MaskFromPng(body).Labels);
                return true;
            }));
            ok += answers.Count(a => a);
            busy += answers.Count(a => !a);
            process.Refresh();
            afterFirstRound ??= process.WorkingSet64;
        }

        Assert.IsGreaterThan(0, busy, $"a burst of {burst} against a bound of {bound} must be refused in part");
        Assert.IsGreaterThan(0, ok);
        // Every admitted request released its place: requests one after another are all served.
        for (int i = 0; i < bound + 2; i++)
        {
            using var response = await http.PostAsync("/segment", ImageForm(digit, "digit.png"));
            Assert.AreEqual(HttpStatusCode.OK, response.StatusCode);
        }
        // At most `bound` decoded images (200 × 200) and predictions are alive at once; later rounds must not add
        // more than allocator noise to what the first round reached.
        process.Refresh();
        long growth = process.WorkingSet64 - afterFirstRound!.Value;
        Assert.IsLessThan(300L << 20, growth, $"working set grew by {growth >> 20} MB after the first round");
        await app.StopAsync();
    }

    static byte[] LargestAcceptedImage()
    {
        var random = new Random(7);
        var rgba = new byte[4 * 200 * 200];
        random.NextBytes(rgba);
        for (int i = 3; i < rgba.Length; i += 4)
            rgba[i] = 255;
        using var image = SkiaSharp.SKImage.FromPixelCopy(new SkiaSharp.SKImageInfo(200, 200, SkiaSharp.SKColorType.Rgba8888, SkiaSharp.SKAlphaType.Unpremul), rgba);
        using var png = image.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100);
        return png.ToArray();
    }

    static SegmentationMask MaskFromPng(byte[] png) => SegmentationMask.FromStream(new MemoryStream(png), name: "response");

    static MultipartFormDataContent ImageForm(byte[] bytes, string fileName)
    {
        var file = new ByteArrayContent(bytes);
        file.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        return new MultipartFormDataContent { { file, "image", fileName } };
    }

    static async Task<SegmentationMask> ReadMaskAsync(HttpResponseMessage response)
    {
        var path = Path.Combine(Path.GetTempPath(), $"webapi-{Guid.NewGuid():N}.png");
        try
        {
            await File.WriteAllBytesAsync(path, await response.Content.ReadAsByteArrayAsync());
            return SegmentationMask.FromFile(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    static async Task AssertBadRequestAsync(HttpResponseMessage response, params string[] expectedInMessage)
    {
        using (response)
        {
            var body = await response.Content.ReadAsStringAsync();
            Assert.AreEqual(HttpStatusCode.BadRequest, response.StatusCode, body);
            Assert.AreEqual("application/problem+json", response.Content.Headers.ContentType?.MediaType, body);
            var detail = JsonDocument.Parse(body).RootElement.GetProperty("detail").GetString()!;
            foreach (var expected in expectedInMessage)
                StringAssert.Contains(detail, expected);
        }
    }
}
