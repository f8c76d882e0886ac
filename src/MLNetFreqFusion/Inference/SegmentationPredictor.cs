using Microsoft.ML.Data;
using MLNetFreqFusion.Data;
using MLNetFreqFusion.Networks;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Inference;

/// <summary>A predicted mask and, when asked for, its K×H×W class probabilities (class-major).</summary>
internal readonly record struct SegmentationPrediction(SegmentationMask Mask, float[]? Probabilities);

/// <summary>
/// Predicts masks at the images' own size: the whole image at once (the network pads to its stride and crops
/// back), or overlapping sliding windows whose logits are averaged when a side exceeds the window size;
/// optionally averaged with the horizontally mirrored prediction. Shared by validation and the transformer so
/// that both see the same predictions. It owns the network's lock: TorchSharp modules are not safe to run from
/// several threads at once, and one network serves every cursor and engine of a model.
/// </summary>
/// <remarks>
/// Every prediction takes the caller's cancellation check and runs it before each network call: before the whole
/// image, and before each sliding window, so that a large image (an 8000² one ran for ten minutes in 1024² windows)
/// stops within one window of <c>MLContext.CancelExecution</c> or a cancelled token.
/// </remarks>
internal sealed class SegmentationPredictor : IDisposable
{
    readonly SegmentationNetwork _network;
    readonly InferenceSettings _settings;
    readonly IReadOnlyList<string> _classNames;
    readonly Device _device;
    readonly NetworkThread? _thread;
    readonly object _gate = new();

    /// <param name="network">The network; the predictor does not own it.</param>
    /// <param name="settings">How the network is run.</param>
    /// <param name="classNames">The classes, index by index.</param>
    /// <param name="device">The device the network is on.</param>
    /// <param name="ownThread">
    /// Whether predictions run on a thread of the predictor's own (<see cref="NetworkThread"/>): true for a model that
    /// serves callers on any thread; false for the trainer's validation, which runs on the training thread between steps
    /// and would otherwise keep a second arena's worth of memory for the rest of training.
    /// </param>
    public SegmentationPredictor(SegmentationNetwork network, InferenceSettings settings, IReadOnlyList<string> classNames, Device device, bool ownThread)
    {
        _network = network;
        _settings = settings;
        _classNames = classNames;
        _device = device;
        _thread = ownThread ? new NetworkThread("MLNetFreqFusion predictions") : null;
    }

    /// <summary>How the network is run.</summary>
    public InferenceSettings Settings => _settings;

    /// <summary>The predictor's own thread, if it has one.</summary>
    internal NetworkThread? PredictionThread => _thread;

    /// <summary>The device the network runs on.</summary>
    public Device Device => _device;

    /// <summary>Runs <paramref name="work"/> on the network while no prediction runs.</summary>
    public T WithNetwork<T>(Func<SegmentationNetwork, T> work)
    {
        lock (_gate)
            return work(_network);
    }

    /// <summary>The predicted mask of one image.</summary>
    /// <param name="image">The image, of any size.</param>
    /// <param name="throwIfCancelled">Throws <see cref="OperationCanceledException"/> when the work is to stop; run before every network call.</param>
    public SegmentationMask Predict(MLImage image, Action throwIfCancelled) => Predict(image, withProbabilities: false, throwIfCancelled).Mask;

    /// <summary>The prediction for one image, converted to a tensor on the thread that runs the network.</summary>
    /// <param name="image">The image, of any size.</param>
    /// <param name="withProbabilities">Whether to return the class probabilities too.</param>
    /// <param name="throwIfCancelled">Throws <see cref="OperationCanceledException"/> when the work is to stop; run before every network call.</param>
    public SegmentationPrediction Predict(MLImage image, bool withProbabilities, Action throwIfCancelled)
    {
        ArgumentNullException.ThrowIfNull(throwIfCancelled);
        return OnNetworkThread(() =>
        {
            using var scope = NewDisposeScope();
            return PredictHere(ImageTensorConverter.ToTensor(image).unsqueeze(0), withProbabilities, throwIfCancelled)[0];
        });
    }

    /// <summary>
    /// Predictions for a batch of images of one size, float32 RGB [B,3,H,W] in 0..255, in one network call per
    /// window: rows of different sizes cannot share a tensor, so callers group them.
    /// </summary>
    /// <param name="rgb">The images.</param>
    /// <param name="withProbabilities">Whether to return the class probabilities too.</param>
    /// <param name="throwIfCancelled">Throws <see cref="OperationCanceledException"/> when the work is to stop; run before every network call.</param>
    public SegmentationPrediction[] Predict(Tensor rgb, bool withProbabilities, Action throwIfCancelled)
    {
        ArgumentNullException.ThrowIfNull(throwIfCancelled);
        return OnNetworkThread(() => PredictHere(rgb, withProbabilities, throwIfCancelled));
    }

    T OnNetworkThread<T>(Func<T> work) => _thread is null ? work() : _thread.Run(work);

    SegmentationPrediction[] PredictHere(Tensor rgb, bool withProbabilities, Action throwIfCancelled)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        Tensor logits;
        lock (_gate)
        {
            _network.eval();
            logits = Logits(rgb.to(_device), throwIfCancelled);
        }
        var labels = logits.argmax(1).cpu();
        var probabilities = withProbabilities ? logits.softmax(1).cpu().contiguous().data<float>().ToArray() : null;
        int count = (int)rgb.shape[0], perImage = (int)(logits.numel() / count);
        var predictions = new SegmentationPrediction[count];
        for (int i = 0; i < count; i++)
            predictions[i] = new SegmentationPrediction(ImageTensorConverter.ToMask(labels[i], _classNames), probabilities?.AsSpan(i * perImage, perImage).ToArray());
        return predictions;
    }

    Tensor Logits(Tensor rgb, Action throwIfCancelled)
    {
        var logits = Forward(rgb, throwIfCancelled);
        if (_settings.FlipTest)
            logits = (logits + Forward(rgb.flip(3), throwIfCancelled).flip(3)) / 2;
        return logits;
    }

    Tensor Forward(Tensor rgb, Action throwIfCancelled)
    {
        long h = rgb.shape[2], w = rgb.shape[3];
        int window = _settings.SlidingWindowSize;
        if (h <= window && w <= window)
        {
            throwIfCancelled();
            return Call(rgb);
        }

        long wh = Math.Min(window, h), ww = Math.Min(window, w);
        long stride = Math.Max(1, (long)Math.Round(window * (1 - _settings.SlidingWindowOverlap)));
        var sum = zeros(rgb.shape[0], _network.NumberOfClasses, h, w, device: rgb.device);
        var count = zeros(1, 1, h, w, device: rgb.device);
        foreach (long y in Starts(h, wh, stride))
        foreach (long x in Starts(w, ww, stride))
        {
            throwIfCancelled();
            using var scope = NewDisposeScope();
            var rows = TensorIndex.Slice(y, y + wh);
            var cols = TensorIndex.Slice(x, x + ww);
            var tile = rgb[TensorIndex.Colon, TensorIndex.Colon, rows, cols];
            sum[TensorIndex.Colon, TensorIndex.Colon, rows, cols] += Call(tile);
            count[TensorIndex.Colon, TensorIndex.Colon, rows, cols] += 1;
        }
        return sum / count;
    }

    Tensor Call(Tensor rgb)
    {
        var logits = _network.call(rgb);
        Native.FinalizedScalars.AfterNetworkCall(rgb);
        return logits;
    }

    /// <summary>Ends the prediction thread, if there is one, once the predictions already asked for are done.</summary>
    public void Dispose()
    {
        _thread?.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>A model dropped without being disposed ends its thread too (the thread does not keep the predictor alive).</summary>
    ~SegmentationPredictor() => _thread?.Dispose();

    static IEnumerable<long> Starts(long size, long window, long stride)
    {
        for (long s = 0; ; s += stride)
        {
            if (s + window >= size)
            {
                yield return size - window;
                yield break;
            }
            yield return s;
        }
    }
}
