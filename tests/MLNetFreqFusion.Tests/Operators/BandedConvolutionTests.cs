using MLNetFreqFusion.Operators;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Operators;

[TestClass]
public sealed class BandedConvolutionTests
{
    /// <summary>
    /// Computed in bands of rows (a column budget small enough to force several bands), a convolution must equal the
    /// module's own forward and give the same input, weight and bias gradients, for the kernels, strides, dilations
    /// and paddings the networks use; float64 so any difference is a real one.
    /// </summary>
    [TestMethod]
    public void BandsEqualTheWholeConvolutionForwardAndBackward()
    {
        var random = new Random(20261206);
        manual_seed(11);
        int banded = 0;
        foreach (var (k, stride, dilation, padding) in new[] { (3, 1, 1, 1), (3, 2, 1, 1), (3, 1, 2, 2), (7, 2, 1, 3), (3, 1, 1, 0), (5, 1, 1, 2) })
        foreach (bool bias in new[] { true, false })
        {
            using var scope = NewDisposeScope();
            long b = random.Next(1, 3), cin = random.Next(1, 6), cout = random.Next(1, 6);
            long h = random.Next(12, 30), w = random.Next(k + 2 * dilation, 20);
            using var conv = nn.Conv2d(cin, cout, k, stride: stride, padding: padding, dilation: dilation, bias: bias, dtype: float64);
            var x = randn(new[] { b, cin, h, w }, float64).requires_grad_();
            long budget = b * cin * k * k * 8 * 3;   // about three output columns' worth: several bands
            var bands = BandedConvolution.Bands(conv, x, budget);
            Assert.IsTrue(bands.Count >= 2, $"k {k}, stride {stride}: expected several bands, got {bands.Count}");
            Assert.AreEqual(0L, bands[0].Start);
            for (int i = 1; i < bands.Count; i++)
                Assert.AreEqual(bands[i - 1].End, bands[i].Start, "bands must tile the output rows");
            banded++;

            var whole = conv.call(x);
            var upstream = randn_like(whole);
            var (gx, gw, gb) = ConvolutionGradients.Of(conv, x, whole, upstream);
            var parts = BandedConvolution.Forward(conv, x, budget);
            CollectionAssert.AreEqual(whole.shape, parts.shape);
            Assert.AreEqual(bands[^1].End, whole.shape[2]);
            Assert.IsTrue(parts.allclose(whole, rtol: 1e-12, atol: 1e-12), $"forward differs: k {k}, stride {stride}, dilation {dilation}, padding {padding}");
            var (px, pw, pb) = ConvolutionGradients.Of(conv, x, parts, upstream);
            Assert.IsTrue(px.allclose(gx, rtol: 1e-10, atol: 1e-10), "input gradient differs");
            Assert.IsTrue(pw.allclose(gw, rtol: 1e-10, atol: 1e-10), "weight gradient differs");
            if (bias)
                Assert.IsTrue(pb!.allclose(gb!, rtol: 1e-10, atol: 1e-10), "bias gradient differs");
        }
        Assert.AreEqual(12, banded);
    }

    [TestMethod]
    public void SmallPointwiseAndGroupedConvolutionsAreNotBanded()
    {
        using var scope = NewDisposeScope();
        var x = randn(2, 8, 64, 64);
        using var small = nn.Conv2d(8, 8, 3, padding: 1);
        using var pointwise = nn.Conv2d(8, 8, 1);
        using var grouped = nn.Conv2d(8, 8, 3, padding: 1, groups: 2);
        Assert.AreEqual(1, BandedConvolution.Bands(small, x, BandedConvolution.MaxColumnBytes).Count, "a 2.4 MB column buffer is not banded");
        Assert.AreEqual(1, BandedConvolution.Bands(pointwise, x, 1).Count);
        Assert.AreEqual(1, BandedConvolution.Bands(grouped, x, 1).Count);
        Assert.IsTrue(BandedConvolution.Bands(small, x, 1).Count > 1);
    }
}
