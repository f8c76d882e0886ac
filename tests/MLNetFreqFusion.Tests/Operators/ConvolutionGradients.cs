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
}
