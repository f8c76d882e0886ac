using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Networks;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Networks;

[TestClass]
public sealed class SegmentationNetworkShapeTests
{
    private static readonly SegmentationDecoder[] AllDecoders = Enum.GetValues<SegmentationDecoder>();

    [TestMethod]
    [DataRow(SegmentationBackbone.ResNet18)]
    [DataRow(SegmentationBackbone.MiTB0)]
    public void EveryDecoderGivesLogitsOfTheInputSize(SegmentationBackbone backbone)
    {
        foreach (var decoder in AllDecoders)
        {
            using var scope = NewDisposeScope();
            manual_seed(1);
            using var network = SegmentationNetwork.Create(new SegmentationArchitecture
            {
                Backbone = backbone, Decoder = decoder, NumberOfClasses = 5, DecoderChannels = 32,
            });
            network.eval();
            foreach (var (h, w) in new[] { (61, 83), (17, 40) })
            {
                using var noGrad = no_grad();
                var logits = network.call(NetworkTestUtilities.RandomImages(1, h, w, seed: h));
                CollectionAssert.AreEqual(new long[] { 1, 5, h, w }, logits.shape, $"{backbone} + {decoder} at {h}×{w}");
                Assert.IsTrue(logits.isfinite().all().item<bool>(), $"{backbone} + {decoder}: non-finite logits");
            }
        }
    }

    [TestMethod]
    [DataRow(SegmentationBackbone.ResNet34, SegmentationDecoder.Bilinear)]
    [DataRow(SegmentationBackbone.ResNet50, SegmentationDecoder.FreqFusionFpn)]
    [DataRow(SegmentationBackbone.ResNet101, SegmentationDecoder.BilinearFpn)]
    [DataRow(SegmentationBackbone.ResNet18ImageNet, SegmentationDecoder.FreqFusion)]
    [DataRow(SegmentationBackbone.MiTB1, SegmentationDecoder.FreqFusion)]
    [DataRow(SegmentationBackbone.MiTB2, SegmentationDecoder.Bilinear)]
    [DataRow(SegmentationBackbone.MiTB3, SegmentationDecoder.BilinearFpn)]
    [DataRow(SegmentationBackbone.MiTB4, SegmentationDecoder.FreqFusionFpn)]
    [DataRow(SegmentationBackbone.MiTB5, SegmentationDecoder.Bilinear)]
    public void OtherBackbonesGiveLogitsOfTheInputSize(SegmentationBackbone backbone, SegmentationDecoder decoder)
    {
        using var scope = NewDisposeScope();
        manual_seed(2);
        using var network = SegmentationNetwork.Create(
            new SegmentationArchitecture { Backbone = backbone, Decoder = decoder, NumberOfClasses = 3, DecoderChannels = 32 },
            loadPretrainedWeights: false);
        network.eval();
        using var noGrad = no_grad();
        var logits = network.call(NetworkTestUtilities.RandomImages(1, 61, 83, seed: 3));
        CollectionAssert.AreEqual(new long[] { 1, 3, 61, 83 }, logits.shape);
        Assert.IsTrue(logits.isfinite().all().item<bool>());
    }

    [TestMethod]
    public void DecoderFeaturesAreTheFusedMapAtAQuarterOfTheInput()
    {
        using var scope = NewDisposeScope();
        manual_seed(4);
        using var network = NetworkTestUtilities.TinyResNetNetwork(SegmentationDecoder.BilinearFpn, classes: 4, channels: 16);
        network.eval();
        using var noGrad = no_grad();
        var images = NetworkTestUtilities.RandomImages(2, 61, 83, seed: 5);
        var features = network.DecoderFeatures(images);
        CollectionAssert.AreEqual(new long[] { 2, 16, 16, 21 }, features.shape);
        Assert.AreEqual(16, network.DecoderChannels);
    }

    [TestMethod]
    public void AnAlignedImageIsNormalisedButNotPadded()
    {
        // Sides that are multiples of 32 are not padded: forward is head(backbone(normalised image)) upsampled.
        using var scope = NewDisposeScope();
        manual_seed(6);
        using var network = NetworkTestUtilities.TinyResNetNetwork(SegmentationDecoder.Bilinear, classes: 3);
        network.eval();
        using var noGrad = no_grad();
        var images = NetworkTestUtilities.RandomImages(1, 64, 96, seed: 7);
        var logits = network.call(images);
        var normalised = InputNormalization.ImageNet.Apply(images);
        var expected = nn.functional.interpolate(
            network.DecodeHeadModule.call(network.BackboneModule.call(normalised)), [64, 96],
            mode: InterpolationMode.Bilinear, align_corners: false);
        Assert.IsTrue(logits.allclose(expected, rtol: 0, atol: 1e-5));
    }

    [TestMethod]
    public void InvalidInputsAndOptionsAreRejectedWithTheirValues()
    {
        using var scope = NewDisposeScope();
        using var network = NetworkTestUtilities.TinyResNetNetwork(SegmentationDecoder.Bilinear, classes: 2);
        var gray = zeros(1, 1, 32, 32);
        var error = Assert.ThrowsExactly<ArgumentException>(() => network.call(gray));
        StringAssert.Contains(error.Message, "[1,1,32,32]");
        var bytes = zeros(1, 3, 32, 32, dtype: ScalarType.Byte);
        Assert.ThrowsExactly<ArgumentException>(() => network.call(bytes));

        var noClasses = Assert.ThrowsExactly<ArgumentException>(() => SegmentationNetwork.Create(new SegmentationArchitecture()));
        StringAssert.Contains(noClasses.Message, "NumberOfClasses");
        var badStages = Assert.ThrowsExactly<ArgumentException>(() => SegmentationNetwork.Create(
            new SegmentationArchitecture { NumberOfClasses = 2, DecoderInputStages = [2, 1] }));
        StringAssert.Contains(badStages.Message, "[2, 1]");
    }

    [TestMethod]
    public void FewerDecoderInputStagesStillGiveFullSizeLogits()
    {
        using var scope = NewDisposeScope();
        manual_seed(8);
        var backbone = new ResNet(false, [1, 1, 1, 1], 8, false, InputNormalization.ImageNet);
        using var network = SegmentationNetwork.Assemble(backbone,
            new SegmentationArchitecture { NumberOfClasses = 3, Decoder = SegmentationDecoder.BilinearFpn, DecoderInputStages = [1, 2, 3] }, 16);
        network.eval();
        using var noGrad = no_grad();
        var images = NetworkTestUtilities.RandomImages(1, 61, 83, seed: 9);
        CollectionAssert.AreEqual(new long[] { 1, 3, 61, 83 }, network.call(images).shape);
        CollectionAssert.AreEqual(new long[] { 1, 16, 8, 11 }, network.DecoderFeatures(images).shape);
    }
}
