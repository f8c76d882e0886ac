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

    /// <summary>
    /// The loops add each output's taps in the order the ATen slices did, so in float32 (eight lanes, with the
    /// remainders of 37- and 9-pixel rows) their sums are the same bits, and the gradient's shifted copies the same
    /// planes; kernels, paddings and dilations as above.
    /// </summary>
    [TestMethod]
    public void ShiftLoopsEqualTheAtenSlicesBitForBit()
    {
        manual_seed(15);
        foreach (var (kh, kw, dilation, padH, padW, width) in new[] { (3, 3, 1, 1, 1, 37), (3, 3, 2, 2, 2, 9), (5, 5, 1, 2, 2, 16), (3, 3, 1, 0, 0, 37), (1, 5, 1, 0, 3, 9), (3, 3, 3, 1, 2, 12) })
        {
            using var scope = NewDisposeScope();
            using var conv = nn.Conv2d(24, 5, (kh, kw), padding: (padH, padW), dilation: (dilation, dilation));
            var x = randn(2, 24, 11, width).requires_grad_();
            string what = $"kernel {kh}×{kw}, dilation {dilation}, padding {padH}/{padW}, width {width}";
            var upstream = randn_like(conv.call(x));
            (Tensor Output, Tensor X, Tensor Weight, Tensor? Bias) Run(bool loopsOff)
            {
                TapConvolution.ShiftLoopsOffForBenchmark = loopsOff;
                try
                {
                    var y = TapConvolution.Forward(conv, x);
                    var (gx, gw, gb) = ConvolutionGradients.Of(conv, x, y, upstream);
                    return (y, gx, gw, gb);
                }
                finally
                {
                    TapConvolution.ShiftLoopsOffForBenchmark = false;
                }
            }
            var loops = Run(false);
            var slices = Run(true);
            Assert.IsTrue(loops.Output.eq(slices.Output).all().item<bool>(), $"forward differs: {what}");
            Assert.IsTrue(loops.X.eq(slices.X).all().item<bool>(), $"input gradient differs: {what}");
            Assert.IsTrue(loops.Weight.eq(slices.Weight).all().item<bool>(), $"weight gradient differs: {what}");
            Assert.IsTrue(loops.Bias!.eq(slices.Bias!).all().item<bool>(), $"bias gradient differs: {what}");
            Assert.IsTrue(loops.Output.allclose(conv.call(x), rtol: 1e-4, atol: 1e-5), $"forward differs from the module: {what}");
        }
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

    /// <summary>
    /// The networks' convolutions take tap products where they have at most half as many outputs as inputs, or at most
    /// as many on maps whose im2col columns reach 4 MB.
    /// </summary>
    [TestMethod]
    public void TapProductsAreChosenForStrideOneConvolutionsToFewChannels()
    {
        // Direct loops take these convolutions first on AVX-512 hosts (DirectConvolutionTests); this is the rule without them.
        DirectConvolution.OffForBenchmark = true;
        try
        {
            TapProductRules();
        }
        finally
        {
            DirectConvolution.OffForBenchmark = false;
        }
    }

    static void TapProductRules()
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
        // From 4 MB of columns, up to as many outputs as inputs; more outputs than inputs take bands there.
        Assert.AreEqual(SpatialConvolution.Formulation.TapProducts, SpatialConvolution.Choose(wider, randn(1, 64, 48, 48)), "5.3 MB of columns");
        using var square = nn.Conv2d(64, 64, 3, padding: 1);
        using var widening = nn.Conv2d(64, 65, 3, padding: 1);
        Assert.AreEqual(SpatialConvolution.Formulation.TapProducts, SpatialConvolution.Choose(square, randn(1, 64, 48, 48)), "5.3 MB of columns");
        Assert.AreEqual(SpatialConvolution.Formulation.Module, SpatialConvolution.Choose(square, randn(1, 64, 40, 40)), "3.7 MB of columns");
        Assert.AreEqual(SpatialConvolution.Formulation.Bands, SpatialConvolution.Choose(widening, randn(8, 64, 96, 96)), "37 MB of columns");
        Assert.IsTrue(SpatialConvolution.Forward(encoder, x).allclose(encoder.call(x), rtol: 1e-5, atol: 1e-6));
    }
}
