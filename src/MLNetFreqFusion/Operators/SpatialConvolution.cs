using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Operators;

/// <summary>
/// The networks' convolutions run through here, so the choice of formulation is made in one place: batched matrix
/// products (<see cref="PointwiseConvolution"/>) for 1×1 convolutions (compressors, projections, fuse layers,
/// classifiers), tap products (<see cref="TapConvolution"/>) for stride-1 convolutions to at most half as many channels
/// (FreqFusion's kernel encoders and offset scopes), bands of output rows (<see cref="BandedConvolution"/>) when ATen's
/// column buffer would be large, and the module's own forward otherwise. Only MiT's depthwise convolutions and ResNet's
/// downsampling branches (a convolution and its batch norm in one <c>Sequential</c>) still call their modules directly.
/// </summary>
internal static class SpatialConvolution
{
    /// <summary>How <see cref="Forward"/> computes a convolution.</summary>
    internal enum Formulation { Module, Pointwise, TapProducts, Bands }

    /// <summary>Set by the benchmarks' <c>profile ab --experiment no-tap-products</c> only, to time the networks without them.</summary>
    internal static bool TapProductsOffForBenchmark { get; set; }

    /// <summary>Set by the benchmarks' <c>profile ab --experiment no-pointwise-products</c> only, to time the networks without them.</summary>
    internal static bool PointwiseProductsOffForBenchmark { get; set; }

    /// <summary>The formulation <see cref="Forward"/> uses for <paramref name="conv"/> on <paramref name="x"/>.</summary>
    internal static Formulation Choose(Conv2d conv, Tensor x) =>
        !PointwiseProductsOffForBenchmark && PointwiseConvolution.Fits(conv, x) ? Formulation.Pointwise
        : !TapProductsOffForBenchmark && TapConvolution.Fits(conv, x) ? Formulation.TapProducts
        : BandedConvolution.Bands(conv, x, BandedConvolution.MaxColumnBytes).Count > 1 ? Formulation.Bands
        : Formulation.Module;

    /// <summary><paramref name="conv"/>(<paramref name="x"/>), computed as <see cref="Choose"/> says.</summary>
    public static Tensor Forward(Conv2d conv, Tensor x)
    {
        var formulation = Choose(conv, x);
        if (formulation == Formulation.Module)
            return conv.call(x);
        Func<Tensor, Tensor> compute = formulation switch
        {
            Formulation.Pointwise => input => PointwiseConvolution.Forward(conv, input),
            Formulation.TapProducts => input => TapConvolution.Forward(conv, input),
            _ => input => BandedConvolution.Forward(conv, input),
        };
        // The module is not called, so its profile hooks would not see this time; a profiler names its section instead.
        return OperatorProfile.Recorder is not null && OperatorProfile.SectionOf(conv) is string section
            ? OperatorProfile.Section(section, x, compute)
            : compute(x);
    }
}
