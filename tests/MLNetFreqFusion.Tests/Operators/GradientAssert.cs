using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Operators;

/// <summary>How the tests hold one formulation's gradients to another's.</summary>
internal static class GradientAssert
{
    /// <summary>
    /// Asserts that <paramref name="actual"/> and <paramref name="expected"/>, two formulations' outputs of one function
    /// of <paramref name="inputs"/>, have the same gradients by every input (within <paramref name="rtol"/> and
    /// <paramref name="atol"/>) for the same random upstream gradients. An input that no path of the expected
    /// formulation reaches is skipped. Both graphs are kept, so they may share a part.
    /// </summary>
    public static void Same(IList<Tensor> actual, IList<Tensor> expected, IList<Tensor> inputs, IList<string> names, double rtol, double atol, string what)
    {
        Assert.AreEqual(inputs.Count, names.Count, $"{what}: a name for every input");
        var upstream = expected.Select(output => randn_like(output)).ToArray();
        var grads = autograd.grad(actual, inputs, upstream, retain_graph: true, allow_unused: true);
        var expectedGrads = autograd.grad(expected, inputs, upstream, retain_graph: true, allow_unused: true);
        int compared = 0;
        for (int i = 0; i < inputs.Count; i++)
        {
            if (expectedGrads[i] is null || expectedGrads[i].IsInvalid)
                continue;
            Assert.IsTrue(grads[i] is not null && !grads[i].IsInvalid, $"{what}: no gradient of {names[i]}");
            Assert.IsTrue(grads[i].allclose(expectedGrads[i], rtol: rtol, atol: atol), $"{what}: gradient of {names[i]} differs");
            compared++;
        }
        Assert.IsTrue(compared > 0, $"{what}: no gradient compared");
    }
}
