using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Operators;

/// <summary>
/// A 1×1 convolution as what it is, one matrix product per image: [out, in] × [in, h·w], batched with the weight
/// broadcast, so autograd's backward is two batched products as well. ATen's convolution (oneDNN being off,
/// docs/decisions.md) computes the input gradient image by image, one single-threaded product per image into a column
/// buffer as large as the input, allocated every step: at the decode heads' fuse layer at 512² batch 2
/// ([2, 1024 → 256, 128²]) its forward + backward took 630 ms against 351 ms as products, up to a third longer at the
/// networks' other large 1×1 convolutions and within a few per cent at small maps (docs/benchmarks.md §16). Each output
/// is the same sum of products, added in another order.
/// </summary>
internal static class PointwiseConvolution
{
    /// <summary>
    /// Whether <paramref name="conv"/> on <paramref name="x"/> is a 1×1 convolution this formulation computes:
    /// ungrouped, stride 1, no padding, on a batch of maps with the convolution's input channels.
    /// </summary>
    public static bool Fits(Conv2d conv, Tensor x) =>
        x.dim() == 4 && conv.weight is not null && conv.groups == 1 && conv.kernel_size is [1, 1]
        && conv.stride is [1, 1] && conv.padding_type is null && conv.padding is [0, 0]
        && x.shape[1] == conv.weight.shape[1];

    /// <summary><paramref name="conv"/>(<paramref name="x"/>) as batched matrix products; <see cref="Fits"/> must hold.</summary>
    public static Tensor Forward(Conv2d conv, Tensor x) => Forward(conv.weight!, conv.bias, x);

    /// <summary>A 1×1 convolution with <paramref name="weight"/> [out, in, 1, 1] and <paramref name="bias"/> as batched products.</summary>
    internal static Tensor Forward(Tensor weight, Tensor? bias, Tensor x)
    {
        long b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3], outputs = weight.shape[0];
        using var scope = NewDisposeScope();
        var rows = weight.view(outputs, c).expand(b, outputs, c);
        var columns = x.reshape(b, c, h * w);
        var y = bmm(rows, columns);
        // In place: bmm's backward does not need its output, and a new tensor would be one more output-sized write.
        if (bias is not null)
            y.add_(bias.view(1, outputs, 1));
        return scope.MoveToOuter(y.view(b, outputs, h, w));
    }
}

/// <summary>A map computed per pixel as <c>Weight · Source + Bias</c> (weight [out, in] or [out, in, 1, 1]): a projection's input and parameters.</summary>
internal readonly record struct LinearProjection(Tensor Source, Tensor Weight, Tensor? Bias);
