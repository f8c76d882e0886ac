using System.Collections;
using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Networks;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Networks;

[TestClass]
public sealed class CheckpointTests : TempFolderTests
{
    private string TempFile(string extension) => Path.Combine(Folder, "checkpoint" + extension);

    [TestMethod]
    [DataRow(".pt")]
    [DataRow(".safetensors")]
    public void AWholeNetworkRoundTripsThroughAPyTorchCheckpoint(string extension)
    {
        using var scope = NewDisposeScope();
        manual_seed(31);
        var path = TempFile(extension);
        using var original = NetworkTestUtilities.TinyResNetNetwork(SegmentationDecoder.BilinearFpn, classes: 4);
        // Move the batch-norm statistics away from their initial values so that buffers are checked too.
        original.train();
        original.call(NetworkTestUtilities.RandomImages(2, 32, 32, seed: 32));
        original.eval();
        original.SaveCheckpoint(path);

        manual_seed(33);
        using var copy = NetworkTestUtilities.TinyResNetNetwork(SegmentationDecoder.BilinearFpn, classes: 4);
        copy.eval();
        var images = NetworkTestUtilities.RandomImages(1, 45, 70, seed: 34);
        using var noGrad = no_grad();
        Assert.IsFalse(copy.call(images).allclose(original.call(images)), "fresh weights differ before loading");
        var result = copy.LoadCheckpoint(path);
        Assert.AreEqual(0, result.MissingKeys.Count + result.UnexpectedKeys.Count + result.ShapeMismatches.Count);
        Assert.AreEqual(original.state_dict().Count(p => !p.Key.EndsWith("num_batches_tracked")), result.LoadedKeys.Count(k => !k.EndsWith("num_batches_tracked")));
        Assert.IsTrue(copy.call(images).eq(original.call(images)).all().item<bool>(), "identical outputs after loading");
    }

    [TestMethod]
    public void StrictLoadingListsShapeMismatchesAndNonStrictLoadingSkipsThem()
    {
        using var scope = NewDisposeScope();
        var path = TempFile(".pth");
        using var fourClasses = NetworkTestUtilities.TinyResNetNetwork(SegmentationDecoder.Bilinear, classes: 4);
        fourClasses.SaveCheckpoint(path);
        using var sixClasses = NetworkTestUtilities.TinyResNetNetwork(SegmentationDecoder.Bilinear, classes: 6);
        var before = sixClasses.state_dict()["decode_head.classifier.weight"].clone();
        var stemBefore = sixClasses.state_dict()["backbone.conv1.weight"].clone();

        var error = Assert.ThrowsExactly<InvalidDataException>(() => sixClasses.LoadCheckpoint(path));
        StringAssert.Contains(error.Message, "decode_head.classifier.weight: checkpoint [4,16,1,1] vs network [6,16,1,1]");
        StringAssert.Contains(error.Message, "2 shape mismatches");
        Assert.IsTrue(sixClasses.state_dict()["backbone.conv1.weight"].eq(stemBefore).all().item<bool>(), "a failed strict load copies nothing");

        var result = sixClasses.LoadCheckpoint(path, strict: false);
        Assert.AreEqual(2, result.ShapeMismatches.Count);
        Assert.IsTrue(sixClasses.state_dict()["decode_head.classifier.weight"].eq(before).all().item<bool>());
        Assert.IsTrue(sixClasses.state_dict()["backbone.conv1.weight"].eq(fourClasses.state_dict()["backbone.conv1.weight"]).all().item<bool>());

        using var otherHead = NetworkTestUtilities.TinyResNetNetwork(SegmentationDecoder.BilinearFpn, classes: 4);
        var headError = Assert.ThrowsExactly<InvalidDataException>(() => otherHead.LoadCheckpoint(path));
        StringAssert.Contains(headError.Message, "missing (decode_head.lateral_convs.0.conv.weight");
        StringAssert.Contains(headError.Message, "13 unexpected (decode_head.batch_norm.bias");
        StringAssert.Contains(headError.Message, "decode_head.linear_c.0.proj.weight");
    }

    [TestMethod]
    public void ATorchvisionStyleResNetCheckpointLoadsIntoTheBackboneOnly()
    {
        using var scope = NewDisposeScope();
        var path = TempFile(".pth");
        // A torchvision checkpoint: backbone keys at top level plus the ImageNet classifier fc.*.
        var torchvision = new ResNet(false, [1, 1, 1, 1], 8, false, InputNormalization.ImageNet);
        var table = new Hashtable();
        foreach (var (key, value) in torchvision.state_dict())
            table[key] = value;
        table["fc.weight"] = randn(1000, 64);
        table["fc.bias"] = zeros(1000);
        PyTorchPickler.PickleStateDict(path, table);

        using var network = NetworkTestUtilities.TinyResNetNetwork(SegmentationDecoder.Bilinear, classes: 3);
        var head = network.state_dict()["decode_head.linear_fuse.weight"].clone();
        var result = network.LoadBackboneCheckpoint(path);
        CollectionAssert.AreEquivalent(new[] { "fc.weight", "fc.bias" }, result.UnexpectedKeys.ToArray());
        Assert.AreEqual(0, result.MissingKeys.Count);
        Assert.IsTrue(network.state_dict()["backbone.layer4.0.downsample.0.weight"].eq(torchvision.state_dict()["layer4.0.downsample.0.weight"]).all().item<bool>());
        Assert.IsTrue(network.state_dict()["decode_head.linear_fuse.weight"].eq(head).all().item<bool>());

        // The wrong architecture: strict backbone loading names what is missing.
        using var deeper = SegmentationNetwork.Assemble(new ResNet(false, [1, 1, 1, 2], 8, false, InputNormalization.ImageNet),
            new SegmentationArchitecture { NumberOfClasses = 3, Decoder = SegmentationDecoder.Bilinear }, 16);
        var error = Assert.ThrowsExactly<InvalidDataException>(() => deeper.LoadBackboneCheckpoint(path));
        StringAssert.Contains(error.Message, "layer4.1.conv1.weight");
        Assert.AreEqual(10, deeper.LoadBackboneCheckpoint(path, strict: false).MissingKeys.Count);
    }

    [TestMethod]
    public void AHuggingFaceSegformerCheckpointLoadsThroughPretrainedWeightsPath()
    {
        using var scope = NewDisposeScope();
        var path = TempFile(".safetensors");
        // SegformerForSemanticSegmentation keys: segformer.encoder.* plus its own decode_head.*.
        manual_seed(41);
        var encoder = BackboneFactory.Create(SegmentationBackbone.MiTB0, false);
        var state = encoder.state_dict().ToDictionary(p => "segformer." + p.Key, p => p.Value);
        state["decode_head.classifier.weight"] = randn(150, 256, 1, 1);
        Safetensors.SaveStateDict(path, state);

        manual_seed(42);
        using var network = SegmentationNetwork.Create(new SegmentationArchitecture
        {
            Backbone = SegmentationBackbone.MiTB0, Decoder = SegmentationDecoder.Bilinear, NumberOfClasses = 2,
        }, pretrainedWeightsPath: path);
        var loaded = network.state_dict();
        foreach (var (key, value) in encoder.state_dict())
            Assert.IsTrue(loaded["backbone." + key].eq(value).all().item<bool>(), key);
    }

    [TestMethod]
    public void UnsupportedOrMissingFilesAreReportedByPath()
    {
        using var network = NetworkTestUtilities.TinyResNetNetwork(SegmentationDecoder.Bilinear, classes: 2);
        var missing = TempFile(".pt");
        StringAssert.Contains(Assert.ThrowsExactly<FileNotFoundException>(() => network.LoadCheckpoint(missing)).Message, missing);
        var text = TempFile(".txt");
        File.WriteAllText(text, "not a checkpoint");
        StringAssert.Contains(Assert.ThrowsExactly<NotSupportedException>(() => network.LoadCheckpoint(text)).Message, ".safetensors");
    }

    [TestMethod]
    public void TorchSharpSaveAndLoadRoundTripForTheMLNetZip()
    {
        using var scope = NewDisposeScope();
        manual_seed(51);
        using var original = NetworkTestUtilities.TinyResNetNetwork(SegmentationDecoder.Bilinear, classes: 3);
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
            original.save(writer);
        stream.Position = 0;
        manual_seed(52);
        using var copy = NetworkTestUtilities.TinyResNetNetwork(SegmentationDecoder.Bilinear, classes: 3);
        using (var reader = new BinaryReader(stream))
            copy.load(reader, strict: true);
        original.eval();
        copy.eval();
        using var noGrad = no_grad();
        var images = NetworkTestUtilities.RandomImages(1, 40, 50, seed: 53);
        Assert.IsTrue(copy.call(images).eq(original.call(images)).all().item<bool>());
    }
}
