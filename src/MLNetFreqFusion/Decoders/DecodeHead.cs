using MLNetFreqFusion.Operators;
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
    // Not private: RegisterComponents reflects over the concrete head, which sees inherited fields only when they are
    // not private. It lists them after the head's own fields, so dropout and classifier stay the last state-dict keys.
    private protected Dropout2d? dropout;
    private protected Conv2d? classifier;

    protected DecodeHead(string name) : base(name)
    {
        Native.LibTorchRuntime.EnsureConfigured();
    }

    /// <summary>Width of the fused feature map that feeds the classifier.</summary>
    public int Channels { get; private set; }

    /// <summary>The fused feature map before dropout and classifier, at the first feature's resolution.</summary>
    public abstract Tensor ForwardFeatures(Tensor[] features);

    public override Tensor forward(Tensor[] features)
    {
        if (dropout is null || classifier is null)
            throw new InvalidOperationException($"{GetType().Name} did not call {nameof(AddClassifier)} in its constructor.");
        return SpatialConvolution.Forward(classifier, dropout.call(ForwardFeatures(features)));
    }

    /// <summary>
    /// Adds the dropout and the classifier and registers the head's modules, so it is the last call of a head's
    /// constructor. Coming last, the classifier draws its random weights after the head's own layers: a seed gives the
    /// same network in every head, and the published key order holds.
    /// </summary>
    /// <remarks>
    /// The classifier keeps PyTorch's default initialisation (Kaiming-uniform with a = √5, bias uniform in
    /// ±1/√channels), not mmseg's normal(0, 0.01) with zero bias: with mmseg's, short runs sat at the all-background
    /// answer for the first epochs, and without class weights for all 12 (our trainer and the plain PyTorch loop
    /// alike, docs/benchmarks.md §10).
    /// </remarks>
    private protected void AddClassifier(int channels, int numberOfClasses, double dropoutRatio)
    {
        Channels = channels;
        dropout = Dropout2d(dropoutRatio);
        classifier = Conv2d(channels, numberOfClasses, 1);
        RegisterComponents();
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

    public override Tensor forward(Tensor x) => functional.relu(bn.call(SpatialConvolution.Forward(conv, x)));
}
