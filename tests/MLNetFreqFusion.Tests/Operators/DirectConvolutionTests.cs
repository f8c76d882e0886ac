using System.Runtime.Intrinsics.X86;
using MLNetFreqFusion.Operators;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Operators;

[TestClass]
public sealed class DirectConvolutionTests
{
    static void RequireAvx512()
    {
        if (!Avx512F.IsSupported)
            Assert.Inconclusive("The direct convolution loops run on AVX-512 hosts only; this host computes these convolutions as before.");
    }

    /// <summary>
    /// The loops must equal ATen's convolution for every way rows fill a task's vectors (a row of 64, two tasks a row
    /// of 128, two rows of 32 and four rows of 16 per task, with a last row group past the map's end),
    /// output channels that are and are not a multiple of the 4 a task computes, kernels of 3 and 5, dilation,
    /// padding narrower than the kernel's reach, no bias, and batches: float32, to a few ulps of the sums.
    /// </summary>
    [TestMethod]
    public void TheLoopsEqualAtenForEveryRowLayoutAndGeometry()
    {
        RequireAvx512();
        manual_seed(7);
        int cases = 0;
        foreach (var (b, cin, cout, h, w, k, dilation, pad, bias) in new[]
        {
            (1, 32, 25, 64, 64, 3, 1, 1, true), (2, 40, 16, 33, 64, 3, 1, 1, true), (1, 32, 34, 31, 32, 3, 1, 1, false),
            (3, 17, 9, 15, 16, 3, 1, 1, true), (1, 8, 4, 19, 128, 5, 1, 2, true), (2, 12, 7, 21, 64, 3, 2, 2, true),
            (1, 6, 5, 18, 18, 3, 1, 0, true), (1, 104, 34, 16, 16, 3, 1, 1, true), (2, 9, 3, 64, 128, 3, 1, 1, false),
        })
        {
            using var scope = NewDisposeScope();
            using var conv = nn.Conv2d(cin, cout, k, padding: pad, dilation: dilation, bias: bias);
            var x = randn(b, cin, h, w);
            string what = $"x [{b}, {cin}, {h}, {w}] → {cout}, kernel {k}, dilation {dilation}, padding {pad}, bias {bias}";
            using var noGrad = no_grad();
            Assert.IsTrue(DirectConvolution.Fits(conv, cout, x), what);
            var direct = DirectConvolution.Forward(conv, conv.weight!, conv.bias, x);
            var expected = conv.call(x);
            CollectionAssert.AreEqual(expected.shape, direct.shape, what);
            double scale = expected.abs().max().item<float>();
            Assert.IsTrue(direct.allclose(expected, rtol: 1e-5, atol: 1e-6 * scale), $"{what}: largest difference {(direct - expected).abs().max().item<float>()} of {scale}");
            cases++;
        }
        Assert.AreEqual(9, cases);
    }

    /// <summary>
    /// In training the loops compute the forward and tap products the gradients: input, weight and bias gradients
    /// must be ATen's, through <see cref="SpatialConvolution"/> as the networks call it.
    /// </summary>
    [TestMethod]
    public void GradientsThroughTheLoopsAreAtensGradients()
    {
        RequireAvx512();
        manual_seed(8);
        using var scope = NewDisposeScope();
        using var conv = nn.Conv2d(40, 16, 3, padding: 1);
        var x = randn(2, 40, 32, 32).requires_grad_();
        Assert.AreEqual(SpatialConvolution.Formulation.Direct, SpatialConvolution.Choose(conv, x));
        var direct = SpatialConvolution.Forward(conv, x);
        var expected = nn.functional.conv2d(x, conv.weight!, conv.bias, padding: new long[] { 1, 1 });
        Assert.IsTrue(direct.allclose(expected, rtol: 1e-5, atol: 1e-5));
        GradientAssert.Same([direct], [expected], [x, conv.weight!, conv.bias!], ["input", "weight", "bias"], 1e-4, 1e-4, "direct loops");
    }

    /// <summary>
    /// Which convolutions the loops take: stride-1, ungrouped, zero-padded float32 ones whose output rows fill whole
    /// vectors (16, 32 or a multiple of 64 pixels); with gradients only those tap products compute (their gradients are
    /// used), without autograd any. Elsewhere the formulations of before.
    /// </summary>
    [TestMethod]
    public void TheLoopsTakeStrideOneConvolutionsWithFullVectorsAndTapProductGradients()
    {
        RequireAvx512();
        using var scope = NewDisposeScope();
        using var encoder = nn.Conv2d(64, 25, 3, padding: 1);
        using var wider = nn.Conv2d(64, 40, 3, padding: 1);
        using var strided = nn.Conv2d(64, 8, 3, stride: 2, padding: 1);
        using var grouped = nn.Conv2d(64, 8, 3, padding: 1, groups: 2);
        using var reflecting = nn.Conv2d(64, 8, 3, padding: 1, padding_mode: TorchSharp.PaddingModes.Reflect);
        var x = randn(2, 64, 16, 16);
        Assert.AreEqual(SpatialConvolution.Formulation.Direct, SpatialConvolution.Choose(encoder, x), "tap products' convolution");
        Assert.AreEqual(SpatialConvolution.Formulation.Module, SpatialConvolution.Choose(wider, x), "more outputs than tap products take, with gradients");
        using (no_grad())
            Assert.AreEqual(SpatialConvolution.Formulation.Direct, SpatialConvolution.Choose(wider, x), "the same without autograd");
        using (no_grad())
        {
            foreach (var conv in new[] { strided, grouped, reflecting })
                Assert.AreNotEqual(SpatialConvolution.Formulation.Direct, SpatialConvolution.Choose(conv, x));
            foreach (long width in new long[] { 32, 64, 192 })
                Assert.AreEqual(SpatialConvolution.Formulation.Direct, SpatialConvolution.Choose(encoder, randn(1, 64, 5, width)), $"rows of {width}");
            foreach (long width in new long[] { 6, 24, 48, 80 })
                Assert.AreNotEqual(SpatialConvolution.Formulation.Direct, SpatialConvolution.Choose(encoder, randn(1, 64, 16, width)), $"rows of {width}");
            Assert.AreNotEqual(SpatialConvolution.Formulation.Direct, SpatialConvolution.Choose(encoder, randn(1, 64, 16, 16, dtype: float64)), "float64");
        }
        DirectConvolution.OffForBenchmark = true;
        try
        {
            Assert.AreEqual(SpatialConvolution.Formulation.TapProducts, SpatialConvolution.Choose(encoder, x), "switched off");
        }
        finally
        {
            DirectConvolution.OffForBenchmark = false;
        }
    }
}
