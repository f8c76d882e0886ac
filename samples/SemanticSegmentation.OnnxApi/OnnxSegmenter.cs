using Microsoft.ML.OnnxRuntime;
using SkiaSharp;

namespace SemanticSegmentation.OnnxApi;

/// <summary>
/// Runs a model written by <c>SemanticSegmentationTransformer.ExportToOnnx</c> with ONNX Runtime alone. The graph
/// normalises, pads and crops itself, so an image of any size goes in as raw RGB and comes back as one class per pixel.
/// An <see cref="InferenceSession"/> is safe to run from several requests at once.
/// </summary>
public sealed class OnnxSegmenter : IDisposable
{
    readonly InferenceSession _session;

    public OnnxSegmenter(string modelPath)
    {
        if (!File.Exists(modelPath))
            throw new FileNotFoundException($"The ONNX model '{modelPath}' does not exist. Export one with SemanticSegmentationTransformer.ExportToOnnx and set ModelPath.", modelPath);
        _session = new InferenceSession(modelPath);
        ClassNames = _session.ModelMetadata.CustomMetadataMap.TryGetValue("class_names", out var names)
            ? System.Text.Json.JsonSerializer.Deserialize<string[]>(names) ?? []
            : [];
    }

    /// <summary>Class names stored in the model's metadata (empty when the model has none).</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>The class index of every pixel, row-major, and the image size; null when the bytes are not an image.</summary>
    public (int Width, int Height, long[] Labels)? Segment(byte[] encodedImage)
    {
        // SKBitmap.Decode throws instead of returning null when no codec recognises the bytes.
        using var codec = SKCodec.Create(new SKMemoryStream(encodedImage));
        if (codec is null)
            return null;
        using var bitmap = SKBitmap.Decode(codec);
        if (bitmap is null)
            return null;
        return (bitmap.Width, bitmap.Height, Segment(bitmap));
    }

    static float[] ToPlanarRgb(SKBitmap bitmap)
    {
        int width = bitmap.Width, height = bitmap.Height, plane = width * height;
        var rgb = new float[3 * plane];
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                var colour = bitmap.GetPixel(x, y);
                int i = y * width + x;
                rgb[i] = colour.Red;
                rgb[plane + i] = colour.Green;
                rgb[2 * plane + i] = colour.Blue;
            }
        }
        return rgb;
    }

    long[] Segment(SKBitmap bitmap)
    {
        float[] rgb = ToPlanarRgb(bitmap);
        // <snippet:onnx-runtime>
        // rgb: float[3 * H * W], planar R, G, B planes, raw 0..255 values (no normalisation, any H and W).
        using var input = OrtValue.CreateTensorValueFromMemory(rgb, new long[] { 1, 3, bitmap.Height, bitmap.Width });
        using var runOptions = new RunOptions();
        using var outputs = _session.Run(runOptions, new[] { "image" }, new[] { input }, new[] { "labels" });
        long[] labels = outputs[0].GetTensorDataAsSpan<long>().ToArray();   // [1, H, W]: the class of every pixel
        // </snippet:onnx-runtime>
        return labels;
    }

    public void Dispose() => _session.Dispose();
}
