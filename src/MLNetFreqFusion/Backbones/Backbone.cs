using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MLNetFreqFusion.Backbones;

/// <summary>
/// An encoder that turns a normalised image [B,3,H,W] (H and W multiples of 32) into four feature maps at
/// strides 4, 8, 16 and 32, ordered from high to low resolution.
/// </summary>
internal abstract class Backbone : Module<Tensor, Tensor[]>
{
    protected Backbone(string name, bool freezeBatchNorm) : base(name)
    {
        Native.LibTorchRuntime.EnsureConfigured();
        FreezeBatchNorm = freezeBatchNorm;
    }

    /// <summary>Channels of the four returned feature maps (strides 4, 8, 16, 32).</summary>
    public abstract IReadOnlyList<int> OutChannels { get; }

    /// <summary>The input convention the weights of this backbone expect.</summary>
    public abstract InputNormalization Normalization { get; }

    /// <summary>
    /// When set, batch-norm layers stay in eval mode in training (running statistics are used and not updated),
    /// which is the usual choice when fine-tuning with small batches. Their affine weights keep training.
    /// </summary>
    public bool FreezeBatchNorm { get; }

    public override void train(bool train = true)
    {
        base.train(train);
        if (train && FreezeBatchNorm)
        {
            foreach (var module in modules())
            {
                if (module is BatchNorm2d bn)
                    bn.eval();
            }
        }
    }
}
