using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Operators;

/// <summary>
/// The networks' convolutions run through here, so the choice of formulation is made in one place: batched matrix
/// products (<see cref="PointwiseConvolution"/>) for 1×1 convolutions (compressors, projections, fuse layers,
/// classifiers), register-blocked AVX-512 or AVX2 loops (<see cref="DirectConvolution"/>) for stride-1 convolutions on maps
/// of whole vectors (in training only those tap products would take, whose gradients they use), tap products
/// (<see cref="TapConvolution"/>) for stride-1 convolutions to at most half as many channels
/// (FreqFusion's kernel encoders and offset scopes), bands of output rows (<see cref="BandedConvolution"/>) when ATen's
/// column buffer would be large, and the module's own forward otherwise; a 1×1 convolution of a narrower map's
/// projection runs on that map with composed weights. Only MiT's depthwise convolutions and ResNet's
/// downsampling branches (a convolution and its batch norm in one <c>Sequential</c>) still call their modules directly.
/// </summary>
internal static class SpatialConvolution
{
    /// <summary>How <see cref="Forward(Conv2d, Tensor)"/> computes a convolution.</summary>
    internal enum Formulation { Module, Pointwise, Direct, TapProducts, Bands }

    /// <summary>Set by the benchmarks' <c>profile ab --experiment no-tap-products</c> only, to time the networks without them.</summary>
    internal static bool TapProductsOffForBenchmark { get; set; }

    /// <summary>Set by the benchmarks' <c>profile ab --experiment no-pointwise-products</c> only, to time the networks without them.</summary>
    internal static bool PointwiseProductsOffForBenchmark { get; set; }

    /// <summary>The formulation <see cref="Forward(Conv2d, Tensor)"/> uses for <paramref name="conv"/> on <paramref name="x"/>.</summary>
    internal static Formulation Choose(Conv2d conv, Tensor x) => Choose(conv, conv.weight?.shape[0] ?? 0, x);

    /// <summary>The formulation for a convolution of <paramref name="conv"/>'s geometry to <paramref name="outputs"/> channels.</summary>
    internal static Formulation Choose(Conv2d conv, long outputs, Tensor x) =>
        !PointwiseProductsOffForBenchmark && PointwiseConvolution.Fits(conv, x) ? Formulation.Pointwise
        : DirectConvolution.Fits(conv, outputs, x) ? Formulation.Direct
        : !TapProductsOffForBenchmark && TapConvolution.Fits(conv, outputs, x) ? Formulation.TapProducts
        : BandedConvolution.Bands(conv, x, BandedConvolution.MaxColumnBytes).Count > 1 ? Formulation.Bands
        : Formulation.Module;

    /// <summary>Set by the benchmarks' <c>profile ab --experiment no-merged-convolutions</c> only: each convolution of a <see cref="Forward(Conv2d[], Tensor)"/> call on its own.</summary>
    internal static bool MergingOffForBenchmark { get; set; }

    /// <summary><paramref name="conv"/>(<paramref name="x"/>), computed as <see cref="Choose(Conv2d, Tensor)"/> says.</summary>
    public static Tensor Forward(Conv2d conv, Tensor x)
    {
        // Module-formulation calls go through the module so its hooks (and a profiler's) see them.
        var formulation = Choose(conv, x);
        if (formulation == Formulation.Module)
            return conv.call(x);
        Func<Tensor, Tensor> compute = formulation switch
        {
            Formulation.Pointwise => input => PointwiseConvolution.Forward(conv, input),
            Formulation.Direct => input => DirectConvolution.Forward(conv, conv.weight!, conv.bias, input),
            Formulation.TapProducts => input => TapConvolution.Forward(conv, input),
            _ => input => BandedConvolution.Forward(conv, input),
        };
        return Profiled(conv, x, compute);
    }

    /// <summary>
    /// Convolutions of one geometry that read the same input (FreqFusion's two kernel encoders on the compressed lr
    /// feature, the offset generator's offset and scope convolutions), computed as one convolution to all their
    /// channels and split: the input is read and its columns or products formed once, and a small map pays one
    /// operator's fixed costs instead of several. Each output channel is the same sum of products as its own
    /// convolution's. Convolutions that differ in geometry, bias or input channels run one by one.
    /// </summary>
    /// <returns>Each convolution's output, in order.</returns>
    public static Tensor[] Forward(Conv2d[] convs, Tensor x)
    {
        if (convs.Length < 2 || MergingOffForBenchmark || !Mergeable(convs, x))
            return convs.Select(conv => Forward(conv, x)).ToArray();
        var first = convs[0];
        long[] sizes = convs.Select(conv => conv.weight!.shape[0]).ToArray();
        using var scope = NewDisposeScope();
        var weight = cat(convs.Select(conv => conv.weight!).ToArray(), 0);
        var bias = first.bias is null ? null : cat(convs.Select(conv => conv.bias!).ToArray(), 0);
        Func<Tensor, Tensor> compute = Choose(first, sizes.Sum(), x) switch
        {
            Formulation.Pointwise => input => PointwiseConvolution.Forward(weight, bias, input),
            Formulation.Direct => input => DirectConvolution.Forward(first, weight, bias, input),
            Formulation.TapProducts => input => TapConvolution.Forward(first, weight, bias, input),
            Formulation.Bands => input => BandedConvolution.Forward(first, weight, bias, input),
            _ => input => nn.functional.conv2d(input, weight, bias, first.stride, first.padding, first.dilation, first.groups),
        };
        var outputs = Profiled(first, x, compute).split(sizes, 1);
        foreach (var output in outputs)
            output.MoveToOuterDisposeScope();
        return outputs;
    }

    /// <summary>Set by the benchmarks' <c>profile ab --experiment no-composed-projections</c> only: a 1×1 convolution of a projection reads the projection.</summary>
    internal static bool ComposedProjectionsOffForBenchmark { get; set; }

    /// <summary>
    /// Whether <see cref="Forward(Conv2d, Tensor, LinearProjection)"/> computes <paramref name="conv"/> from the
    /// projection's source with composed weights: a 1×1 convolution of a projection from fewer channels than it has.
    /// </summary>
    internal static bool Composes(Conv2d conv, Tensor projected, LinearProjection projection) =>
        PointwiseConvolution.Fits(conv, projected) && Narrower(projected, projection);

    static bool Narrower(Tensor projected, LinearProjection projection) =>
        !ComposedProjectionsOffForBenchmark && projection.Source.shape[1] < projected.shape[1];

    /// <summary>
    /// <paramref name="conv"/>(<paramref name="projected"/>) where <paramref name="projected"/> is
    /// <paramref name="projection"/> of its source (the concat head's projected stages, whose FreqFusion compresses them
    /// again). A 1×1 convolution of a per-pixel linear map is one per-pixel linear map, (W·P) x + (W·b + c), so when the
    /// source is the narrower map (ResNet-18's 64 channels at 1/4 against the decoder's 256) it is computed from the
    /// source with the composed weights: a quarter of the products there, forward and backward. The composed weights are
    /// made every call from the parameters, so the gradients reach both layers' weights; the sums are the same, in
    /// another order.
    /// </summary>
    public static Tensor Forward(Conv2d conv, Tensor projected, LinearProjection projection)
    {
        if (!Composes(conv, projected, projection))
            return Forward(conv, projected);
        return Profiled(conv, projection.Source, source => Composed(conv.weight!, conv.bias, projection with { Source = source }));
    }

    /// <summary>
    /// <paramref name="weight"/> [M, C] times <paramref name="projected"/> [B, C, H, W] at every pixel (a 1×1 map without
    /// bias: a decode head's columns of its fuse layer), from the projection's source with composed weights when it is
    /// narrower, as <see cref="Forward(Conv2d, Tensor, LinearProjection)"/>.
    /// </summary>
    internal static Tensor Mix(Tensor weight, Tensor projected, LinearProjection? projection)
    {
        if (projection is LinearProjection p && Narrower(projected, p))
            return Composed(weight, null, p);
        return PointwiseConvolution.Forward(weight.reshape(weight.shape[0], -1, 1, 1), null, projected);
    }

    /// <summary>(W·P) x + (W·b + c) for W = <paramref name="weight"/>, c = <paramref name="bias"/> and the projection's P, b and x.</summary>
    static Tensor Composed(Tensor weight, Tensor? bias, LinearProjection projection)
    {
        long outputs = weight.shape[0];
        using var scope = NewDisposeScope();
        var rows = weight.reshape(outputs, -1);
        var composed = rows.mm(projection.Weight.reshape(rows.shape[1], -1)).view(outputs, -1, 1, 1);
        var composedBias = projection.Bias is null ? bias : bias is null ? rows.mv(projection.Bias) : bias + rows.mv(projection.Bias);
        return PointwiseConvolution.Forward(composed, composedBias, projection.Source).MoveToOuterDisposeScope();
    }

    static bool Mergeable(Conv2d[] convs, Tensor x)
    {
        var first = convs[0];
        return convs.All(conv => conv.weight is not null && conv.weight.shape[1] == x.shape[1] && (conv.bias is null) == (first.bias is null)
            && conv.padding_type is null && conv.padding_mode == PaddingModes.Zeros && conv.padding is not null
            && conv.groups == first.groups && conv.weight.dtype == first.weight!.dtype
            && conv.kernel_size.SequenceEqual(first.kernel_size) && conv.stride.SequenceEqual(first.stride)
            && conv.padding.SequenceEqual(first.padding!) && conv.dilation.SequenceEqual(first.dilation));
    }

    // The module is not called, so its profile hooks would not see this time; a profiler names its section instead.
    static Tensor Profiled(Conv2d conv, Tensor x, Func<Tensor, Tensor> compute) =>
        OperatorProfile.Recorder is not null && OperatorProfile.SectionOf(conv) is string section
            ? OperatorProfile.Section(section, x, compute)
            : compute(x);
}
