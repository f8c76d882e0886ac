using Microsoft.ML.Data;
using MLNetFreqFusion.Data;
using MLNetFreqFusion.Networks;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Inference;

/// <summary>
/// Predicts the mask of one image at its own size: the whole image at once (the network pads to its stride and
/// crops back), or overlapping sliding windows whose logits are averaged when a side exceeds the window size;
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

    /// <summary>The predicted mask; <paramref name="probabilities"/> receives K×H×W class probabilities when asked for.</summary>
    public SegmentationMask Predict(MLImage image, float[]? probabilities = null)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        _network.eval();
        var rgb = ImageTensorConverter.ToTensor(image).unsqueeze(0).to(_device);
        var logits = Logits(rgb);
        if (probabilities is not null)
        {
            var p = logits.softmax(1).squeeze(0).contiguous().cpu();
            p.data<float>().CopyTo(probabilities);
        }
        // Class indices fit in 16 bits (masks are ushort), so the int16 copy is reinterpreted rather than converted.
        var labels = logits.argmax(1).squeeze(0).to(ScalarType.Int16).cpu().contiguous();
        var mask = System.Runtime.InteropServices.MemoryMarshal.Cast<short, ushort>(labels.data<short>().ToArray()).ToArray();
        return new SegmentationMask(image.Width, image.Height, mask, _settings.ClassNames);
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
        var sum = zeros(1, _settings.NumberOfClasses, h, w, device: rgb.device);
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
