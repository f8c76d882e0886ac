using MLNetFreqFusion.Operators;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Operators;

[TestClass]
public sealed class TapConvolutionTests
{
    /// <summary>
    /// As tap products, a convolution must equal the module's own forward and give the same input, weight and bias
    /// gradients: same, smaller and larger padding than the kernel's reach (rows and columns where some taps read
    /// nothing), dilation, non-square kernels and maps smaller than the kernel's reach; float64 so any difference is
    /// a real one.
    /// </summary>
    [TestMethod]
    public void TapProductsEqualTheModuleForwardAndBackward()
    {
        var random = new Random(20261207);
        manual_seed(13);
        int cases = 0;
        foreach (var (kh, kw, dilation, padH, padW) in new[] { (3, 3, 1, 1, 1), (3, 3, 2, 2, 2), (5, 5, 1, 2, 2), (3, 3, 1, 0, 0), (3, 3, 1, 2, 1), (3, 1, 1, 1, 0), (1, 5, 1, 0, 3), (3, 3, 3, 1, 2) })
        foreach (bool bias in new[] { true, false })
        {
            using var scope = NewDisposeScope();
            long b = random.Next(1, 4), cout = random.Next(1, 5), cin = 2 * cout + random.Next(0, 5);
            long h = random.Next(kh * dilation - 2 * padH + 1, 14), w = random.Next(Math.Max(1, kw * dilation - 2 * padW + 1), 14);
            using var conv = nn.Conv2d(cin, cout, (kh, kw), padding: (padH, padW), dilation: (dilation, dilation), bias: bias, dtype: float64);
            var x = randn(new[] { b, cin, h, w }, float64).requires_grad_();
            string what = $"kernel {kh}×{kw}, dilation {dilation}, padding {padH}/{padW}, x [{b}, {cin}, {h}, {w}] → {cout}, bias {bias}";
            Assert.IsTrue(TapConvolution.Fits(conv, x), what);

            ConvolutionGradients.AssertSameAsModule(conv, x, input => TapConvolution.Forward(conv, input), what);
            cases++;
        }
        Assert.AreEqual(16, cases);
    }

    /// <summary>Without autograd, and for an input that needs no gradient, the weight gradient alone.</summary>
    [TestMethod]
    public void TapProductsWithoutAutogradAndForWeightsAlone()
    {
        using var scope = NewDisposeScope();
        manual_seed(14);
        using var conv = nn.Conv2d(12, 5, 3, padding: 1, dtype: float64);
        // Channels-last storage: the products must not assume a contiguous input.
        var x = randn(new long[] { 2, 9, 11, 12 }, float64).permute(0, 3, 1, 2);
        ConvolutionGradients.AssertSameAsModuleWithoutInputGradient(conv, x, input => TapConvolution.Forward(conv, input));
    }

    /// <summary>The networks' convolutions take tap products only where they have at most half as many outputs as inputs.</summary>
    [TestMethod]
    public void TapProductsAreChosenForStrideOneConvolutionsToFewChannels()
    {
        using var scope = NewDisposeScope();
        var x = randn(2, 64, 16, 16);
        using var encoder = nn.Conv2d(64, 25, 3, padding: 1);
        using var half = nn.Conv2d(64, 32, 3, padding: 1);
        using var wider = nn.Conv2d(64, 33, 3, padding: 1);
        using var strided = nn.Conv2d(64, 8, 3, stride: 2, padding: 1);
        using var grouped = nn.Conv2d(64, 8, 3, padding: 1, groups: 2);
        using var reflecting = nn.Conv2d(64, 8, 3, padding: 1, padding_mode: TorchSharp.PaddingModes.Reflect);
        Assert.AreEqual(SpatialConvolution.Formulation.TapProducts, SpatialConvolution.Choose(encoder, x));
        Assert.AreEqual(SpatialConvolution.Formulation.TapProducts, SpatialConvolution.Choose(half, x));
        foreach (var conv in new[] { wider, strided, grouped, reflecting })
            Assert.AreEqual(SpatialConvolution.Formulation.Module, SpatialConvolution.Choose(conv, x));
        Assert.AreEqual(SpatialConvolution.Formulation.Bands, SpatialConvolution.Choose(wider, randn(8, 64, 96, 96)), "37 MB of columns");
        Assert.IsTrue(SpatialConvolution.Forward(encoder, x).allclose(encoder.call(x), rtol: 1e-5, atol: 1e-6));
    }
}
