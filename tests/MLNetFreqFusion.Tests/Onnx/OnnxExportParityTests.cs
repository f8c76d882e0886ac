using MLNetFreqFusion.Tests.Networks;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Onnx;

/// <summary>
/// The exported graph in ONNX Runtime against the TorchSharp forward of the same modules (in float64), for every
/// backbone layout × decoder, on a square, an odd-sized (mirror padding and cropping) and a wide image, and a batch of two.
/// </summary>
[TestClass]
public sealed class OnnxExportParityTests
{
    const double AbsoluteTolerance = 1e-4, RelativeTolerance = 1e-4;
    static readonly (int Batch, int Height, int Width)[] Cases = [(1, 64, 64), (1, 61, 83), (1, 96, 160), (2, 61, 83)];

    [TestMethod]
    [DataRow(SegmentationBackbone.ResNet18)]
    [DataRow(SegmentationBackbone.ResNet34)]
    [DataRow(SegmentationBackbone.ResNet50)]
    [DataRow(SegmentationBackbone.ResNet101)]
    [DataRow(SegmentationBackbone.ResNet18ImageNet)]
    [DataRow(SegmentationBackbone.MiTB0)]
    [DataRow(SegmentationBackbone.MiTB1)]
    [DataRow(SegmentationBackbone.MiTB2)]
    [DataRow(SegmentationBackbone.MiTB3)]
    [DataRow(SegmentationBackbone.MiTB4)]
    [DataRow(SegmentationBackbone.MiTB5)]
    public void LogitsAndLabelsMatchTorchSharpForEveryDecoder(SegmentationBackbone backbone)
    {
        var failures = new List<string>();
        foreach (var decoder in Enum.GetValues<SegmentationDecoder>())
        {
            using var network = OnnxTestSupport.TinyNetwork(backbone, decoder, classes: 5, seed: 7);
            using var session = OnnxTestSupport.Session(OnnxTestSupport.Export(network));
            // The TorchSharp side runs in float64 (see ReferenceLogits) after the float32 export.
            foreach (var (batch, height, width) in Cases)
            {
                using var scope = NewDisposeScope();
                var rgb = NetworkTestUtilities.RandomImages(batch, height, width, seed: height * 1000 + width + batch);
                var expected = OnnxTestSupport.ReferenceLogits(network, rgb);
                var (logits, shape, labels, labelsShape) = OnnxTestSupport.Run(session, OnnxTestSupport.ToArray(rgb), rgb.shape);
                string what = $"{backbone} + {decoder}, {batch}×{height}×{width}";
                CollectionAssert.AreEqual(expected.shape, shape, $"{what}: logits shape");
                CollectionAssert.AreEqual(new long[] { batch, height, width }, labelsShape, $"{what}: labels shape");
                failures.AddRange(CompareLogits(OnnxTestSupport.ToArray(expected), logits, what));
                failures.AddRange(CompareLabels(expected, labels, what));
            }
        }
        Assert.AreEqual(0, failures.Count, string.Join(Environment.NewLine, failures));
    }

    /// <summary>The failure message when the logits are not allclose, else nothing; prints the largest difference either way.</summary>
    internal static IEnumerable<string> CompareLogits(float[] expected, float[] actual, string what)
    {
        Assert.AreEqual(expected.Length, actual.Length, what);
        double worst = 0, largest = 0;
        int bad = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double difference = Math.Abs(expected[i] - actual[i]);
            worst = Math.Max(worst, difference);
            largest = Math.Max(largest, Math.Abs(expected[i]));
            if (!(difference <= AbsoluteTolerance + RelativeTolerance * Math.Abs(expected[i])))
                bad++;
        }
        Console.WriteLine($"{what}: max |Δ| = {worst:E2}, max |logit| = {largest:F2}");
        if (bad > 0)
            yield return $"{what}: {bad} of {expected.Length} logits differ by more than {AbsoluteTolerance} + {RelativeTolerance}·|x| (max |Δ| {worst:E2}).";
    }

    /// <summary>Labels may differ only where the two best TorchSharp logits are within the tolerance of each other.</summary>
    static IEnumerable<string> CompareLabels(Tensor logits, long[] labels, string what)
    {
        var expected = logits.argmax(1).flatten().data<long>().ToArray();
        var top2 = logits.topk(2, dim: 1).values;
        var margin = (top2[.., 0] - top2[.., 1]).flatten().data<float>().ToArray();
        int differing = 0, nonTies = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            if (expected[i] == labels[i])
                continue;
            differing++;
            if (margin[i] > 2 * AbsoluteTolerance)
                nonTies++;
        }
        if (nonTies > 0)
            yield return $"{what}: {nonTies} labels differ where the logits are not tied ({differing} differ in all).";
    }
}
