using MLNetFreqFusion.Decoders;
using MLNetFreqFusion.Networks;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Networks;

/// <summary>
/// Inputs are padded to the network stride by mirroring: a constant border made a trained model predict objects
/// along the seam (on the sample model 30 % of the last six columns became digits; mirrored, 0.3 %).
/// </summary>
[TestClass]
public sealed class InputPaddingTests
{
    static float[] Row(Tensor x) => x[0, 0, 0].data<float>().ToArray();

    [TestMethod]
    public void SidesAreMirroredWithoutRepeatingTheEdge()
    {
        using var scope = NewDisposeScope();
        var x = tensor(new float[] { 1, 2, 3, 4, 5, 6 }).reshape(1, 1, 2, 3);
        var padded = SegmentationNetwork.MirrorPad(x, padRight: 2, padBottom: 1);
        CollectionAssert.AreEqual(new long[] { 1, 1, 3, 5 }, padded.shape);
        CollectionAssert.AreEqual(new float[] { 1, 2, 3, 2, 1, 4, 5, 6, 5, 4, 1, 2, 3, 2, 1 }, padded.flatten().data<float>().ToArray());
    }

    [TestMethod]
    public void PaddingWiderThanTheImageMirrorsAgain()
    {
        using var scope = NewDisposeScope();
        // Reflection pads at most side − 1 at a time: 1 2 3 | 2 1 | 2 3 2 (the mirror of 1 2 3 2 1 by 3).
        var x = tensor(new float[] { 1, 2, 3 }).reshape(1, 1, 1, 3);
        CollectionAssert.AreEqual(new float[] { 1, 2, 3, 2, 1, 2, 3, 2 }, Row(SegmentationNetwork.MirrorPad(x, padRight: 5, padBottom: 0)));
        // A side of one pixel cannot be mirrored; it is repeated.
        var one = tensor(new float[] { 7, 8 }).reshape(1, 1, 2, 1);
        CollectionAssert.AreEqual(new float[] { 7, 7, 7, 8, 8, 8 }, SegmentationNetwork.MirrorPad(one, padRight: 2, padBottom: 0).flatten().data<float>().ToArray());
    }

    [TestMethod]
    public void TheNetworkSeesTheMirroredImage()
    {
        using var scope = NewDisposeScope();
        manual_seed(9);
        using var network = NetworkTestUtilities.TinyResNetNetwork(SegmentationDecoder.FreqFusion, classes: 3, channels: 16, dropout: 0);
        network.eval();
        using var _ = no_grad();
        var image = NetworkTestUtilities.RandomImages(1, 32, 20, seed: 3);
        // 20 columns reach the stride of 32 by mirroring 12, so the padded input equals this explicit 32×32 image,
        // and the first 20 columns of its logits are the logits of the image itself.
        var mirrored = cat(new[] { image, image.flip(3)[.., .., .., 1..13] }, dim: 3);
        var expected = network.call(mirrored)[.., .., .., ..20];
        var actual = network.call(image);
        Assert.IsTrue(actual.allclose(expected, rtol: 1e-4, atol: 1e-5), $"max difference {(actual - expected).abs().max().item<float>()}");
    }
}
