using MLNetFreqFusion.Fusion;
using MLNetFreqFusion.Operators;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Operators;

[TestClass]
public sealed class CarafeTests
{
    /// <summary>
    /// The lean formulation must equal the unfold one (the reference's) on random shapes, for every kernel size,
    /// padding and up factor FreqFusion uses, forward and backward; float64 so any difference is a real one.
    /// </summary>
    [TestMethod]
    public void LeanEqualsUnfoldForwardAndBackwardOnRandomShapes()
    {
        var random = new Random(20241125);
        manual_seed(7);
        int cases = 0;
        foreach (int k in new[] { 3, 5, 7 })
        foreach (var padding in new[] { CarafePadding.Reflect, CarafePadding.Zeros })
        foreach (int up in new[] { 1, 2 })
        for (int repeat = 0; repeat < 2; repeat++)
        {
            using var scope = NewDisposeScope();
            int groups = random.Next(1, 3);
            long b = random.Next(1, 3), c = groups * random.Next(1, 4);
            long h = random.Next(k / 2 + 1, 10), w = random.Next(k / 2 + 1, 10);
            var x = randn(new[] { b, c, h, w }, float64);
            var kernels = rand(new[] { b, groups * k * k, up * h, up * w }, float64);
            var cotangent = randn(new[] { b, c, up * h, up * w }, float64);

            var (leanOut, leanGradX, leanGradKernels) = RunWithGradients((a, m, kk, u, p) => Carafe.Lean(a, m, kk, u, p), x, kernels, cotangent, k, up, padding);
            var (unfoldOut, unfoldGradX, unfoldGradKernels) = RunWithGradients(Carafe.Unfold, x, kernels, cotangent, k, up, padding);

            string what = $"k={k} {padding} up={up} groups={groups} x=[{b}, {c}, {h}, {w}]";
            CollectionAssert.AreEqual(new[] { b, c, up * h, up * w }, leanOut.shape, what);
            AssertClose(unfoldOut, leanOut, $"{what}: forward");
            AssertClose(unfoldGradX, leanGradX, $"{what}: d/dx");
            AssertClose(unfoldGradKernels, leanGradKernels, $"{what}: d/dkernels");
            cases++;
        }
        Assert.AreEqual(24, cases);
    }

    /// <summary>
    /// Up-sampling works on blocks of source rows and channels within a kernel group and writes each block into its
    /// place of the output; with blocks of one row and one channel every block boundary, batch and phase must land where
    /// the unfold formulation puts it, and each group's kernel gradient must collect every channel's share.
    /// </summary>
    [TestMethod]
    public void UpSamplingInBlocksOfOneRowAndOneChannelEqualsUnfold()
    {
        var random = new Random(20261206);
        manual_seed(8);
        foreach (int k in new[] { 3, 5 })
        foreach (var padding in new[] { CarafePadding.Reflect, CarafePadding.Zeros })
        {
            using var scope = NewDisposeScope();
            int groups = random.Next(1, 4);
            long b = 2, c = groups * random.Next(1, 4), h = random.Next(k / 2 + 2, 9), w = random.Next(k / 2 + 1, 9);
            var x = randn(new[] { b, c, h, w }, float64);
            var kernels = rand(new[] { b, groups * k * k, 2 * h, 2 * w }, float64);
            var cotangent = randn(new[] { b, c, 2 * h, 2 * w }, float64);

            var (blockOut, blockGradX, blockGradKernels) = RunWithGradients((a, m, kk, u, p) => Carafe.Lean(a, m, kk, u, p, blockBytes: 1), x, kernels, cotangent, k, 2, padding);
            var (unfoldOut, unfoldGradX, unfoldGradKernels) = RunWithGradients(Carafe.Unfold, x, kernels, cotangent, k, 2, padding);

            string what = $"k={k} {padding} groups={groups} x=[{b}, {c}, {h}, {w}], one-row one-channel blocks";
            AssertClose(unfoldOut, blockOut, $"{what}: forward");
            AssertClose(unfoldGradX, blockGradX, $"{what}: d/dx");
            AssertClose(unfoldGradKernels, blockGradKernels, $"{what}: d/dkernels");
        }
    }

    /// <summary>
    /// Both formulations against the definition written out pixel by pixel: output (y, x) of channel c is the sum
    /// over the k×k window centred on (y / up, x / up) of input · kernel[group(c)], with reflected or zero borders.
    /// </summary>
    [TestMethod]
    [DataRow(CarafePadding.Reflect, 1)]
    [DataRow(CarafePadding.Reflect, 2)]
    [DataRow(CarafePadding.Zeros, 1)]
    [DataRow(CarafePadding.Zeros, 2)]
    public void BothFormulationsFollowTheDefinition(CarafePadding padding, int up)
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        const int k = 3, groups = 2, b = 1, c = 4, h = 4, w = 5;
        var x = randn(new long[] { b, c, h, w }, float64);
        var kernels = rand(new long[] { b, groups * k * k, up * h, up * w }, float64);
        var xs = x.data<double>().ToArray();
        var ks = kernels.data<double>().ToArray();

        var expected = new double[b * c * up * h * up * w];
        int outH = up * h, outW = up * w;
        for (int ch = 0; ch < c; ch++)
        for (int oy = 0; oy < outH; oy++)
        for (int ox = 0; ox < outW; ox++)
        {
            int g = ch / (c / groups);
            double sum = 0;
            for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++)
            {
                int sy = oy / up + i - k / 2, sx = ox / up + j - k / 2;
                double value;
                if (padding == CarafePadding.Zeros)
                    value = sy < 0 || sy >= h || sx < 0 || sx >= w ? 0 : xs[(ch * h + sy) * w + sx];
                else
                    value = xs[(ch * h + Reflect(sy, h)) * w + Reflect(sx, w)];
                sum += value * ks[((g * k * k + i * k + j) * outH + oy) * outW + ox];
            }
            expected[(ch * outH + oy) * outW + ox] = sum;
        }
        var reference = tensor(expected, new long[] { b, c, outH, outW }, float64);

        AssertClose(reference, Carafe.Lean(x, kernels, k, up, padding), "lean");
        AssertClose(reference, Carafe.Unfold(x, kernels, k, up, padding), "unfold");
    }

    [TestMethod]
    public void InferenceWithoutGradientsGivesTheSameResultAndNoGraph()
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        var x = randn(new long[] { 1, 4, 6, 6 }, float64).requires_grad_();
        var kernels = rand(new long[] { 1, 25, 12, 12 }, float64);
        using (no_grad())
        {
            var lean = Carafe.Lean(x, kernels, 5, 2, CarafePadding.Zeros);
            Assert.IsFalse(lean.requires_grad);
            AssertClose(Carafe.Unfold(x, kernels, 5, 2, CarafePadding.Zeros), lean, "no_grad");
        }
    }

    [TestMethod]
    public void ReflectPaddingWiderThanTheMapIsAClearError()
    {
        using var scope = NewDisposeScope();
        var x = randn(1, 2, 3, 3);
        var kernels = rand(1, 49, 3, 3);
        var error = Assert.ThrowsExactly<ArgumentException>(() => Carafe.Lean(x, kernels, 7, 1, CarafePadding.Reflect));
        StringAssert.Contains(error.Message, "[1, 2, 3, 3]");
        // Zero padding has no such limit.
        CollectionAssert.AreEqual(new long[] { 1, 2, 3, 3 }, Carafe.Lean(x, kernels, 7, 1, CarafePadding.Zeros).shape);
    }

    [TestMethod]
    public void MismatchedKernelsAreAClearError()
    {
        using var scope = NewDisposeScope();
        var error = Assert.ThrowsExactly<ArgumentException>(() => Carafe.Lean(randn(1, 2, 4, 4), rand(1, 25, 4, 4), 5, 2, CarafePadding.Zeros));
        StringAssert.Contains(error.Message, "[1, 25, 4, 4]");
        StringAssert.Contains(error.Message, "[1, 2, 4, 4]");
    }

    static int Reflect(int index, int size) => index < 0 ? -index : index >= size ? 2 * (size - 1) - index : index;

    static (Tensor Out, Tensor GradX, Tensor GradKernels) RunWithGradients(
        Func<Tensor, Tensor, int, int, CarafePadding, Tensor> carafe, Tensor x, Tensor kernels, Tensor cotangent, int k, int up, CarafePadding padding) =>
        BinaryGradients.Of((a, m) => carafe(a, m, k, up, padding), x, kernels, cotangent);

    static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        CollectionAssert.AreEqual(expected.shape, actual.shape, $"{what}: shape");
        double difference = (expected - actual).abs().max().item<double>();
        Assert.IsTrue(difference <= 1e-10, $"{what}: max |difference| {difference:G3}.");
    }
}
