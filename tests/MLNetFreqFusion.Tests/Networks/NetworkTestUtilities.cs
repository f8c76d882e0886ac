using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Networks;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Networks;

internal static class NetworkTestUtilities
{
    /// <summary>A ResNet with one basic block per stage and width 8: channels 8-16-32-64, fast enough for training tests.</summary>
    public static SegmentationNetwork TinyResNetNetwork(SegmentationDecoder decoder, int classes, int channels = 16, bool freezeBatchNorm = false, double dropout = 0.1)
    {
        var backbone = new ResNet(false, [1, 1, 1, 1], 8, freezeBatchNorm, InputNormalization.ImageNet);
        var options = new SegmentationArchitecture
        {
            Backbone = SegmentationBackbone.ResNet18,
            Decoder = decoder,
            NumberOfClasses = classes,
            DecoderChannels = channels,
            DropoutRatio = dropout,
        };
        return SegmentationNetwork.Assemble(backbone, options, channels);
    }

    public static Tensor RandomImages(int batch, int height, int width, int seed)
    {
        var generator = new Generator((ulong)seed);
        return rand([batch, 3, height, width], generator: generator) * 255f;
    }
}
