using MLNetFreqFusion.Networks;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Benchmarks.Infrastructure;

/// <summary>The networks the benchmarks time and the training step they take.</summary>
static class BenchmarkNetwork
{
    /// <summary>
    /// A network with random weights: the timings do not depend on the weights' values, and benchmarks must not
    /// need the pretrained files.
    /// </summary>
    public static SegmentationNetwork Create(SegmentationBackbone backbone, SegmentationDecoder decoder, int classes, int? decoderChannels = null)
    {
        var architecture = new SegmentationArchitecture { Backbone = backbone, Decoder = decoder, NumberOfClasses = classes };
        return SegmentationNetwork.Create(decoderChannels is int c ? architecture with { DecoderChannels = c } : architecture, loadPretrainedWeights: false);
    }

    /// <summary>
    /// One training step in training mode: forward, cross-entropy (ignore 255), backward, optimiser step, then what the
    /// trainer does after every step (<see cref="Native.FinalizedScalars"/>), so that benchmarks time and measure the memory users get.
    /// </summary>
    public static void TrainingStep(SegmentationNetwork network, AdamW optimizer, Tensor images, Tensor labels)
    {
        network.train();
        using (var scope = NewDisposeScope())
        {
            optimizer.zero_grad();
            var loss = nn.functional.cross_entropy(network.call(images), labels, ignore_index: 255);
            loss.backward();
            optimizer.step();
        }
        Native.FinalizedScalars.AfterNetworkCall(images);
    }
}
