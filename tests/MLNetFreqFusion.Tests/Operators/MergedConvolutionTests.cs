using MLNetFreqFusion.Operators;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Operators;

[TestClass]
public sealed class MergedConvolutionTests
{
    /// <summary>
    /// Convolutions that read one input, computed as one convolution to all their channels, must give each its own
    /// output and the same input, weight and bias gradients, in every formulation the merged convolution can take;
    /// float64 so any difference is a real one.
    /// </summary>
    [TestMethod]
    public void MergedConvolutionsEqualEachConvolutionAndItsGradients()
    {
        manual_seed(21);
        var cases = new (string What, long[] Shape, Func<Conv2d[]> Convs, SpatialConvolution.Formulation Expected)[]
        {
            ("1×1", new long[] { 2, 6, 5, 7 }, () => [nn.Conv2d(6, 3, 1, dtype: float64), nn.Conv2d(6, 4, 1, dtype: float64)], SpatialConvolution.Formulation.Pointwise),
            ("3×3 to few channels", new long[] { 2, 16, 6, 7 }, () => [nn.Conv2d(16, 3, 3, padding: 1, dtype: float64), nn.Conv2d(16, 4, 3, padding: 1, dtype: float64)], SpatialConvolution.Formulation.TapProducts),
            ("3×3 dilation 2, no bias", new long[] { 1, 20, 9, 8 }, () => [nn.Conv2d(20, 4, 3, padding: 2, dilation: 2, bias: false, dtype: float64), nn.Conv2d(20, 5, 3, padding: 2, dilation: 2, bias: false, dtype: float64)], SpatialConvolution.Formulation.TapProducts),
            ("3×3 to many channels", new long[] { 2, 6, 6, 5 }, () => [nn.Conv2d(6, 5, 3, padding: 1, dtype: float64), nn.Conv2d(6, 4, 3, padding: 1, dtype: float64)], SpatialConvolution.Formulation.Module),
            ("3×3 with 17 MB of columns", new long[] { 1, 24, 100, 100 }, () => [nn.Conv2d(24, 16, 3, padding: 1, dtype: float64), nn.Conv2d(24, 12, 3, padding: 1, dtype: float64)], SpatialConvolution.Formulation.Bands),
            ("three 3×3", new long[] { 1, 30, 5, 6 }, () => [nn.Conv2d(30, 2, 3, padding: 1, dtype: float64), nn.Conv2d(30, 3, 3, padding: 1, dtype: float64), nn.Conv2d(30, 1, 3, padding: 1, dtype: float64)], SpatialConvolution.Formulation.TapProducts),
        };
        foreach (var (what, shape, makeConvs, expected) in cases)
        {
            using var scope = NewDisposeScope();
            var convs = makeConvs();
            var x = randn(shape, float64).requires_grad_();
            Assert.AreEqual(expected, SpatialConvolution.Choose(convs[0], convs.Sum(c => c.weight!.shape[0]), x), what);
            AssertSameAsEach(convs, x, what);
            foreach (var conv in convs)
                conv.Dispose();
        }
    }

    /// <summary>Convolutions that differ in geometry or in having a bias run one by one, each as itself.</summary>
    [TestMethod]
    public void ConvolutionsOfDifferentGeometryRunOneByOne()
    {
        using var scope = NewDisposeScope();
        manual_seed(22);
        var x = randn(new long[] { 1, 12, 6, 6 }, float64).requires_grad_();
        foreach (var (what, convs) in new (string, Conv2d[])[]
        {
            ("3×3 and 1×1", [nn.Conv2d(12, 3, 3, padding: 1, dtype: float64), nn.Conv2d(12, 2, 1, dtype: float64)]),
            ("padding 1 and 2", [nn.Conv2d(12, 3, 3, padding: 1, dtype: float64), nn.Conv2d(12, 2, 3, padding: 2, dtype: float64)]),
            ("with and without bias", [nn.Conv2d(12, 3, 3, padding: 1, dtype: float64), nn.Conv2d(12, 2, 3, padding: 1, bias: false, dtype: float64)]),
            ("reflect padding", [nn.Conv2d(12, 3, 3, padding: 1, padding_mode: TorchSharp.PaddingModes.Reflect, dtype: float64), nn.Conv2d(12, 2, 3, padding: 1, padding_mode: TorchSharp.PaddingModes.Reflect, dtype: float64)]),
        })
            AssertSameAsEach(convs, x, what);
    }

    static void AssertSameAsEach(Conv2d[] convs, Tensor x, string what)
    {
        var expected = convs.Select(conv => conv.call(x)).ToArray();
        var actual = SpatialConvolution.Forward(convs, x);
        Assert.AreEqual(convs.Length, actual.Length, what);
        for (int i = 0; i < convs.Length; i++)
        {
            CollectionAssert.AreEqual(expected[i].shape, actual[i].shape, $"{what}: output {i}");
            Assert.IsTrue(actual[i].allclose(expected[i], rtol: 1e-12, atol: 1e-12), $"{what}: output {i} differs");
        }
        var inputs = new List<Tensor> { x };
        foreach (var conv in convs)
        {
            inputs.Add(conv.weight!);
            if (conv.bias is not null)
                inputs.Add(conv.bias);
        }
        var names = inputs.Select((_, i) => i == 0 ? "the input" : $"parameter {i} (each weight and bias in turn)").ToArray();
        GradientAssert.Same(actual, expected, inputs, names, rtol: 1e-10, atol: 1e-10, what);
        using (no_grad())
        {
            var withoutAutograd = SpatialConvolution.Forward(convs, x);
            for (int i = 0; i < convs.Length; i++)
                Assert.IsTrue(withoutAutograd[i].allclose(expected[i], rtol: 1e-12, atol: 1e-12), $"{what}: output {i} without autograd differs");
        }
    }
}
