using System.Runtime.Intrinsics.X86;
using MLNetFreqFusion.Operators;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Operators;

[TestClass]
public sealed class DirectConvolutionTests
{
    static void RequireLoops()
    {
        if (!(Avx2.IsSupported && Fma.IsSupported))
            Assert.Inconclusive("The direct convolution loops need AVX2 and FMA; this host computes these convolutions as before.");
    }

    /// <summary>Runs <paramref name="check"/> with the host's loops and, on an AVX-512 host, with the AVX2 loops as well.</summary>
    static void ForEachKernel(Action<string> check)
    {
        check(Avx512F.IsSupported ? "AVX-512" : "AVX2");
        if (!Avx512F.IsSupported)
            return;
        DirectConvolution.Avx2ForTests = true;
        try
        {
            check("AVX2");
        }
        finally
        {
            DirectConvolution.Avx2ForTests = false;
        }
    }

    /// <summary>
    /// The loops (AVX-512's and AVX2's) must equal ATen's convolution for every way rows fill a task's vectors (AVX-512:
    /// a row of 64, two tasks a row of 128, two rows of 32 and four rows of 16 per task; AVX2: tasks of 16 pixels and
    /// two rows of 8; with a last row group past the map's end),
    /// output channels that are and are not a multiple of the 4 a task computes, kernels of 3 and 5, dilation,
    /// padding narrower than the kernel's reach, no bias, and batches: float32, to a few ulps of the sums.
    /// </summary>
    [TestMethod]
    public void TheLoopsEqualAtenForEveryRowLayoutAndGeometry()
    {
        RequireLoops();
        ForEachKernel(EqualAten);
    }

    static void EqualAten(string kernel)
    {
        manual_seed(7);
        int cases = 0;
        foreach (var (b, cin, cout, h, w, k, dilation, pad, bias) in new[]
        {
            (2, 5, 6, 11, 8, 3, 1, 1, true),
            (1, 32, 25, 64, 64, 3, 1, 1, true), (2, 40, 16, 33, 64, 3, 1, 1, true), (1, 32, 34, 31, 32, 3, 1, 1, false),
            (3, 17, 9, 15, 16, 3, 1, 1, true), (1, 8, 4, 19, 128, 5, 1, 2, true), (2, 12, 7, 21, 64, 3, 2, 2, true),
            (1, 6, 5, 18, 18, 3, 1, 0, true), (1, 104, 34, 16, 16, 3, 1, 1, true), (2, 9, 3, 64, 128, 3, 1, 1, false),
        })
        {
            using var scope = NewDisposeScope();
            using var conv = nn.Conv2d(cin, cout, k, padding: pad, dilation: dilation, bias: bias);
            var x = randn(b, cin, h, w);
            string what = $"{kernel}: x [{b}, {cin}, {h}, {w}] → {cout}, kernel {k}, dilation {dilation}, padding {pad}, bias {bias}";
            using var noGrad = no_grad();
            // Rows of 8 fill AVX2's vectors, not AVX-512's.
            bool fits = w != 8 || kernel == "AVX2";
            Assert.AreEqual(fits, DirectConvolution.Fits(conv, cout, x), what);
            if (!fits)
                continue;
            var direct = DirectConvolution.Forward(conv, conv.weight!, conv.bias, x);
            var expected = conv.call(x);
            CollectionAssert.AreEqual(expected.shape, direct.shape, what);
            double scale = expected.abs().max().item<float>();
            Assert.IsTrue(direct.allclose(expected, rtol: 1e-5, atol: 1e-6 * scale), $"{what}: largest difference {(direct - expected).abs().max().item<float>()} of {scale}");
            cases++;
        }
        Assert.AreEqual(kernel == "AVX2" ? 10 : 9, cases, kernel);
    }

    /// <summary>
    /// In training the loops compute the forward and tap products the gradients: input, weight and bias gradients
    /// must be ATen's, through <see cref="SpatialConvolution"/> as the networks call it.
    /// </summary>
    [TestMethod]
    public void GradientsThroughTheLoopsAreAtensGradients()
    {
        RequireLoops();
        ForEachKernel(GradientsEqualAtens);
    }

    static void GradientsEqualAtens(string kernel)
    {
        manual_seed(8);
        using var scope = NewDisposeScope();
        using var conv = nn.Conv2d(40, 16, 3, padding: 1);
        var x = randn(2, 40, 32, 32).requires_grad_();
        Assert.AreEqual(SpatialConvolution.Formulation.Direct, SpatialConvolution.Choose(conv, x));
        var direct = SpatialConvolution.Forward(conv, x);
        var expected = nn.functional.conv2d(x, conv.weight!, conv.bias, padding: new long[] { 1, 1 });
        Assert.IsTrue(direct.allclose(expected, rtol: 1e-5, atol: 1e-5));
        GradientAssert.Same([direct], [expected], [x, conv.weight!, conv.bias!], ["input", "weight", "bias"], 1e-4, 1e-4, $"{kernel} loops");
    }

    /// <summary>
    /// Which convolutions the loops take: stride-1, ungrouped, zero-padded float32 ones whose output rows fill whole
    /// vectors (AVX-512: 16, 32 or a multiple of 64 pixels; AVX2: 8 or a multiple of 16); with gradients only those tap
    /// products compute (their gradients are used), without autograd any. Elsewhere the formulations of before.
    /// </summary>
    [TestMethod]
    public void TheLoopsTakeStrideOneConvolutionsWithFullVectorsAndTapProductGradients()
    {
        RequireLoops();
        ForEachKernel(Choice);
    }

    static void Choice(string kernel)
    {
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
            long[] full = kernel == "AVX2" ? [8, 16, 48, 80, 192] : [16, 32, 64, 192], partial = kernel == "AVX2" ? [6, 12, 24, 40] : [6, 8, 24, 48, 80];
            foreach (long width in full)
                Assert.AreEqual(SpatialConvolution.Formulation.Direct, SpatialConvolution.Choose(encoder, randn(1, 64, 5, width)), $"{kernel}: rows of {width}");
            foreach (long width in partial)
                Assert.AreNotEqual(SpatialConvolution.Formulation.Direct, SpatialConvolution.Choose(encoder, randn(1, 64, 16, width)), $"{kernel}: rows of {width}");
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
