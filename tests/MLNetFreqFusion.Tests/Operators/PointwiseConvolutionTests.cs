using MLNetFreqFusion.Operators;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Operators;

[TestClass]
public sealed class PointwiseConvolutionTests
{
    /// <summary>
    /// As batched products, a 1×1 convolution must equal the module's own forward and give the same input, weight and
    /// bias gradients: one and several images, one pixel and non-square maps, more and fewer outputs than inputs;
    /// float64 so any difference is a real one.
    /// </summary>
    [TestMethod]
    public void PointwiseProductsEqualTheModuleForwardAndBackward()
    {
        manual_seed(16);
        int cases = 0;
        foreach (var (b, cin, cout, h, w) in new[] { (1L, 5L, 3L, 1L, 1L), (2, 7, 11, 4, 9), (3, 16, 4, 6, 5), (2, 1, 2, 3, 3) })
        foreach (bool bias in new[] { true, false })
        {
            using var scope = NewDisposeScope();
            using var conv = nn.Conv2d(cin, cout, 1, bias: bias, dtype: float64);
            var x = randn(new[] { b, cin, h, w }, float64).requires_grad_();
            string what = $"x [{b}, {cin}, {h}, {w}] → {cout}, bias {bias}";
            Assert.AreEqual(SpatialConvolution.Formulation.Pointwise, SpatialConvolution.Choose(conv, x), what);

            ConvolutionGradients.AssertSameAsModule(conv, x, input => PointwiseConvolution.Forward(conv, input), what);
            cases++;
        }
        Assert.AreEqual(8, cases);
    }

    /// <summary>Channels-last storage, no autograd, and the weight gradient alone for an input that needs none.</summary>
    [TestMethod]
    public void PointwiseProductsOnStridedInputsWithoutAutogradAndForWeightsAlone()
    {
        using var scope = NewDisposeScope();
        manual_seed(17);
        using var conv = nn.Conv2d(9, 4, 1, dtype: float64);
        var x = randn(new long[] { 2, 7, 5, 9 }, float64).permute(0, 3, 1, 2);
        ConvolutionGradients.AssertSameAsModuleWithoutInputGradient(conv, x, input => PointwiseConvolution.Forward(conv, input));
    }

    /// <summary>Only plain 1×1 convolutions are products: strided, grouped or padded ones keep the module's forward.</summary>
    [TestMethod]
    public void PointwiseProductsAreChosenForPlainOneByOneConvolutionsOnly()
    {
        using var scope = NewDisposeScope();
        var x = randn(2, 64, 16, 16);
        using var fuse = nn.Conv2d(64, 16, 1, bias: false);
        using var widening = nn.Conv2d(64, 128, 1);
        using var strided = nn.Conv2d(64, 16, 1, stride: 2);
        using var grouped = nn.Conv2d(64, 16, 1, groups: 2);
        using var padded = nn.Conv2d(64, 16, 1, padding: 1);
        using var spatial = nn.Conv2d(64, 16, 3, padding: 1);
        Assert.AreEqual(SpatialConvolution.Formulation.Pointwise, SpatialConvolution.Choose(fuse, x));
        Assert.AreEqual(SpatialConvolution.Formulation.Pointwise, SpatialConvolution.Choose(widening, x));
        foreach (var conv in new[] { strided, grouped, padded })
            Assert.AreEqual(SpatialConvolution.Formulation.Module, SpatialConvolution.Choose(conv, x));
        Assert.AreNotEqual(SpatialConvolution.Formulation.Pointwise, SpatialConvolution.Choose(spatial, x));
        Assert.IsTrue(SpatialConvolution.Forward(fuse, x).allclose(fuse.call(x), rtol: 1e-5, atol: 1e-5));
    }
}
