using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetFreqFusion;

namespace SemanticSegmentation.WebApi;

/// <summary>
/// The loaded model and its segmenter. One instance serves all requests (a singleton).
/// </summary>
public sealed class SegmentationService : IDisposable
{
    readonly ITransformer _model;
    // One prediction at a time (see the constructor); a semaphore rather than a lock so that a waiting request can give
    // up its turn when its client disconnects.
    readonly SemaphoreSlim _gate = new(1, 1);
    long _predictions;

    /// <summary>Loads the model zip and finds its segmenter.</summary>
    /// <exception cref="SegmentationStartupException">The file is missing, is not an ML.NET model, or holds no segmentation model.</exception>
    public SegmentationService(string modelPath)
    {
        ModelPath = Path.GetFullPath(modelPath);
        if (!File.Exists(ModelPath))
            throw new SegmentationStartupException(
                $"Model file '{ModelPath}' does not exist. Train one first (samples/SemanticSegmentation.ConsoleApp writes model.zip) " +
                "and pass its path with --model path/to/model.zip.");
        var ml = new MLContext();
        try
        {
            _model = ml.Model.Load(ModelPath, out _);
        }
        catch (Exception e)
        {
            // ML.NET builds a saved model's parts by reflection and wraps what a part's loader says (damaged weights,
            // a newer format) in "Error during class instantiation" and "Exception has been thrown by the target of an
            // invocation"; the message that says what is wrong is the innermost one.
            var cause = e.GetBaseException();
            throw new SegmentationStartupException($"Model file '{ModelPath}' could not be loaded as an ML.NET model: {cause.Message}", cause);
        }

        // A trained pipeline starts with the transforms that read files (LoadImages, LoadSegmentationMasks); a request
        // brings the image itself, so only the segmenter at the end of the chain runs. It normalises the image itself.
        Segmenter = FindSegmenter(_model)
            ?? throw new SegmentationStartupException(
                $"Model file '{ModelPath}' holds no SemanticSegmentationTransformer; save the model returned by a pipeline " +
                "that ends in mlContext.SemanticSegmentation().Trainers.FreqFusion(...).");

        // Why the segmenter's own Predict and not a PredictionEngine: it takes the request's cancellation token, so a
        // client that disconnects stops its prediction between sliding windows (an engine cannot be cancelled short of
        // cancelling the whole MLContext, for good), and it needs no input or output classes or column names, so any
        // saved segmenter serves. Why one prediction at a time: the SemanticSegmentationTransformer runs its TorchSharp
        // network one image at a time behind its own lock (TorchSharp modules are not safe to run concurrently), and
        // libtorch spreads that one forward pass over all CPU cores; the gate below only lets a waiting request leave
        // without holding a thread. Upload parsing, decoding and PNG/JSON encoding still run concurrently in the
        // request handlers. Throughput is one image at a time per process; to serve more, run more processes.

        // One prediction at startup: a model that cannot serve fails here rather than on the first request, and the
        // first request does not pay libtorch's one-time initialisation (seconds on a small CPU).
        using var blank = MLImage.CreateFromPixels(WarmupSide, WarmupSide, MLPixelFormat.Bgra32, new byte[4 * WarmupSide * WarmupSide]);
        try
        {
            Predict(blank);
        }
        catch (Exception e)
        {
            (_model as IDisposable ?? Segmenter).Dispose();
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
        _gate.Wait();
        try
        {
            return PredictAdmitted(image, CancellationToken.None);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Segments one image after the predictions ahead of it. When <paramref name="cancellation"/> fires (its client
    /// disconnected) a waiting request leaves the queue without running the network, and a running one stops before its
    /// next sliding window.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellation"/> fired before the prediction finished.</exception>
    public async Task<SegmentationMask> PredictAsync(MLImage image, CancellationToken cancellation)
    {
        await _gate.WaitAsync(cancellation);
        try
        {
            return PredictAdmitted(image, cancellation);
        }
        finally
        {
            _gate.Release();
        }
    }

    SegmentationMask PredictAdmitted(MLImage image, CancellationToken cancellation)
    {
        var mask = Segmenter.Predict(image, cancellation);
        Interlocked.Increment(ref _predictions);
        return mask;
    }

    /// <summary>Releases the network's native memory.</summary>
    public void Dispose()
    {
        _gate.Dispose();
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
}
