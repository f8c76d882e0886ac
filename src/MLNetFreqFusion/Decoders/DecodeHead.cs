using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MLNetFreqFusion.Decoders;

/// <summary>
/// A decoder head: takes the selected backbone features (high to low resolution) and returns class logits at the
/// resolution of the first one. Every head ends in the same dropout + 1×1 classifier.
/// </summary>
internal abstract class DecodeHead : Module<Tensor[], Tensor>
{
    protected DecodeHead(string name) : base(name)
    {
    }

    /// <summary>Width of the fused feature map that feeds the classifier.</summary>
    public abstract int Channels { get; }

    /// <summary>The fused feature map before dropout and classifier, at the first feature's resolution.</summary>
    public abstract Tensor ForwardFeatures(Tensor[] features);

    /// <summary>The classifier's parameters (a subset of the head's).</summary>
    public abstract IEnumerable<Parameter> ClassifierParameters();

    /// <summary>mmseg's initialisation of the classifier: normal with std 0.01, zero bias.</summary>
    protected static Conv2d Classifier(int channels, int numberOfClasses)
    {
        var classifier = Conv2d(channels, numberOfClasses, 1);
        init.normal_(classifier.weight!, 0, 0.01);
        init.zeros_(classifier.bias!);
        return classifier;
    }

    protected static void CheckFeatures(Tensor[] features, int expected, string head)
    {
        if (features.Length != expected)
            throw new ArgumentException($"The {head} head was built for {expected} feature maps but received {features.Length}.", nameof(features));
    }
}

/// <summary>Convolution without bias, batch norm and ReLU (mmcv's ConvModule; the keys are conv.* and bn.*).</summary>
internal sealed class ConvModule : Module<Tensor, Tensor>
{
    private readonly Conv2d conv;
    private readonly BatchNorm2d bn;

    public ConvModule(int inChannels, int outChannels, int kernelSize) : base(nameof(ConvModule))
    {
        conv = Conv2d(inChannels, outChannels, kernelSize, padding: kernelSize / 2, bias: false);
        bn = BatchNorm2d(outChannels);
        RegisterComponents();
        init.kaiming_normal_(conv.weight!, mode: init.FanInOut.FanOut, nonlinearity: init.NonlinearityType.ReLU);
    }

    public override Tensor forward(Tensor x) => functional.relu(bn.call(conv.call(x)));
}
