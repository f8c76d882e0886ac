using MLNetFreqFusion.Operators;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Operators;

[TestClass]
public sealed class KernelNormalizerTests
{
    [TestMethod]
    public void WithoutWindowEachKernelIsASoftmaxOverItsWindow()
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        var logits = randn(new long[] { 2, 2 * 9, 4, 5 }, float64);
        var kernels = KernelNormalizer.Normalize(logits, 3);
        var expected = logits.view(2, 2, 9, 4, 5).exp();
        expected = (expected / expected.sum(2, keepdim: true)).view(2, 18, 4, 5);
        Assert.IsTrue(kernels.allclose(expected, rtol: 0, atol: 1e-12));
    }

    [TestMethod]
    public void TheHammingWindowIsNumpysOuterProduct()
    {
        using var scope = NewDisposeScope();
        // numpy.hamming(5) = 0.54 - 0.46 cos(2 pi n / 4) = [0.08, 0.54, 1, 0.54, 0.08].
        var oneD = tensor(new float[] { 0.08f, 0.54f, 1f, 0.54f, 0.08f });
        var window = KernelNormalizer.HammingWindow2D(5);
        CollectionAssert.AreEqual(new long[] { 1, 1, 5, 5 }, window.shape);
        Assert.IsTrue(window.view(5, 5).allclose(outer(oneD, oneD), rtol: 0, atol: 1e-6));
        Assert.AreEqual(1f, KernelNormalizer.HammingWindow2D(1).item<float>());
    }

    [TestMethod]
    public void AWindowShapesTheSoftmaxAndTheKernelStillSumsToOne()
    {
        using var scope = NewDisposeScope();
        manual_seed(2);
        var logits = randn(new long[] { 1, 25, 3, 3 }, float64);
        var window = KernelNormalizer.HammingWindow2D(5).to(float64);
        var kernels = KernelNormalizer.Normalize(logits, 5, window);
        var shaped = logits.softmax(1) * window.view(1, 25, 1, 1);
        Assert.IsTrue(kernels.allclose(shaped / shaped.sum(1, keepdim: true), rtol: 0, atol: 1e-12));
        Assert.IsTrue(kernels.sum(1).allclose(ones(1, 3, 3, float64), rtol: 0, atol: 1e-12));
        // The corners of a Hamming window are 0.08², so corner weights shrink relative to the plain softmax.
        Assert.IsTrue((kernels[.., 0] < logits.softmax(1)[.., 0]).all().item<bool>());
    }

    /// <summary>
    /// The reference's softmax times the window, divided by its sum, written as it is; the normaliser (a softmax of
    /// the logits shifted by the window's logarithm) must give its kernels and its gradient, with and without a window.
    /// </summary>
    [TestMethod]
    public void KernelsAndGradientsEqualTheReferenceProductAndQuotient()
    {
        using var scope = NewDisposeScope();
        manual_seed(4);
        foreach (var (k, window) in new (int, Tensor?)[] { (5, KernelNormalizer.HammingWindow2D(5).to(float64)), (3, KernelNormalizer.HammingWindow2D(3).to(float64)), (3, ones(1, float64)), (3, null) })
        {
            string what = $"{k}×{k}, window {(window is null ? "none" : window.numel().ToString())}";
            var logits = (3 * randn(new long[] { 2, 2 * k * k, 4, 3 }, float64)).requires_grad_();
            var softmax = logits.view(2, 2, k * k, 4, 3).softmax(2);
            var shaped = softmax * (window ?? ones(1, float64)).reshape(1, 1, -1, 1, 1);
            var expected = (shaped / shaped.sum(2, keepdim: true)).view(2, 2 * k * k, 4, 3);
            var kernels = KernelNormalizer.Normalize(logits, k, window);
            Assert.IsTrue(kernels.allclose(expected, rtol: 0, atol: 1e-12), what);
            var upstream = randn_like(expected);
            var expectedGrad = autograd.grad(new[] { expected }, new[] { logits }, new[] { upstream })[0];
            var grad = autograd.grad(new[] { kernels }, new[] { logits }, new[] { upstream })[0];
            Assert.IsTrue(grad.allclose(expectedGrad, rtol: 1e-10, atol: 1e-12), $"gradient differs: {what}");
        }
    }

    [TestMethod]
    public void AScaleFactorPixelShufflesTheLogitsFirst()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var logits = randn(new long[] { 1, 9 * 4, 3, 4 }, float64);
        var kernels = KernelNormalizer.Normalize(logits, 3, null, scaleFactor: 2);
        CollectionAssert.AreEqual(new long[] { 1, 9, 6, 8 }, kernels.shape);
        Assert.IsTrue(kernels.allclose(KernelNormalizer.Normalize(nn.functional.pixel_shuffle(logits, 2), 3), rtol: 0, atol: 1e-12));
    }
}
