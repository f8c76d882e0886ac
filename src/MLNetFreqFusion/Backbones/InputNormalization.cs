using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Backbones;

/// <summary>
/// How a backbone expects its pixels: the network receives RGB in 0..255 and applies this before the encoder,
/// so users never have to know which convention the pretrained weights were trained with.
/// </summary>
internal sealed class InputNormalization
{
    /// <summary>torchvision / ImageNet: RGB scaled to 0..1, minus mean, divided by std.</summary>
    public static InputNormalization ImageNet { get; } =
        new(toBgr: false, scale: 1.0 / 255.0, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]);

    /// <summary>
    /// ResNetPreprocess.onnx of Microsoft.ML.DnnImageFeaturizer.ResNet18: channels reordered to BGR, 0..255,
    /// minus the per-channel mean of its mean image, no division.
    /// </summary>
    public static InputNormalization MLNetResNet18 { get; } =
        new(toBgr: true, scale: 1.0, mean: ResNet18OnnxWeights.BgrMean, std: [1.0, 1.0, 1.0]);

    private readonly double[] _mean;
    private readonly double[] _std;

    public InputNormalization(bool toBgr, double scale, double[] mean, double[] std)
    {
        if (mean.Length != 3 || std.Length != 3)
            throw new ArgumentException("Mean and standard deviation need one value per colour channel (3).");
        ToBgr = toBgr;
        Scale = scale;
        _mean = mean;
        _std = std;
    }

    /// <summary>Whether the backbone wants the channels in BGR order (mean/std are then given in BGR order too).</summary>
    public bool ToBgr { get; }

    /// <summary>Factor applied to the 0..255 values before the mean is subtracted.</summary>
    public double Scale { get; }

    /// <summary>Per-channel mean, in the backbone's channel order and after scaling.</summary>
    public IReadOnlyList<double> Mean => _mean;

    /// <summary>Per-channel standard deviation, in the backbone's channel order and after scaling.</summary>
    public IReadOnlyList<double> Std => _std;

    /// <summary>Maps [B,3,H,W] RGB 0..255 to the backbone's input convention.</summary>
    public Tensor Apply(Tensor rgb)
    {
        var x = ToBgr ? rgb.flip(1) : rgb;
        var mean = tensor(_mean.Select(v => (float)v).ToArray(), dtype: rgb.dtype, device: rgb.device).view(1, 3, 1, 1);
        var inverseStd = tensor(_std.Select(v => (float)(1.0 / v)).ToArray(), dtype: rgb.dtype, device: rgb.device).view(1, 3, 1, 1);
        return (x * Scale - mean) * inverseStd;
    }
}
