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
}
