using Microsoft.AspNetCore.Http.Features;
using Microsoft.ML.Data;
using MLNetFreqFusion;
using SkiaSharp;

namespace SemanticSegmentation.WebApi;

/// <summary>
/// The web service: <c>POST /segment</c> (multipart/form-data, file field <c>image</c>) returns the predicted index
/// mask PNG, the overlay PNG or per-class pixel counts as JSON; <c>GET /health</c> describes the loaded model.
/// </summary>
public static class SegmentationApi
{
    /// <summary>Room for the multipart envelope (boundaries, part headers, other small fields) around the image file.</summary>
    const long MultipartEnvelopeBytes = 64 * 1024;

    /// <summary>The output formats of <c>POST /segment</c>, chosen by <c>?format=</c> or the Accept header.</summary>
    public enum OutputFormat
    {
        /// <summary>8-bit (16-bit above 255 classes) grayscale PNG whose pixel values are the class indices.</summary>
        Mask,
        /// <summary>RGB PNG: the uploaded image with the class colours (PASCAL VOC palette) blended over it.</summary>
        Overlay,
        /// <summary>JSON: image size and the number of pixels of every class.</summary>
        Json,
    }

    /// <summary>
    /// Builds the service: reads the configuration (appsettings.json, environment, <paramref name="args"/>: <c>--model</c>,
    /// <c>--urls</c>, <c>--Segmentation:MaxUploadBytes=...</c>), loads the model and maps the endpoints. Start it with
    /// <c>Run()</c> or <c>StartAsync()</c>.
    /// </summary>
    /// <param name="args">Command-line arguments.</param>
    /// <param name="configure">Changes the options after configuration is read (tests use it for small limits).</param>
    /// <exception cref="SegmentationStartupException">No model was given, the file is missing or not a segmentation model, or a limit is invalid.</exception>
    public static WebApplication Build(string[] args, Action<SegmentationApiOptions>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = args,
            // appsettings.json is copied next to the assembly; the current directory is only used for a relative model path.
            ContentRootPath = AppContext.BaseDirectory,
            ApplicationName = typeof(SegmentationApi).Assembly.GetName().Name,
        });

        var options = new SegmentationApiOptions();
        builder.Configuration.GetSection(SegmentationApiOptions.SectionName).Bind(options);
        if (builder.Configuration["model"] is { Length: > 0 } model)
            options.ModelPath = model;
        configure?.Invoke(options);
        options.Validate();

        // The server refuses bodies far above the limit before they are read; the handler checks the file itself
        // against the exact limit, so both paths answer with the same 400 message.
        long bodyLimit = options.MaxUploadBytes + MultipartEnvelopeBytes;
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = bodyLimit);
        builder.Services.Configure<FormOptions>(form => form.MultipartBodyLengthLimit = bodyLimit);
        builder.Services.AddProblemDetails();

        // Loaded here, not lazily: a missing or broken model stops the service at startup with a clear message.
        var service = new SegmentationService(options.ModelPath);
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(_ => service); // created by a factory, so the host disposes it on shutdown

        builder.Services.AddSingleton(new RequestAdmission(options.MaxConcurrentRequests));

        var app = builder.Build();
        app.Logger.LogInformation("Loaded {Model}: {Backbone} + {Decoder}, {Classes} classes.",
            service.ModelPath, service.Segmenter.Backbone, service.Segmenter.Decoder, service.Segmenter.NumberOfClasses);

        app.MapGet("/health", (SegmentationService s) => Results.Ok(new
        {
            status = "ok",
            model = s.ModelPath,
            backbone = s.Segmenter.Backbone.ToString(),
            decoder = s.Segmenter.Decoder.ToString(),
            classes = s.Segmenter.ClassNames,
        }));
        app.MapPost("/segment", SegmentAsync);
        return app;
    }

    static async Task<IResult> SegmentAsync(HttpRequest request, SegmentationService service, SegmentationApiOptions options,
        RequestAdmission admission, CancellationToken cancellation)
    {
        if (!admission.TryEnter())
        {
            request.HttpContext.Response.Headers.RetryAfter = "1";
            return Results.Problem($"The service is segmenting and holding {options.MaxConcurrentRequests} requests already " +
                "(Segmentation:MaxConcurrentRequests); retry later.", statusCode: StatusCodes.Status503ServiceUnavailable, title: "Busy");
        }
        try
        {
            return await SegmentAdmittedAsync(request, service, options, cancellation);
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
        {
            // The client is gone (RequestAborted): nobody reads an answer, and the network stopped before its next
            // sliding window, or never ran for it.
            return Results.Empty;
        }
        finally
        {
            admission.Exit();
        }
    }

    static async Task<IResult> SegmentAdmittedAsync(HttpRequest request, SegmentationService service, SegmentationApiOptions options, CancellationToken cancellation)
    {
        if (ChooseFormat(request) is not { } format)
            return BadRequest($"Unknown format '{request.Query["format"]}'. Use ?format=mask (index PNG), overlay (PNG) or json.");
        if (format.Error is { } notAcceptable)
            return Results.Problem(notAcceptable, statusCode: StatusCodes.Status406NotAcceptable, title: "Not acceptable");

        var (bytes, error) = await ReadUploadAsync(request, options, cancellation);
        if (error is not null)
            return BadRequest(error);

        using var image = DecodeImage(bytes!, options, out error);
        if (image is null)
            return BadRequest(error!);

        var mask = await service.PredictAsync(image, cancellation);
        return format.Format switch
        {
            OutputFormat.Mask => Results.File(Png(mask.Save), "image/png"),
            OutputFormat.Overlay => Results.File(Png(output => mask.SaveOverlay(image, output, options.OverlayAlpha)), "image/png"),
            _ => Results.Ok(PixelCounts(mask, service.Segmenter.ClassNames)),
        };
    }

    /// <summary>
    /// <c>?format=mask|overlay|json</c> wins; without it the Accept header decides (application/json gives JSON,
    /// image/png, image/* or */* the index mask; the overlay is only available by query); no Accept gives the mask.
    /// Null means an unknown <c>format</c> value.
    /// </summary>
    static (OutputFormat Format, string? Error)? ChooseFormat(HttpRequest request)
    {
        if (request.Query.TryGetValue("format", out var query))
            return Enum.TryParse<OutputFormat>(query.ToString(), ignoreCase: true, out var chosen) && Enum.IsDefined(chosen) && !int.TryParse(query.ToString(), out _)
                ? (chosen, null)
                : null;
        var accept = request.GetTypedHeaders().Accept;
        if (accept.Count == 0)
            return (OutputFormat.Mask, null);
        foreach (var type in accept.OrderByDescending(t => t.Quality ?? 1))
        {
            if (type.Quality == 0)
                continue;
            if (type.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase))
                return (OutputFormat.Json, null);
            if (type.MediaType.Equals("image/png", StringComparison.OrdinalIgnoreCase) || type.MediaType.Equals("image/*", StringComparison.OrdinalIgnoreCase)
                || type.MediaType.Equals("*/*", StringComparison.OrdinalIgnoreCase))
                return (OutputFormat.Mask, null);
        }
        return (OutputFormat.Mask, $"The service answers with image/png or application/json; the request accepts only {request.Headers.Accept}.");
    }

    static async Task<(byte[]? Bytes, string? Error)> ReadUploadAsync(HttpRequest request, SegmentationApiOptions options, CancellationToken cancellation)
    {
        const string howTo = "Send the image as multipart/form-data with a file field named 'image', e.g. curl -F image=@photo.jpg http://host/segment.";
        string tooLarge = $"The upload is larger than the limit of {options.MaxUploadBytes} bytes (Segmentation:MaxUploadBytes); send a smaller image.";
        if (!request.HasFormContentType)
            return (null, $"The request has content type '{request.ContentType ?? "none"}'. {howTo}");
        if (request.ContentLength > options.MaxUploadBytes + MultipartEnvelopeBytes)
            return (null, tooLarge);

        IFormCollection form;
        try
        {
            form = await request.ReadFormAsync(cancellation);
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return (null, tooLarge);
        }
        catch (InvalidDataException e) when (e.Message.Contains("limit", StringComparison.OrdinalIgnoreCase))
        {
            return (null, tooLarge);
        }
        catch (Exception e) when (e is InvalidDataException or BadHttpRequestException or IOException)
        {
            return (null, $"The multipart body could not be read: {e.Message} {howTo}");
        }

        var file = form.Files.GetFile("image");
        if (file is null)
        {
            var received = form.Files.Select(f => $"file '{f.Name}'").Concat(form.Keys.Select(k => $"field '{k}'")).ToArray();
            return (null, $"No file field named 'image' ({(received.Length == 0 ? "the form is empty" : "received " + string.Join(", ", received))}). {howTo}");
        }
        if (file.Length == 0)
            return (null, $"The uploaded file '{file.FileName}' is empty (0 bytes).");
        if (file.Length > options.MaxUploadBytes)
            return (null, $"The uploaded file '{file.FileName}' has {file.Length} bytes; the limit is {options.MaxUploadBytes} bytes (Segmentation:MaxUploadBytes). Send a smaller image.");

        var bytes = new byte[file.Length];
        await using (var stream = file.OpenReadStream())
            await stream.ReadExactlyAsync(bytes, cancellation);
        return (bytes, null);
    }

    /// <summary>
    /// Reads the size from the header first, so the pixel limit holds before anything is decoded; then decodes strictly.
    /// <c>MLImage.CreateFromStream</c> is not used because it accepts a truncated file (the missing rows come out blank)
    /// and a cut-off upload would be segmented as if it were the image. The pixels are decoded the way it decodes them
    /// (32-bit BGRA, premultiplied alpha), so predictions match images read with <c>LoadImages</c> or <c>CreateFromFile</c>.
    /// </summary>
    static MLImage? DecodeImage(byte[] bytes, SegmentationApiOptions options, out string? error)
    {
        const string notAnImage = "The uploaded file is not an image that can be decoded (PNG, JPEG, BMP, GIF, WebP, ICO and WBMP are read).";
        using var data = SKData.CreateCopy(bytes);
        using var codec = SKCodec.Create(data);
        if (codec is null)
        {
            error = notAnImage;
            return null;
        }
        var (width, height) = (codec.Info.Width, codec.Info.Height);
        long pixels = (long)width * height;
        if (pixels > options.MaxPixels)
        {
            error = $"The image is {width}×{height} = {pixels} pixels; the limit is {options.MaxPixels} pixels (Segmentation:MaxPixels). Send a smaller image.";
            return null;
        }
        var info = new SKImageInfo(width, height, SKColorType.Bgra8888, SKAlphaType.Premul);
        using var bitmap = new SKBitmap(info);
        var result = codec.GetPixels(info, bitmap.GetPixels());
        if (result != SKCodecResult.Success)
        {
            error = result == SKCodecResult.IncompleteInput
                ? $"The uploaded {codec.EncodedFormat} image ({width}×{height}) is truncated: the file ends before all its pixels. Upload the whole file."
                : $"{notAnImage} Decoding the {codec.EncodedFormat} data failed: {result}.";
            return null;
        }
        error = null;
        return MLImage.CreateFromPixels(width, height, MLPixelFormat.Bgra32, bitmap.GetPixelSpan());
    }

    /// <summary>Counts the requests the service holds and refuses one beyond the bound, without waiting.</summary>
    internal sealed class RequestAdmission(int limit)
    {
        int _held;

        public bool TryEnter()
        {
            if (Interlocked.Increment(ref _held) <= limit)
                return true;
            Interlocked.Decrement(ref _held);
            return false;
        }

        public void Exit() => Interlocked.Decrement(ref _held);
    }

    static byte[] Png(Action<Stream> save)
    {
        using var buffer = new MemoryStream();
        save(buffer);
        return buffer.ToArray();
    }

    static PixelCountsResponse PixelCounts(SegmentationMask mask, IReadOnlyList<string> classNames)
    {
        var counts = mask.CountPixelsPerClass();
        var names = mask.ClassNames ?? classNames;
        var classes = Enumerable.Range(0, Math.Max(counts.Length, names.Count))
            .Select(i => new ClassPixels(i, i < names.Count ? names[i] : null, i < counts.Length ? counts[i] : 0))
            .ToArray();
        return new PixelCountsResponse(mask.Width, mask.Height, classes);
    }

    static IResult BadRequest(string message) => Results.Problem(message, statusCode: StatusCodes.Status400BadRequest, title: "Bad upload");

    /// <summary>The JSON answer: image size and the pixels of every class (classes the model knows, present or not).</summary>
    /// <param name="Width">Width of the image and the mask.</param>
    /// <param name="Height">Height of the image and the mask.</param>
    /// <param name="Classes">One entry per class index, in index order.</param>
    public sealed record PixelCountsResponse(int Width, int Height, ClassPixels[] Classes);

    /// <summary>Pixels predicted as one class.</summary>
    /// <param name="Index">Class index (the pixel value in the mask PNG).</param>
    /// <param name="Name">Class name, when the model has names.</param>
    /// <param name="Pixels">Number of pixels predicted as this class.</param>
    public sealed record ClassPixels(int Index, string? Name, long Pixels);
}
