using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using MLNetFreqFusion;

namespace SemanticSegmentation.WebApi;

/// <summary>The input row of the prediction engine: one decoded image, of any size.</summary>
public sealed class ModelInput
{
    /// <summary>
    /// The image to segment, of any size. ML.NET recognises an MLImage member only with an attribute, and its own
    /// <c>[ImageType]</c> needs a fixed height and width; MLNetFreqFusion's <see cref="AnySizeImageTypeAttribute"/> does not.
    /// </summary>
    [AnySizeImageType]
    public MLImage Image { get; set; } = null!;
}

/// <summary>The output row of the prediction engine.</summary>
public sealed class ModelOutput
{
    /// <summary>The class of every pixel, at the input image's size.</summary>
    public SegmentationMask PredictedLabel { get; set; } = null!;
}

/// <summary>
/// The loaded model and the prediction engine over it. One instance serves all requests (a singleton).
/// </summary>
public sealed class SegmentationService : IDisposable
{
    readonly ITransformer _model;
    readonly PredictionEngine<ModelInput, ModelOutput> _engine;
    // One prediction at a time (see the constructor); a semaphore rather than a lock so that a waiting request can give
    // up its turn when its client disconnects.
    readonly SemaphoreSlim _engineGate = new(1, 1);
    long _predictions;

    /// <summary>Loads the model zip and creates the prediction engine.</summary>
    /// <exception cref="SegmentationStartupException">The file is missing, is not an ML.NET model, or holds no segmentation model.</exception>
    public SegmentationService(string modelPath)
    {
        ModelPath = Path.GetFullPath(modelPath);
        if (!File.Exists(ModelPath))
            throw new SegmentationStartupException(
                $"Model file '{ModelPath}' does not exist. Train one first (samples/SemanticSegmentation.ConsoleApp writes model.zip) " +
                "and pass its path with --model path/to/model.zip.");
        var ml = new MLContext();
        DataViewSchema? modelInput;
        try
        {
            _model = ml.Model.Load(ModelPath, out modelInput);
        }
        catch (Exception e)
        {
            // Damaged weights surface from ML.NET's loader (called by reflection) as "Exception has been thrown by the
            // target of an invocation"; the message that says what is wrong is the innermost one.
            var cause = e;
            while (cause is System.Reflection.TargetInvocationException { InnerException: { } inner })
                cause = inner;
            throw new SegmentationStartupException($"Model file '{ModelPath}' could not be loaded as an ML.NET model: {cause.Message}", cause);
        }

        // A trained pipeline starts with the transforms that read files (LoadImages, LoadSegmentationMasks); a request
        // brings the image itself, so only the segmenter at the end of the chain runs. It normalises the image itself.
        Segmenter = FindSegmenter(_model)
            ?? throw new SegmentationStartupException(
                $"Model file '{ModelPath}' holds no SemanticSegmentationTransformer; save the model returned by a pipeline " +
                "that ends in mlContext.SemanticSegmentation().Trainers.FreqFusion(...).");
        var (imageColumn, maskColumn) = ColumnNames(_model, modelInput, Segmenter);

        var inputDefinition = SchemaDefinition.Create(typeof(ModelInput));
        inputDefinition[nameof(ModelInput.Image)].ColumnName = imageColumn;
        var outputDefinition = SchemaDefinition.Create(typeof(ModelOutput));
        outputDefinition[nameof(ModelOutput.PredictedLabel)].ColumnName = maskColumn;

        // Why one engine behind a lock and not a pool of engines: a PredictionEngine keeps per-call state (its input row
        // and cursor), so one engine must never run two requests at once. A pool would give each concurrent request its
        // own engine, but it cannot raise throughput here: the SemanticSegmentationTransformer already runs its TorchSharp
        // network one image at a time behind its own lock (TorchSharp modules are not safe to run concurrently), and
        // libtorch spreads that one forward pass over all CPU cores. (While this sample was written, six engines at once
        // over one model once crashed natively with glibc "double free or corruption"; that did not reproduce later with
        // 6 engines × 60 predictions on the sample model, and the library tests six concurrent engines and cursors.)
        // Upload parsing, decoding and PNG/JSON encoding still run concurrently in the request handlers. Throughput is
        // one image at a time per process; concurrent requests wait their turn. To serve more, run more processes.
        _engine = ml.Model.CreatePredictionEngine<ModelInput, ModelOutput>(
            Segmenter, ignoreMissingColumns: false, inputSchemaDefinition: inputDefinition, outputSchemaDefinition: outputDefinition);

        // One prediction at startup: a model that cannot serve fails here rather than on the first request, and the
        // first request does not pay libtorch's one-time initialisation (seconds on a small CPU).
        using var blank = MLImage.CreateFromPixels(WarmupSide, WarmupSide, MLPixelFormat.Bgra32, new byte[4 * WarmupSide * WarmupSide]);
        try
        {
            Predict(blank);
        }
        catch (Exception e)
        {
            _engine.Dispose();
            throw new SegmentationStartupException($"Model file '{ModelPath}' loaded but could not segment a test image: {e.Message}", e);
        }
    }

    const int WarmupSide = 64;

    /// <summary>Absolute path of the loaded model zip.</summary>
    public string ModelPath { get; }

    /// <summary>The segmentation model at the end of the loaded pipeline.</summary>
    public SemanticSegmentationTransformer Segmenter { get; }

    /// <summary>Number of images segmented since the service started (the warm-up image included).</summary>
    public long Predictions => Interlocked.Read(ref _predictions);

    /// <summary>Segments one image; safe to call from many threads at once (calls run one after another).</summary>
    public SegmentationMask Predict(MLImage image)
    {
        _engineGate.Wait();
        try
        {
            return PredictLocked(image);
        }
        finally
        {
            _engineGate.Release();
        }
    }

    /// <summary>
    /// Segments one image after the predictions ahead of it; a request whose <paramref name="cancellation"/> fires while
    /// it waits (its client disconnected) leaves the queue without running the network.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellation"/> fired before the prediction started.</exception>
    public async Task<SegmentationMask> PredictAsync(MLImage image, CancellationToken cancellation)
    {
        await _engineGate.WaitAsync(cancellation);
        try
        {
            cancellation.ThrowIfCancellationRequested();
            return PredictLocked(image);
        }
        finally
        {
            _engineGate.Release();
        }
    }

    SegmentationMask PredictLocked(MLImage image)
    {
        var mask = _engine.Predict(new ModelInput { Image = image }).PredictedLabel;
        Interlocked.Increment(ref _predictions);
        return mask;
    }

    /// <summary>Releases the engine and the network's native memory.</summary>
    public void Dispose()
    {
        _engine.Dispose();
        _engineGate.Dispose();
        // A loaded TransformerChain disposes its transformers, the segmenter among them.
        if (_model is IDisposable model)
            model.Dispose();
        else
            Segmenter.Dispose();
    }

    static SemanticSegmentationTransformer? FindSegmenter(ITransformer model) => model switch
    {
        SemanticSegmentationTransformer segmenter => segmenter,
        IEnumerable<ITransformer> chain => chain.Select(FindSegmenter).LastOrDefault(s => s is not null),
        _ => null,
    };

    /// <summary>
    /// The segmenter's image column (an image column entering it in the saved pipeline; "Image" when it was saved alone
    /// or without its input schema, as <c>ml.Model.Save(model, inputSchema: null, path)</c> in the console sample and the
    /// docs does) and its mask column (the SegmentationMask column it adds), so models trained with other column names
    /// work too.
    /// </summary>
    static (string Image, string Mask) ColumnNames(ITransformer model, DataViewSchema? modelInput, SemanticSegmentationTransformer segmenter)
    {
        var schema = modelInput;
        if (schema is not null && model is IEnumerable<ITransformer> chain && chain.Contains(segmenter))
            foreach (var transformer in chain.TakeWhile(t => !ReferenceEquals(t, segmenter)))
                schema = transformer.GetOutputSchema(schema);
        var candidates = (schema ?? Enumerable.Empty<DataViewSchema.Column>())
            .Where(c => !c.IsHidden && c.Type is ImageDataViewType).Select(c => c.Name).Reverse().Append("Image").Distinct();
        var problems = new List<string>();
        foreach (var image in candidates)
        {
            var input = new DataViewSchema.Builder();
            input.AddColumn(image, new ImageDataViewType());
            try
            {
                var output = segmenter.GetOutputSchema(input.ToSchema());
                var mask = output.Where(c => c.Type is SegmentationMaskDataViewType && !c.IsHidden).Select(c => c.Name).LastOrDefault();
                if (mask is not null)
                    return (image, mask);
                problems.Add($"'{image}': the model adds no SegmentationMask column");
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException)
            {
                problems.Add($"'{image}': {e.Message}");
            }
        }
        throw new SegmentationStartupException($"The segmentation model cannot be served from an image column: {string.Join("; ", problems)}" +
            (schema is null ? ". The model was saved without its input schema, so only the column name 'Image' could be tried; pass the training data's schema as the second argument of mlContext.Model.Save, or name the image column \"Image\"." : ""));
    }
}
