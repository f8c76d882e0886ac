namespace SemanticSegmentation.WebApi;

/// <summary>
/// Settings of the service, bound from the "Segmentation" configuration section (appsettings.json,
/// environment variables such as <c>Segmentation__MaxPixels</c>, or <c>--Segmentation:MaxPixels=...</c>);
/// <c>--model path</c> on the command line sets <see cref="ModelPath"/>.
/// </summary>
public sealed class SegmentationApiOptions
{
    /// <summary>The configuration section the options are read from.</summary>
    public const string SectionName = "Segmentation";

    /// <summary>The ML.NET model zip written by <c>mlContext.Model.Save</c>; a relative path is taken from the current directory.</summary>
    public string ModelPath { get; set; } = "";

    /// <summary>Largest accepted image file, in bytes (default 20 MB). Larger uploads get 400.</summary>
    public long MaxUploadBytes { get; set; } = 20L * 1024 * 1024;

    /// <summary>
    /// Largest accepted image, in pixels (width × height; default 1024 × 1024, one window of the default sliding-window
    /// size). Checked from the file header before decoding, so a small compressed file cannot make the service decode and
    /// segment a huge image. Time and memory of one prediction grow with the pixels: on 2 CPU cores a 4096 × 4096 image
    /// took 398 s and 5.8 GB, which is why the default is far lower.
    /// </summary>
    public long MaxPixels { get; set; } = 1024L * 1024;

    /// <summary>
    /// Requests the service holds at once: being read, waiting for the network, or being segmented (default 4). The network
    /// segments one image at a time, so this bounds both the wait and the memory held by decoded images; a request beyond
    /// it gets 503 Service Unavailable with a Retry-After header at once, instead of queueing without end.
    /// </summary>
    public int MaxConcurrentRequests { get; set; } = 4;

    /// <summary>Weight of the class colours in the overlay, from 0 (image only) to 1 (mask only).</summary>
    public float OverlayAlpha { get; set; } = 0.5f;

    internal void Validate()
    {
        if (string.IsNullOrWhiteSpace(ModelPath))
            throw new SegmentationStartupException(
                "No model given. Start the service with --model path/to/model.zip (or set Segmentation:ModelPath in " +
                "appsettings.json, or the environment variable Segmentation__ModelPath). A model.zip is what " +
                "mlContext.Model.Save writes after training, e.g. by samples/SemanticSegmentation.ConsoleApp.");
        if (MaxUploadBytes <= 0)
            throw new SegmentationStartupException($"Segmentation:MaxUploadBytes must be positive; got {MaxUploadBytes}.");
        if (MaxPixels <= 0)
            throw new SegmentationStartupException($"Segmentation:MaxPixels must be positive; got {MaxPixels}.");
        if (MaxConcurrentRequests <= 0)
            throw new SegmentationStartupException($"Segmentation:MaxConcurrentRequests must be positive; got {MaxConcurrentRequests}.");
        if (!(OverlayAlpha >= 0 && OverlayAlpha <= 1))
            throw new SegmentationStartupException($"Segmentation:OverlayAlpha must be between 0 and 1; got {OverlayAlpha}.");
    }
}

/// <summary>The service cannot start: the model or the settings are missing or wrong. The message says how to fix it.</summary>
public sealed class SegmentationStartupException : Exception
{
    /// <summary>Creates the exception.</summary>
    public SegmentationStartupException(string message, Exception? inner = null) : base(message, inner) { }
}
