using System.Runtime.Intrinsics.X86;
using MLNetFreqFusion.Operators;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Operators;

/// <summary>
/// <see cref="LocalSimilarity.Cosine"/> runs float32 CPU features with a 3×3 window through
/// <see cref="LocalSimilarityLoops"/> (AVX2/FMA loops); these tests hold it to the straightforward autograd formulation
/// (pad the unit vectors, one product per neighbour) computed in float64.
/// </summary>
[TestClass]
public sealed class LocalSimilarityLoopsTests
{
    /// <summary>
    /// Widths of one vector and of whole and partial vectors beyond it (the overlapping last vector), rows longer than
    /// one chunk of the normalisation's sums, heights below
    /// and above the window's reach and across several bands of 4 rows, dilations 1–3, one and two threads, a
    /// non-contiguous input, an all-zero pixel and one whose norm is below ε (the clamped norm, whose gradient has no
    /// projection term).
    /// </summary>
    [TestMethod]
    [DataRow(2, 5, 6, 8, 2, 1, false, DisplayName = "one vector wide, 1 thread")]
    [DataRow(2, 5, 6, 13, 2, 2, false, DisplayName = "13 wide: a partial last vector")]
    [DataRow(1, 16, 11, 21, 2, 2, true, DisplayName = "21 wide, 11 rows, strided input")]
    [DataRow(3, 4, 1, 9, 2, 2, false, DisplayName = "one row, smaller than the reach")]
    [DataRow(1, 1, 5, 16, 1, 2, false, DisplayName = "one channel, dilation 1")]
    [DataRow(2, 7, 9, 10, 3, 1, true, DisplayName = "dilation 3")]
    [DataRow(1, 3, 5, 300, 2, 2, false, DisplayName = "300 wide: the norms in two chunks of a row, a partial last vector")]
    public void LoopsEqualTheAutogradFormulationInFloat64(int b, int c, int h, int w, int dilation, int threads, bool strided)
    {
        using var scope = NewDisposeScope();
        manual_seed(41 + c * 3 + w);
        int threadsBefore = get_num_threads();
        try
        {
            set_num_threads(threads);
            var x = strided ? randn(new long[] { b, h, w, c }).permute(0, 3, 1, 2) : randn(new long[] { b, c, h, w });
            x = x.clone();
            x[0, .., 0, w - 1] = zeros(c);
            // A pixel whose norm is below ε but not zero: its unit vector is x / ε, with no projection in the gradient.
            x[b - 1, .., h - 1, 0] = randn(c) * 1e-10f;
            var cotangent = randn(new long[] { b, 8, h, w });
            Assert.AreEqual(Avx2.IsSupported && Fma.IsSupported, LocalSimilarityLoops.Fits(x, 3), "the loops run on this host");

            var xLoops = x.detach().clone().requires_grad_();
            var actual = LocalSimilarity.Cosine(xLoops, 3, dilation);
            actual.backward(new[] { cotangent });

            var xOracle = x.to(float64).requires_grad_();
            var expected = Oracle(xOracle, dilation);
            expected.backward(new[] { cotangent.to(float64) });

            AssertClose(expected, actual, "similarities");
            AssertClose(xOracle.grad!, xLoops.grad!, "gradient");
        }
        finally
        {
            set_num_threads(threadsBefore);
        }
    }

    [TestMethod]
    public void InferenceWithoutGradientsGivesTheSameValuesAndNoGraph()
    {
        using var scope = NewDisposeScope();
        manual_seed(43);
        var x = randn(new long[] { 2, 6, 7, 12 }).requires_grad_();
        using (no_grad())
        {
            var similarities = LocalSimilarity.Cosine(x, 3, 2);
            Assert.IsFalse(similarities.requires_grad);
            AssertClose(Oracle(x.detach().to(float64), 2), similarities, "no_grad");
        }
    }

    [TestMethod]
    public void OtherWindowsTypesAndNarrowMapsKeepAten()
    {
        using var scope = NewDisposeScope();
        var x = randn(1, 2, 4, 8);
        Assert.AreEqual(Avx2.IsSupported && Fma.IsSupported, LocalSimilarityLoops.Fits(x, 3));
        Assert.IsFalse(LocalSimilarityLoops.Fits(x, 5), "a 5×5 window keeps the ATen bands");
        Assert.IsFalse(LocalSimilarityLoops.Fits(x.to(float64), 3), "float64 keeps the ATen bands");
        Assert.IsFalse(LocalSimilarityLoops.Fits(randn(1, 2, 9, 7), 3), "maps narrower than one vector keep the ATen bands");
    }

    static Tensor Oracle(Tensor x, int dilation) => LocalSimilarityTests.Oracle(x, 3, dilation);

    /// <summary>
    /// float32 dot products of unit vectors over at most 16 channels: 1e-5 absolute plus 1e-5 relative is about a
    /// hundred times their rounding. Relative, because the gradient at the all-zero pixel is divided by the clamped
    /// norm, 1e-8.
    /// </summary>
    static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        CollectionAssert.AreEqual(expected.shape, actual.shape, $"{what}: shape");
        Assert.AreEqual(ScalarType.Float32, actual.dtype, $"{what}: dtype");
        var excess = (actual.to(float64) - expected).abs() - (1e-5 + 1e-5 * expected.abs());
        double worst = excess.max().item<double>();
        Assert.IsTrue(worst <= 0, $"{what}: exceeds the float32 tolerance by {worst:G3}.");
    }
}
