using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Operators;

/// <summary>An operator of two tensors, its output and both gradients, the way the operator tests compare formulations.</summary>
internal static class BinaryGradients
{
    /// <summary>
    /// <paramref name="op"/>(a, b) on fresh leaves, and d(cotangent · output) with respect to both; the inputs
    /// themselves are left untouched.
    /// </summary>
    public static (Tensor Out, Tensor GradA, Tensor GradB) Of(Func<Tensor, Tensor, Tensor> op, Tensor a, Tensor b, Tensor cotangent)
    {
        var aLeaf = a.detach().clone().requires_grad_();
        var bLeaf = b.detach().clone().requires_grad_();
        var output = op(aLeaf, bLeaf);
        (output * cotangent).sum().backward();
        return (output.detach(), aLeaf.grad!, bLeaf.grad!);
    }
}
