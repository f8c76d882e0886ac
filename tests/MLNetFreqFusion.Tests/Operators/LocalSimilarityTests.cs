using MLNetFreqFusion.Operators;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Operators;

[TestClass]
public sealed class LocalSimilarityTests
{
    [TestMethod]
    public void EqualsCosineSimilarityOfTheDilatedNeighboursWithTheCentreLeftOut()
    {
        using var scope = NewDisposeScope();
        manual_seed(4);
        const long b = 2, c = 5, h = 6, w = 7;
        var x = randn(new[] { b, c, h, w }, float64);
        var similarities = LocalSimilarity.Cosine(x, 3, 2);
        CollectionAssert.AreEqual(new[] { b, 8L, h, w }, similarities.shape);

        // Independent formulation: unfold the 3×3 window at dilation 2 with zero padding and use cosine_similarity.
        var windows = nn.functional.unfold(x, 3, dilation: 2, padding: 2).view(b, c, 9, h, w);
        var all = nn.functional.cosine_similarity(windows[.., .., 4..5], windows, dim: 1);
        var expected = cat(new[] { all[.., 0..4], all[.., 5..9] }, 1);
        Assert.IsTrue(similarities.allclose(expected, rtol: 0, atol: 1e-12));
    }

    [TestMethod]
    public void NeighboursOutsideTheMapHaveZeroSimilarityAndEqualNeighboursOne()
    {
        using var scope = NewDisposeScope();
        var x = ones(1, 3, 5, 5, float64);
        var similarities = LocalSimilarity.Cosine(x, 3, 2);
        // Neighbour 0 is two pixels up and left: outside for the first two rows and columns, identical elsewhere.
        Assert.AreEqual(0.0, similarities[0, 0, 1, 3].item<double>());
        Assert.AreEqual(0.0, similarities[0, 0, 3, 1].item<double>());
        Assert.AreEqual(1.0, similarities[0, 0, 2, 2].item<double>(), 1e-12);
        Assert.AreEqual(1.0, similarities[0, 7, 2, 2].item<double>(), 1e-12);
        Assert.AreEqual(0.0, similarities[0, 7, 3, 2].item<double>());
    }

    /// <summary>The straightforward autograd formulation (the operator's first version): pad the unit vectors, one product per neighbour.</summary>
    internal static Tensor Oracle(Tensor x, int window, int dilation)
    {
        long h = x.shape[2], w = x.shape[3];
        int reach = window / 2 * dilation;
        var unit = x / linalg.vector_norm(x, 2, new long[] { 1 }, keepdim: true).clamp_min(1e-8);
        var padded = nn.functional.pad(unit, new long[] { reach, reach, reach, reach });
        var similarities = new List<Tensor>();
        for (int i = 0; i < window; i++)
            for (int j = 0; j < window; j++)
                if (i != window / 2 || j != window / 2)
                    similarities.Add((unit * padded[.., .., (i * dilation)..(i * dilation + (int)h), (j * dilation)..(j * dilation + (int)w)]).sum(1));
        return stack(similarities, 1);
    }

    static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        CollectionAssert.AreEqual(expected.shape, actual.shape, what);
        // Relative as well as absolute: the gradient at an all-zero pixel is divided by the clamped norm, 1e-8.
        double difference = (expected - actual).abs().max().item<double>();
        Assert.IsTrue(actual.allclose(expected, rtol: 1e-12, atol: 1e-10), $"{what}: max difference {difference:G3}");
    }

    [TestMethod]
    [DataRow(2, 5, 6, 7, 3, 2, 1L, DisplayName = "B=2, odd width, one-row bands")]
    [DataRow(2, 5, 6, 7, 3, 2, DefaultBudget, DisplayName = "B=2, odd width, default budget")]
    [DataRow(1, 3, 9, 5, 3, 2, 300L, DisplayName = "odd height and width, bands of two rows")]
    [DataRow(2, 4, 1, 6, 3, 2, 1L, DisplayName = "one row, smaller than the reach")]
    [DataRow(1, 4, 2, 3, 3, 2, 1L, DisplayName = "2×3 map, smaller than the reach")]
    [DataRow(2, 3, 3, 1, 3, 2, 1L, DisplayName = "one column")]
    [DataRow(1, 6, 3, 3, 3, 2, DefaultBudget, DisplayName = "3×3 map, default budget")]
    [DataRow(2, 4, 11, 8, 5, 1, 1600L, DisplayName = "window 5, dilation 1, bands of three rows")]
    [DataRow(1, 2, 7, 7, 3, 3, 1L, DisplayName = "dilation 3")]
    public void ForwardAndGradientEqualTheStraightforwardAutogradFormulation(int b, int c, int h, int w, int window, int dilation, long bandBytes)
    {
        using var scope = NewDisposeScope();
        manual_seed(11 + h * 7 + w);
        var x = randn(new long[] { b, c, h, w }, float64);
        // A pixel with all channels zero exercises the clamped norm.
        x[0, .., 0, 0] = zeros(c, float64);
        var g = randn(new long[] { b, (long)window * window - 1, h, w }, float64);

        var xOracle = x.detach().clone().requires_grad_();
        var expected = Oracle(xOracle, window, dilation);
        expected.backward(new[] { g });

        var xBanded = x.detach().clone().requires_grad_();
        var actual = LocalSimilarity.Cosine(xBanded, window, dilation, bandBytes);
        actual.backward(new[] { g });

        AssertClose(expected, actual, "similarities");
        AssertClose(xOracle.grad!, xBanded.grad!, "gradient");
    }

    const long DefaultBudget = LocalSimilarity.DefaultBandBytes;

    [TestMethod]
    [DataRow(0, 8, DisplayName = "all neighbours: the incoming gradient is an expanded scalar")]
    [DataRow(2, 5, DisplayName = "neighbours 2–4: the incoming gradient is zero elsewhere")]
    public void GradientOfASumOfNeighboursIsThatOfTheAutogradFormulation(int first, int end)
    {
        using var scope = NewDisposeScope();
        manual_seed(12);
        var x = randn(new long[] { 2, 4, 5, 6 }, float64);
        // The whole output is summed without a slice, whose backward would hand on a dense gradient.
        Tensor Loss(Tensor similarities) => (first == 0 && end == 8 ? similarities : similarities[.., first..end]).sum();
        var xOracle = x.detach().clone().requires_grad_();
        Loss(Oracle(xOracle, 3, 2)).backward();
        var xBanded = x.detach().clone().requires_grad_();
        Loss(LocalSimilarity.Cosine(xBanded, 3, 2, bandBytes: 1)).backward();
        AssertClose(xOracle.grad!, xBanded.grad!, "gradient");
    }

    [TestMethod]
    public void InferenceWithoutGradientsGivesTheSameValuesAndNoGraph()
    {
        using var scope = NewDisposeScope();
        manual_seed(13);
        var x = randn(new long[] { 2, 5, 7, 6 }, float64).requires_grad_();
        var expected = Oracle(x.detach(), 3, 2);
        using (no_grad())
        {
            var banded = LocalSimilarity.Cosine(x, 3, 2, bandBytes: 1);
            Assert.IsFalse(banded.requires_grad);
            AssertClose(expected, banded, "no_grad");
            AssertClose(expected, LocalSimilarity.Cosine(x), "no_grad, default budget");
        }
    }
}
