using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Operators;

/// <summary>
/// A stride-1 convolution as one matrix product per image followed by shifted additions (the "kn2row" formulation of
/// Vasudevan, Anderson and Gregg, "Parallel multi channel convolution using general matrix multiplication", ASAP
/// 2017): every kernel tap t is a 1×1 convolution, so Y = W_taps · x computes all k² of them at once as
/// [k²·out, in] × [in, h·w], and the output is the bias plus the sum of each tap's plane shifted by its offset
/// (<see cref="TapShiftLoops"/>).
/// ATen's im2col instead writes a column buffer of in·k² values per output pixel; this writes out·k². FreqFusion's
/// kernel encoders and offset scopes map 64–256 channels to 8–32, 2–32 times fewer values: forward and backward
/// together 1.1–3.8 times faster than bands at the networks' shapes (docs/benchmarks.md §13). Its extra memory, the
/// tap planes (and their gradient in the backward), is k²·out/in times the input, 0.9 times at 256 → 25 channels, so
/// unlike im2col's columns it never needs banding. Each output is the same sum of products as the module's, added in
/// another order.
/// </summary>
internal static class TapConvolution
{
    /// <summary>
    /// Whether <paramref name="conv"/> on <paramref name="x"/> is a convolution this formulation computes and gains on:
    /// spatial, stride 1, ungrouped, explicit zero padding, a non-empty float32 or float64 CPU output, and at most
    /// half as many output as input channels, or at most as many once im2col's columns reach
    /// <see cref="WideOutputColumnBytes"/> (below that ATen's im2col of a small map costs less than the k²-times
    /// larger planes; docs/benchmarks.md §13 and §20).
    /// </summary>
    public static bool Fits(Conv2d conv, Tensor x) => conv.weight is not null && Fits(conv, conv.weight.shape[0], x);

    /// <summary><see cref="Fits(Conv2d, Tensor)"/> for <paramref name="conv"/>'s geometry with <paramref name="outputs"/> output channels.</summary>
    internal static bool Fits(Conv2d conv, long outputs, Tensor x)
    {
        if (!IsStrideOneSpatial(conv, x) || x.dtype is not (ScalarType.Float32 or ScalarType.Float64))
            return false;
        var (outH, outW) = OutputSize(conv, x);
        long inputs = conv.weight!.shape[1], columnBytes = x.shape[0] * inputs * conv.kernel_size[0] * conv.kernel_size[1] * outH * outW * x.element_size();
        return 2 * outputs <= inputs || (!WideOutputsOffForBenchmark && outputs <= inputs && columnBytes >= WideOutputColumnBytes);
    }

    /// <summary>
    /// The geometry stride-1 formulations (tap products, <see cref="DirectConvolution"/>) compute: a spatial kernel,
    /// stride 1, ungrouped, explicit zero padding, input and weight of one dtype on the CPU, and a non-empty output.
    /// </summary>
    internal static bool IsStrideOneSpatial(Conv2d conv, Tensor x)
    {
        if (x.dim() != 4 || conv.weight is null || conv.groups != 1 || conv.padding_type is not null
            || x.dtype != conv.weight.dtype || x.device_type != DeviceType.CPU
            || conv.padding_mode != PaddingModes.Zeros || conv.padding is not { Length: 2 })
            return false;
        if (conv.kernel_size[0] * conv.kernel_size[1] == 1 || conv.stride[0] != 1 || conv.stride[1] != 1 || x.shape[1] != conv.weight.shape[1])
            return false;
        var (outH, outW) = OutputSize(conv, x);
        return outH >= 1 && outW >= 1;
    }

    /// <summary>Set by the benchmarks' <c>profile ab --experiment no-wide-tap-outputs</c> only: tap products for at most half as many outputs as inputs, as before §20.</summary>
    internal static bool WideOutputsOffForBenchmark { get; set; }

    /// <summary>im2col's column buffer from which tap products pay for up to as many outputs as inputs.</summary>
    internal const long WideOutputColumnBytes = 4L << 20;

    /// <summary><paramref name="conv"/>(<paramref name="x"/>) by tap products; <see cref="Fits(Conv2d, Tensor)"/> must hold.</summary>
    public static Tensor Forward(Conv2d conv, Tensor x) => Forward(conv, conv.weight!, conv.bias, x);

    /// <summary>A convolution of <paramref name="conv"/>'s geometry with <paramref name="weight"/> and <paramref name="bias"/> by tap products.</summary>
    internal static Tensor Forward(Conv2d conv, Tensor weight, Tensor? bias, Tensor x)
    {
        var geometry = GeometryOf(conv);
        return bias is null
            ? TapFunction.apply(x, weight, geometry)
            : TapFunction.apply(x, weight, geometry, bias);
    }

    internal static (long H, long W) OutputSize(Conv2d conv, Tensor x) => (
        x.shape[2] + 2 * conv.padding![0] - conv.dilation[0] * (conv.kernel_size[0] - 1),
        x.shape[3] + 2 * conv.padding[1] - conv.dilation[1] * (conv.kernel_size[1] - 1));

    /// <summary><paramref name="conv"/>'s kernel size, explicit padding and dilation.</summary>
    internal static Geometry GeometryOf(Conv2d conv) =>
        new(conv.kernel_size[0], conv.kernel_size[1], conv.padding![0], conv.padding[1], conv.dilation[0], conv.dilation[1]);

    internal sealed record Geometry(long KernelH, long KernelW, long PadH, long PadW, long DilationH, long DilationW)
    {
        public long Taps => KernelH * KernelW;

        /// <summary>Tap t = i·KernelW + j: output (y, x) reads its plane at (y + RowShifts[t], x + ColumnShifts[t]).</summary>
        public int[] RowShifts { get; } = Enumerable.Range(0, (int)(KernelH * KernelW)).Select(t => (int)(t / KernelW * DilationH - PadH)).ToArray();

        /// <inheritdoc cref="RowShifts"/>
        public int[] ColumnShifts { get; } = Enumerable.Range(0, (int)(KernelH * KernelW)).Select(t => (int)(t % KernelW * DilationW - PadW)).ToArray();

        /// <summary>
        /// The output and tap-plane windows of every tap whose overlap is not empty, for the ATen slices the
        /// benchmarks compare the loops with (<see cref="ShiftLoopsOffForBenchmark"/>).
        /// </summary>
        public IEnumerable<(int Tap, (Range Rows, Range Columns) Output, (Range Rows, Range Columns) Plane)> Windows(long outH, long outW, long inH, long inW)
        {
            for (int t = 0; t < Taps; t++)
            {
                int sy = RowShifts[t], sx = ColumnShifts[t];
                long y0 = Math.Max(0, -sy), y1 = Math.Min(outH, inH - sy), x0 = Math.Max(0, -sx), x1 = Math.Min(outW, inW - sx);
                if (y1 > y0 && x1 > x0)
                    yield return (t, ((int)y0..(int)y1, (int)x0..(int)x1), ((int)(y0 + sy)..(int)(y1 + sy), (int)(x0 + sx)..(int)(x1 + sx)));
            }
        }
    }

    /// <summary>Set by the benchmarks' <c>profile ab --experiment no-tap-shift-loops</c> only: the shifted additions as ATen slices.</summary>
    internal static bool ShiftLoopsOffForBenchmark { get; set; }

    /// <summary>[out, in, kh, kw] → [kh·kw·out, in]: the rows of tap t are its 1×1 convolution.</summary>
    static Tensor TapRows(Tensor weight) =>
        weight.permute(2, 3, 0, 1).reshape(weight.shape[2] * weight.shape[3] * weight.shape[0], weight.shape[1]);

    /// <summary>Autograd wrapper: saves only the input and the weight, not the k²-times larger tap planes.</summary>
    sealed class TapFunction : autograd.SingleTensorFunction<TapFunction>
    {
        public override string Name => "TapConvolution";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var (x, weight, g) = ((Tensor)vars[0], (Tensor)vars[1], (Geometry)vars[2]);
            var bias = vars.Length > 3 ? (Tensor)vars[3] : null;
            SaveForGradients(ctx, x, weight, bias, g, vars.Length);

            using var scope = NewDisposeScope();
            long b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3], outputs = weight.shape[0];
            long outH = h + 2 * g.PadH - g.DilationH * (g.KernelH - 1), outW = w + 2 * g.PadW - g.DilationW * (g.KernelW - 1);
            var planes = matmul(TapRows(weight), x.reshape(b, c, h * w)).view(b, g.Taps, outputs, h, w);
            if (ShiftLoopsOffForBenchmark)
            {
                var sums = bias is null
                    ? zeros(new[] { b, outputs, outH, outW }, dtype: x.dtype, device: x.device)
                    : bias.view(1, outputs, 1, 1).expand(b, outputs, outH, outW).contiguous();
                foreach (var (tap, o, p) in g.Windows(outH, outW, h, w))
                    sums[.., .., o.Rows, o.Columns].add_(planes[.., tap, .., p.Rows, p.Columns]);
                return sums.MoveToOuterDisposeScope();
            }
            var output = empty(new[] { b, outputs, outH, outW }, dtype: x.dtype, device: x.device);
            TapShiftLoops.SumShifted(planes.contiguous(), bias?.contiguous(), output, g.RowShifts, g.ColumnShifts);
            return output.MoveToOuterDisposeScope();
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput) => Gradients(ctx, gradOutput);
    }

    /// <summary>What <see cref="Gradients"/> needs of a forward call: the input and the weight (not the k²-times larger tap planes), the geometry, which inputs want gradients.</summary>
    internal static void SaveForGradients(autograd.AutogradContext ctx, Tensor x, Tensor weight, Tensor? bias, Geometry g, int inputs)
    {
        ctx.save_for_backward(new List<Tensor> { x, weight });
        ctx.save_data("geometry", g);
        ctx.save_data("needs", (x.requires_grad, weight.requires_grad, bias is { requires_grad: true }));
        ctx.save_data("inputs", inputs);
    }

    /// <summary>
    /// The gradients of a stride-1 convolution saved by <see cref="SaveForGradients"/>, as tap products: each tap plane's
    /// gradient is the output gradient shifted back, the input gradient one product with the tap rows, the weight
    /// gradient one product with the input. Shared by this formulation's forward and <see cref="DirectConvolution"/>'s.
    /// </summary>
    internal static List<Tensor> Gradients(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var saved = ctx.get_saved_variables();
        var (x, weight) = (saved[0], saved[1]);
        var g = (Geometry)ctx.get_data("geometry");
        var (needX, needWeight, needBias) = ((bool, bool, bool))ctx.get_data("needs");
        using var scope = NewDisposeScope();
        long b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3], outputs = weight.shape[0];
        // Each tap plane's gradient is the output gradient shifted back; positions no output read stay zero.
        Tensor gradPlanes;
        if (ShiftLoopsOffForBenchmark)
        {
            gradPlanes = zeros(new[] { b, g.Taps, outputs, h, w }, dtype: gradOutput.dtype, device: gradOutput.device);
            foreach (var (tap, o, p) in g.Windows(gradOutput.shape[2], gradOutput.shape[3], h, w))
                gradPlanes[.., tap, .., p.Rows, p.Columns].copy_(gradOutput[.., .., o.Rows, o.Columns]);
        }
        else
        {
            gradPlanes = empty(new[] { b, g.Taps, outputs, h, w }, dtype: gradOutput.dtype, device: gradOutput.device);
            TapShiftLoops.ScatterShifted(gradOutput.contiguous(), gradPlanes, g.RowShifts, g.ColumnShifts);
        }
        var gradMatrix = gradPlanes.view(b, g.Taps * outputs, h * w);
        Tensor? gradX = needX ? matmul(TapRows(weight).t(), gradMatrix).view(b, c, h, w) : null;
        Tensor? gradWeight = null;
        if (needWeight)
        {
            using var perImage = bmm(gradMatrix, x.reshape(b, c, h * w).transpose(1, 2));
            gradWeight = perImage.sum(new long[] { 0 }).view(g.KernelH, g.KernelW, outputs, c).permute(2, 3, 0, 1).contiguous();
        }
        Tensor? gradBias = needBias ? gradOutput.sum(new long[] { 0, 2, 3 }) : null;
        saved.ForEach(t => t.Dispose());
        // One gradient per input of apply: x, weight, the geometry and, when there is one, the bias.
        var grads = new List<Tensor> { gradX?.MoveToOuterDisposeScope()!, gradWeight?.MoveToOuterDisposeScope()!, null! };
        if ((int)ctx.get_data("inputs") > 3)
            grads.Add(gradBias?.MoveToOuterDisposeScope()!);
        return grads;
    }
}
