using MLNetFreqFusion.Decoders;
using MLNetFreqFusion.Tests.Operators;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Decoders;

[TestClass]
public sealed class MlpTests
{
    /// <summary>
    /// The SegFormer-style projection runs as one matrix product per image into a contiguous map; it must be the
    /// Linear layer applied to every pixel's channels (HuggingFace's SegformerMLP), forward and gradients, in float64,
    /// for a contiguous and a channels-last input.
    /// </summary>
    [TestMethod]
    public void TheProjectionIsTheLinearLayerOnEveryPixelIntoAContiguousMap()
    {
        using var scope = NewDisposeScope();
        manual_seed(23);
        using var mlp = new Mlp(6, 5);
        mlp.to(ScalarType.Float64);
        foreach (var x in new[] { randn(new long[] { 2, 6, 4, 7 }, float64), randn(new long[] { 2, 4, 7, 6 }, float64).permute(0, 3, 1, 2) })
        {
            var input = x.detach().requires_grad_();
            var y = mlp.call(input);
            Assert.IsTrue(y.is_contiguous(), "the projected map is contiguous");
            var parameters = mlp.parameters().ToArray();
            var expected = nn.functional.linear(input.permute(0, 2, 3, 1), parameters[0], parameters[1]).permute(0, 3, 1, 2);
            Assert.IsTrue(y.allclose(expected, rtol: 1e-12, atol: 1e-12), "forward");
            GradientAssert.Same([y], [expected], [input, parameters[0], parameters[1]], ["input", "weight", "bias"], rtol: 1e-10, atol: 1e-10, "projection");
        }
    }
}
