using SemanticSegmentation.OnnxApi;
using SkiaSharp;

// POST an image (PNG, JPEG, … as the request body) to /segment; the answer is a PNG whose gray value at each
// pixel is the predicted class index. The model is the .onnx file that ExportToOnnx wrote (setting ModelPath).
var builder = WebApplication.CreateBuilder(args);
builder.Services.AddSingleton(services => new OnnxSegmenter(builder.Configuration["ModelPath"] ?? "model.onnx"));
var app = builder.Build();

app.MapGet("/health", (OnnxSegmenter segmenter) => Results.Ok(new { status = "ok", classes = segmenter.ClassNames }));

app.MapPost("/segment", async (HttpRequest request, OnnxSegmenter segmenter) =>
{
    using var body = new MemoryStream();
    await request.Body.CopyToAsync(body);
    if (body.Length == 0)
        return Results.BadRequest("Send the image as the request body (PNG, JPEG, BMP, GIF or WebP).");
    var result = segmenter.Segment(body.ToArray());
    if (result is not var (width, height, labels))
        return Results.BadRequest("The request body is not an image SkiaSharp can decode (PNG, JPEG, BMP, GIF or WebP).");
    using var mask = new SKBitmap(width, height, SKColorType.Gray8, SKAlphaType.Opaque);
    var pixels = new byte[width * height];
    for (int i = 0; i < pixels.Length; i++)
        pixels[i] = (byte)Math.Min(labels[i], 255);
    System.Runtime.InteropServices.Marshal.Copy(pixels, 0, mask.GetPixels(), pixels.Length);
    using var png = mask.Encode(SKEncodedImageFormat.Png, 100);
    return Results.File(png.ToArray(), "image/png");
});

app.Run();

/// <summary>Visible to WebApplicationFactory in tests.</summary>
public partial class Program;
