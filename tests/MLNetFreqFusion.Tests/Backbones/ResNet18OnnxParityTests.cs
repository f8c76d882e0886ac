using System.Reflection;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Networks;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Backbones;

[TestClass]
public sealed class ResNet18OnnxParityTests
{
    private static string PackageOnnxPath()
    {
        var folder = typeof(ResNet18OnnxParityTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == "ResNet18PackageFolder").Value;
        Assert.IsFalse(string.IsNullOrEmpty(folder), "The test project must reference Microsoft.ML.DnnImageFeaturizer.ResNet18 with GeneratePathProperty.");
        return Path.Combine(folder!, "tools", "DnnImageModels", "ResNet18Onnx", "ResNet18.onnx");
    }

    [TestMethod]
    public void PooledFinalStageMatchesOnnxRuntime()
    {
        using var scope = NewDisposeScope();
        var onnxPath = PackageOnnxPath();
        var backbone = (ResNet)BackboneFactory.Create(SegmentationBackbone.ResNet18ImageNet, freezeBatchNorm: false);
        ResNet18OnnxWeights.Load(backbone, onnxPath);
        backbone.eval();

        // ResNet18.onnx takes the already preprocessed image (BGR minus the mean image), values around ±128.
        var generator = new Generator(21);
        var input = (rand([1, 3, 224, 224], generator: generator) * 255f - 120f).contiguous();
        var values = input.data<float>().ToArray();

        using var session = new InferenceSession(onnxPath);
        var inputName = session.InputMetadata.Keys.Single();
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(inputName, new DenseTensor<float>(values, [1, 3, 224, 224]))]);
        var expected = results.Single().AsEnumerable<float>().ToArray();
        Assert.AreEqual(512, expected.Length);

        using var noGrad = no_grad();
        var pooled = backbone.call(input)[3].mean([2, 3]).flatten();
        var actual = pooled.data<float>().ToArray();
        double maxDifference = expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max();
        Assert.IsTrue(maxDifference < 1e-4, $"max |onnx - ours| = {maxDifference:E2}");
        Assert.IsTrue(expected.Max() > 0.1, "the pooled features are not trivially zero");
    }

    [TestMethod]
    public void TheNetworkFindsThePackageCopyInTheBuildOutputAndLoadsIt()
    {
        using var scope = NewDisposeScope();
        var found = PretrainedModels.FindResNet18Onnx();
        Assert.IsNotNull(found, "the package's props copy DnnImageModels/ into the test output");
        Assert.IsNull(PretrainedModels.FindResNet18Onnx(Path.GetTempPath()));

        using var network = SegmentationNetwork.Create(new SegmentationArchitecture
        {
            Backbone = SegmentationBackbone.ResNet18ImageNet, Decoder = SegmentationDecoder.Bilinear, NumberOfClasses = 2,
        });
        var stem = network.state_dict()["backbone.conv1.weight"];
        var map = ResNet18OnnxWeights.ReadMap();
        Assert.AreEqual(110, map.Count);
        var reference = (ResNet)BackboneFactory.Create(SegmentationBackbone.ResNet18ImageNet, false);
        ResNet18OnnxWeights.Load(reference, PackageOnnxPath());
        Assert.IsTrue(stem.eq(reference.state_dict()["conv1.weight"]).all().item<bool>());
        Assert.IsTrue(network.state_dict()["backbone.layer4.2.bn2.running_var"].eq(reference.state_dict()["layer4.2.bn2.running_var"]).all().item<bool>());
    }

    [TestMethod]
    public void AMissingOnnxFileIsReportedWithTheFixAndOtherBackbonesRejectOnnx()
    {
        var missing = Path.Combine(Path.GetTempPath(), "no-such-dir", "ResNet18.onnx");
        var error = Assert.ThrowsExactly<FileNotFoundException>(() => SegmentationNetwork.Create(new SegmentationArchitecture
        {
            Backbone = SegmentationBackbone.ResNet18ImageNet, NumberOfClasses = 2, Decoder = SegmentationDecoder.Bilinear,
        }, pretrainedWeightsPath: missing));
        StringAssert.Contains(error.Message, "Microsoft.ML.DnnImageFeaturizer.ResNet18");
        Assert.ThrowsExactly<NotSupportedException>(() => SegmentationNetwork.Create(new SegmentationArchitecture
        {
            Backbone = SegmentationBackbone.ResNet18, NumberOfClasses = 2, Decoder = SegmentationDecoder.Bilinear,
        }, pretrainedWeightsPath: PackageOnnxPath()));
    }
}
