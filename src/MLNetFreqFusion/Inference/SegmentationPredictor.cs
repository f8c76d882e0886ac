using System.Runtime.InteropServices;
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
/// that both see the same predictions.
/// </summary>
internal sealed class SegmentationPredictor
{
    readonly SegmentationNetwork _network;
    readonly SegmentationModelSettings _settings;
    readonly Device _device;

    public SegmentationPredictor(SegmentationNetwork network, SegmentationModelSettings settings, Device device)
    {
        _network = network;
        _settings = settings;
        _device = device;
    }

    /// <summary>The predicted mask of one image.</summary>
    public SegmentationMask Predict(MLImage image)
    {
        using var scope = NewDisposeScope();
        return Predict(ImageTensorConverter.ToTensor(image).unsqueeze(0), withProbabilities: false)[0].Mask;
    }

    /// <summary>
    /// Predictions for a batch of images of one size, float32 RGB [B,3,H,W] in 0..255, in one network call per
    /// window: rows of different sizes cannot share a tensor, so callers group them.
    /// </summary>
    public SegmentationPrediction[] Predict(Tensor rgb, bool withProbabilities)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        _network.eval();
        var logits = Logits(rgb.to(_device));
        int count = (int)rgb.shape[0], height = (int)rgb.shape[2], width = (int)rgb.shape[3];
        // Class indices fit in 16 bits (masks are ushort), so the int16 copy is reinterpreted rather than converted.
        var labels = logits.argmax(1).to(ScalarType.Int16).cpu().contiguous().data<short>().ToArray();
        var probabilities = withProbabilities ? logits.softmax(1).cpu().contiguous().data<float>().ToArray() : null;
        int pixels = width * height, perImage = pixels * _settings.NumberOfClasses;
        var predictions = new SegmentationPrediction[count];
        for (int i = 0; i < count; i++)
        {
            var mask = MemoryMarshal.Cast<short, ushort>(labels.AsSpan(i * pixels, pixels)).ToArray();
            var classProbabilities = probabilities?.AsSpan(i * perImage, perImage).ToArray();
            predictions[i] = new SegmentationPrediction(new SegmentationMask(width, height, mask, _settings.ClassNames), classProbabilities);
        }
        return predictions;
    }

    Tensor Logits(Tensor rgb)
    {
        var logits = Forward(rgb);
        if (_settings.FlipTest)
            logits = (logits + Forward(rgb.flip(3)).flip(3)) / 2;
        return logits;
    }

    Tensor Forward(Tensor rgb)
    {
        long h = rgb.shape[2], w = rgb.shape[3];
        int window = _settings.SlidingWindowSize;
        if (h <= window && w <= window)
            return _network.call(rgb);

        long wh = Math.Min(window, h), ww = Math.Min(window, w);
        long stride = Math.Max(1, (long)Math.Round(window * (1 - _settings.SlidingWindowOverlap)));
        var sum = zeros(rgb.shape[0], _settings.NumberOfClasses, h, w, device: rgb.device);
        var count = zeros(1, 1, h, w, device: rgb.device);
        foreach (long y in Starts(h, wh, stride))
        foreach (long x in Starts(w, ww, stride))
        {
            using var scope = NewDisposeScope();
            var rows = TensorIndex.Slice(y, y + wh);
            var cols = TensorIndex.Slice(x, x + ww);
            var tile = rgb[TensorIndex.Colon, TensorIndex.Colon, rows, cols];
            sum[TensorIndex.Colon, TensorIndex.Colon, rows, cols] += _network.call(tile);
            count[TensorIndex.Colon, TensorIndex.Colon, rows, cols] += 1;
        }
        return sum / count;
    }

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
