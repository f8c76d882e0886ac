using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Networks;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Backbones;

[TestClass]
public sealed class BackboneTests
{
    // torchvision's parameter counts (resnet18 11,689,512; resnet34 21,797,672; resnet50 25,557,032;
    // resnet101 44,549,160) minus the 1000-class fc layer (512·1000+1000 or 2048·1000+1000).
    [TestMethod]
    [DataRow(SegmentationBackbone.ResNet18, 11_176_512L)]
    [DataRow(SegmentationBackbone.ResNet34, 21_284_672L)]
    [DataRow(SegmentationBackbone.ResNet50, 23_508_032L)]
    [DataRow(SegmentationBackbone.ResNet101, 42_500_160L)]
    public void ResNetsHaveTorchvisionParameterCounts(SegmentationBackbone kind, long expected)
    {
        using var backbone = BackboneFactory.Create(kind, freezeBatchNorm: false);
        Assert.AreEqual(expected, backbone.parameters().Sum(p => p.numel()));
    }

    [TestMethod]
    public void ResNetStateDictUsesTorchvisionNames()
    {
        using var backbone = BackboneFactory.Create(SegmentationBackbone.ResNet50, freezeBatchNorm: false);
        var keys = backbone.state_dict().Keys.ToHashSet();
        foreach (var key in new[] { "conv1.weight", "bn1.running_var", "layer1.0.conv3.weight", "layer1.0.downsample.0.weight",
                     "layer2.0.downsample.1.running_mean", "layer3.5.bn2.bias", "layer4.2.conv2.weight" })
            Assert.Contains(key, keys);
        Assert.IsFalse(keys.Contains("layer1.1.downsample.0.weight"));
        Assert.IsFalse(keys.Any(k => k.StartsWith("fc.", StringComparison.Ordinal)));
        CollectionAssert.AreEqual(new[] { 256, 512, 1024, 2048 }, backbone.OutChannels.ToArray());
    }

    [TestMethod]
    public void MixTransformerStateDictUsesHuggingFaceSegformerNames()
    {
        using var backbone = BackboneFactory.Create(SegmentationBackbone.MiTB0, freezeBatchNorm: false);
        var state = backbone.state_dict();
        var expectedShapes = new Dictionary<string, long[]>
        {
            ["encoder.patch_embeddings.0.proj.weight"] = [32, 3, 7, 7],
            ["encoder.patch_embeddings.1.proj.weight"] = [64, 32, 3, 3],
            ["encoder.patch_embeddings.3.layer_norm.bias"] = [256],
            ["encoder.block.0.0.layer_norm_1.weight"] = [32],
            ["encoder.block.0.0.attention.self.query.weight"] = [32, 32],
            ["encoder.block.0.1.attention.self.sr.weight"] = [32, 32, 8, 8],
            ["encoder.block.2.1.attention.self.layer_norm.weight"] = [160],
            ["encoder.block.1.0.attention.output.dense.weight"] = [64, 64],
            ["encoder.block.3.1.mlp.dense1.weight"] = [1024, 256],
            ["encoder.block.3.1.mlp.dwconv.dwconv.weight"] = [1024, 1, 3, 3],
            ["encoder.block.3.1.mlp.dense2.bias"] = [256],
            ["encoder.layer_norm.3.weight"] = [256],
        };
        foreach (var (key, shape) in expectedShapes)
        {
            Assert.IsTrue(state.ContainsKey(key), key);
            CollectionAssert.AreEqual(shape, state[key].shape, key);
        }
        // The last stage attends over the full sequence: no spatial reduction there.
        Assert.IsFalse(state.ContainsKey("encoder.block.3.0.attention.self.sr.weight"));
    }

    // HuggingFace's nvidia/segformer-b0-finetuned-ade-512-512 (SegformerForSemanticSegmentation, 150 classes,
    // decoder width 256) has 3,752,694 parameters: the same encoder and all-MLP head must give the same count.
    [TestMethod]
    public void MiTB0WithTheSegFormerHeadHasHuggingFacesParameterCount()
    {
        using var network = SegmentationNetwork.Create(new SegmentationArchitecture
        {
            Backbone = SegmentationBackbone.MiTB0, Decoder = SegmentationDecoder.Bilinear, NumberOfClasses = 150,
        });
        Assert.AreEqual(3_752_694L, network.parameters().Sum(p => p.numel()));
        Assert.AreEqual(256, network.DecoderChannels);
        var keys = network.state_dict().Keys.ToHashSet();
        foreach (var key in new[] { "decode_head.linear_c.3.proj.weight", "decode_head.linear_fuse.weight", "decode_head.batch_norm.running_mean", "decode_head.classifier.bias" })
            Assert.Contains(key, keys);
    }

    [TestMethod]
    public void FrozenBatchNormKeepsItsStatisticsWhileTheHeadTrains()
    {
        using var scope = NewDisposeScope();
        manual_seed(11);
        using var network = Networks.NetworkTestUtilities.TinyResNetNetwork(SegmentationDecoder.BilinearFpn, classes: 3, freezeBatchNorm: true);
        network.train();
        var backboneNorms = network.BackboneModule.modules().OfType<BatchNorm2d>().ToList();
        var headNorms = network.DecodeHeadModule.modules().OfType<BatchNorm2d>().ToList();
        Assert.IsTrue(backboneNorms.Count > 0 && headNorms.Count > 0);
        Assert.IsTrue(backboneNorms.All(bn => !bn.training), "backbone batch norms must stay in eval mode");
        Assert.IsTrue(headNorms.All(bn => bn.training), "head batch norms train");
        var before = backboneNorms[0].running_mean!.clone();
        var headBefore = headNorms[0].running_mean!.clone();
        network.call(Networks.NetworkTestUtilities.RandomImages(2, 32, 32, seed: 12)).sum().backward();
        Assert.IsTrue(backboneNorms[0].running_mean!.eq(before).all().item<bool>());
        Assert.IsFalse(headNorms[0].running_mean!.eq(headBefore).all().item<bool>());
        Assert.IsNotNull(backboneNorms[0].weight!.grad, "frozen statistics, trainable affine weights");

        using var unfrozen = Networks.NetworkTestUtilities.TinyResNetNetwork(SegmentationDecoder.BilinearFpn, classes: 3, freezeBatchNorm: false);
        unfrozen.train();
        Assert.IsTrue(unfrozen.BackboneModule.modules().OfType<BatchNorm2d>().All(bn => bn.training));
        network.eval();
        Assert.IsTrue(network.modules().OfType<BatchNorm2d>().All(bn => !bn.training));
    }
}
