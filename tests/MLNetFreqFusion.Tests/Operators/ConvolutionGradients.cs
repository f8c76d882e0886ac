using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Operators;

/// <summary>The gradients a convolution's formulations are compared by.</summary>
internal static class ConvolutionGradients
{
    /// <summary>d(upstream · output) with respect to the input, the weight and, when the module has one, the bias.</summary>
    public static (Tensor X, Tensor Weight, Tensor? Bias) Of(TorchSharp.Modules.Conv2d conv, Tensor x, Tensor output, Tensor upstream)
    {
        var inputs = new List<Tensor> { x, conv.weight! };
        if (conv.bias is not null)
            inputs.Add(conv.bias);
        var grads = autograd.grad(new[] { output }, inputs, new[] { upstream }, retain_graph: true);
        return (grads[0], grads[1], grads.Count > 2 ? grads[2] : null);
    }

    /// <summary>
    /// Asserts that <paramref name="formulation"/> gives the module's output (within 1e-12) and its input, weight and
    /// bias gradients (within 1e-10) for <paramref name="x"/>: float64 inputs, so any larger difference is a real one.
    /// </summary>
    public static void AssertSameAsModule(TorchSharp.Modules.Conv2d conv, Tensor x, Func<Tensor, Tensor> formulation, string what)
    {
        var expected = conv.call(x);
        var upstream = randn_like(expected);
        var (gx, gw, gb) = Of(conv, x, expected, upstream);
        var actual = formulation(x);
        CollectionAssert.AreEqual(expected.shape, actual.shape, what);
        Assert.IsTrue(actual.allclose(expected, rtol: 1e-12, atol: 1e-12), $"forward differs: {what}");
        var (ax, aw, ab) = Of(conv, x, actual, upstream);
        Assert.IsTrue(ax.allclose(gx, rtol: 1e-10, atol: 1e-10), $"input gradient differs: {what}");
        Assert.IsTrue(aw.allclose(gw, rtol: 1e-10, atol: 1e-10), $"weight gradient differs: {what}");
        if (gb is not null)
            Assert.IsTrue(ab!.allclose(gb, rtol: 1e-10, atol: 1e-10), $"bias gradient differs: {what}");
    }

    /// <summary>
    /// Asserts the same of <paramref name="formulation"/> without autograd, and for its weight gradient alone when
    /// <paramref name="x"/> needs no gradient (the first layer of a network).
    /// </summary>
    public static void AssertSameAsModuleWithoutInputGradient(TorchSharp.Modules.Conv2d conv, Tensor x, Func<Tensor, Tensor> formulation)
    {
        var expected = conv.call(x);
        using (no_grad())
            Assert.IsTrue(formulation(x).allclose(expected, rtol: 1e-12, atol: 1e-12), "forward without autograd differs");
        var upstream = randn_like(expected);
        var expectedWeight = autograd.grad(new[] { expected }, new[] { conv.weight! }, new[] { upstream })[0];
        var actualWeight = autograd.grad(new[] { formulation(x) }, new[] { conv.weight! }, new[] { upstream })[0];
        Assert.IsTrue(actualWeight.allclose(expectedWeight, rtol: 1e-10, atol: 1e-10), "weight gradient differs");
    }
}
