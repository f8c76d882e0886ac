using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using MLNetFreqFusion.Native;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Operators;

/// <summary>
/// A stride-1 convolution as register-blocked loops: each task keeps 4 output channels × 4 vectors of 16 output
/// pixels (a row of 64, or 2 rows of 32, or 4 of 16) in 16 AVX-512 registers, or on AVX2 hosts 4 × 2 vectors of 8 in
/// 8 of its 16, and adds every input channel's k² taps into them straight from a zero-padded copy of the input, one
/// broadcast weight and one load per product group.
/// Nothing the size of the output times k² is written: tap products write k²·out planes and sum them, ATen's
/// im2col writes in·k² columns; both are memory passes on maps too small to keep a matrix product busy. FreqFusion's
/// kernel encoders and offset convolutions at the module's small stages map 32–104 channels to 9–64 on 16²–64² maps,
/// where these loops ran 1.4–2.0 times faster than tap products or ATen (docs/benchmarks.md §23).
/// The forward only: the gradients are tap products' (<see cref="TapConvolution.Gradients"/>), so in training the loops
/// take only the convolutions tap products would; without autograd every convolution that fits.
/// Each output is the same sum of products, added in another order (input channel, then tap).
/// </summary>
internal static unsafe class DirectConvolution
{
    const int Outputs = 4;

    /// <summary>Set by the benchmarks' <c>profile ab --experiment no-direct-convolutions</c> and by tests only: tap products, bands or ATen instead.</summary>
    internal static bool OffForBenchmark { get; set; }

    /// <summary>Set by tests only: the AVX2 loops on an AVX-512 host, as an AVX2 host runs them.</summary>
    internal static bool Avx2ForTests { get; set; }

    /// <summary>
    /// A task's register block: <see cref="Outputs"/> output channels × <c>Vectors</c> vectors of <c>Lanes</c> pixels.
    /// AVX-512 has 32 registers: 16 accumulators of 16 lanes (64 pixels); AVX2 has 16: 8 accumulators of 8 lanes (16
    /// pixels), with room for the loaded vectors and the broadcast weight.
    /// </summary>
    readonly record struct Kernel(int Lanes, int Vectors)
    {
        public int Pixels => Lanes * Vectors;

        public static Kernel? OfHost => Avx512F.IsSupported && !Avx2ForTests ? new Kernel(16, 4)
            : Avx2.IsSupported && Fma.IsSupported ? new Kernel(8, 2)
            : null;
    }

    /// <summary>
    /// Whether the loops compute <paramref name="conv"/> (to <paramref name="outputs"/> channels) on <paramref name="x"/>:
    /// AVX-512, or AVX2 with FMA (elsewhere tap products, bands or ATen compute it as before), float32, the stride-1
    /// geometry tap products take (<see cref="TapConvolution.IsStrideOneSpatial"/>), output rows that fill whole vectors
    /// (<see cref="Layout"/>), and, where autograd will want
    /// gradients, a convolution tap products compute (their gradients are the ones used).
    /// </summary>
    public static bool Fits(Conv2d conv, long outputs, Tensor x)
    {
        if (OffForBenchmark || Kernel.OfHost is not Kernel kernel || x.dtype != ScalarType.Float32 || !TapConvolution.IsStrideOneSpatial(conv, x)
            || Layout.Of(TapConvolution.OutputSize(conv, x).W, kernel) is null)
            return false;
        return !NeedsGradients(x, conv.weight!, conv.bias) || TapConvolution.Fits(conv, outputs, x);
    }

    static bool NeedsGradients(Tensor x, Tensor weight, Tensor? bias) =>
        is_grad_enabled() && (x.requires_grad || weight.requires_grad || bias is { requires_grad: true });

    /// <summary>A convolution of <paramref name="conv"/>'s geometry with <paramref name="weight"/> and <paramref name="bias"/>; <see cref="Fits"/> must hold.</summary>
    public static Tensor Forward(Conv2d conv, Tensor weight, Tensor? bias, Tensor x)
    {
        var geometry = TapConvolution.GeometryOf(conv);
        if (!NeedsGradients(x, weight, bias))
            return Compute(x, weight, bias, geometry);
        return bias is null ? DirectFunction.apply(x, weight, geometry) : DirectFunction.apply(x, weight, geometry, bias);
    }

    /// <summary>
    /// How output rows of <c>outW</c> pixels fill a task's vectors: a task a row of the kernel's pixels, several tasks a
    /// row of a multiple of them, or several rows a task whose vectors each row fills (AVX-512: 4 rows of 16 or 2 of
    /// 32; AVX2: 2 rows of 8); null for other widths. Rows that leave lanes empty lost to tap products (24 of 32 lanes
    /// at 96² batch 8: 0.73×, docs/benchmarks.md §23), and the maps of 512² images and of the module's stages are all
    /// powers of two.
    /// </summary>
    readonly record struct Layout(int RowsPerTask, int TasksPerRow)
    {
        public static Layout? Of(long outW, Kernel kernel) =>
            outW > 0 && outW % kernel.Pixels == 0 && outW / kernel.Pixels <= int.MaxValue ? new Layout(1, (int)(outW / kernel.Pixels))
            : outW > 0 && outW % kernel.Lanes == 0 && kernel.Pixels % outW == 0 ? new Layout((int)(kernel.Pixels / outW), 1)
            : null;
    }

    static Tensor Compute(Tensor input, Tensor weight, Tensor? bias, TapConvolution.Geometry g)
    {
        using var scope = NewDisposeScope();
        int b = (int)input.shape[0], c = (int)input.shape[1], h = (int)input.shape[2], w = (int)input.shape[3], o = (int)weight.shape[0];
        int kh = (int)g.KernelH, kw = (int)g.KernelW, dy = (int)g.DilationH, dx = (int)g.DilationW, padH = (int)g.PadH, padW = (int)g.PadW;
        int outH = h + 2 * padH - dy * (kh - 1), outW = w + 2 * padW - dx * (kw - 1);
        var kernel = Kernel.OfHost!.Value;
        var layout = Layout.Of(outW, kernel)!.Value;
        int lanes = kernel.Lanes, vectors = kernel.Vectors;
        int rowsPerTask = layout.RowsPerTask, vectorsPerRow = outW / lanes;
        int rowGroups = (outH + rowsPerTask - 1) / rowsPerTask, height = rowGroups * rowsPerTask;
        // Zero rim, and zero rows below for a last row group past the map's end.
        int paddedW = w + 2 * padW, paddedH = height + dy * (kh - 1);
        var padded = nn.functional.pad(input.contiguous(), new long[] { padW, paddedW - w - padW, padH, paddedH - h - padH });
        int blocks = (o + Outputs - 1) / Outputs, paddedO = blocks * Outputs;
        var weights = paddedO == o ? weight.contiguous() : cat(new[] { weight, zeros(new long[] { paddedO - o, c, kh, kw }, dtype: weight.dtype) }, 0);
        var biases = bias is null ? zeros(paddedO, dtype: weight.dtype) : paddedO == o ? bias.contiguous() : cat(new[] { bias, zeros(paddedO - o, dtype: weight.dtype) }, 0);
        bool exact = paddedO == o && height == outH;
        var output = empty(new long[] { b, paddedO, height, outW }, dtype: input.dtype);

        float* source = TensorMemory.Floats(padded), target = TensorMemory.Floats(output);
        float* taps = TensorMemory.Floats(weights), offsets = TensorMemory.Floats(biases);
        long inPlane = (long)paddedH * paddedW, outPlane = (long)height * outW, weightsPerOutput = (long)c * kh * kw;
        var tapOffsets = new int[kh * kw];
        for (int i = 0; i < kh; i++)
            for (int j = 0; j < kw; j++)
                tapOffsets[i * kw + j] = i * dy * paddedW + j * dx;
        int tasksPerRowGroup = layout.TasksPerRow, tasks = b * rowGroups * tasksPerRowGroup * blocks;
        BlockFunction block = lanes == 16 ? Block512 : Block256;
        // Output blocks vary fastest, so consecutive tasks read the same input rows while they are in cache.
        OpenMpTeam.For(tasks, get_num_threads(), task =>
        {
            int outputBlock = task % blocks, rest = task / blocks;
            int part = rest % tasksPerRowGroup, rowGroup = rest / tasksPerRowGroup % rowGroups, image = rest / tasksPerRowGroup / rowGroups;
            var vectorsAt = new Vectors4();
            for (int v = 0; v < vectors; v++)
            {
                int row = rowsPerTask > 1 ? rowGroup * rowsPerTask + v / vectorsPerRow : rowGroup;
                int column = rowsPerTask > 1 ? v % vectorsPerRow * lanes : (part * vectors + v) * lanes;
                vectorsAt[v] = (row * paddedW + column, row * outW + column);
            }
            fixed (int* tapAt = tapOffsets)
                block(source + (long)image * c * inPlane, inPlane, c, kh * kw, tapAt,
                    taps + outputBlock * Outputs * weightsPerOutput, weightsPerOutput, offsets + outputBlock * Outputs,
                    target + ((long)image * paddedO + outputBlock * Outputs) * outPlane, outPlane, vectorsAt);
        });
        var result = exact ? output : output.narrow(1, 0, o).narrow(2, 0, outH).contiguous();
        return result.MoveToOuterDisposeScope();
    }

    [InlineArray(4)]
    struct Vectors4
    {
        (int Input, int Output) _element;
    }

    delegate void BlockFunction(float* x, long inPlane, int channels, int taps, int* tapAt, float* w, long wStride, float* bias, float* y, long outPlane, Vectors4 at);

    /// <summary>Four output channels at four vectors of 16 output pixels: input offsets and output offsets in <paramref name="at"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Block512(float* x, long inPlane, int channels, int taps, int* tapAt, float* w, long wStride, float* bias, float* y, long outPlane, Vectors4 at)
    {
        var a00 = Vector512.Create(bias[0]); var a01 = a00; var a02 = a00; var a03 = a00;
        var a10 = Vector512.Create(bias[1]); var a11 = a10; var a12 = a10; var a13 = a10;
        var a20 = Vector512.Create(bias[2]); var a21 = a20; var a22 = a20; var a23 = a20;
        var a30 = Vector512.Create(bias[3]); var a31 = a30; var a32 = a30; var a33 = a30;
        int i0 = at[0].Input, i1 = at[1].Input, i2 = at[2].Input, i3 = at[3].Input;
        for (int c = 0; c < channels; c++)
        {
            float* plane = x + c * inPlane;
            float* w0 = w + c * taps, w1 = w0 + wStride, w2 = w1 + wStride, w3 = w2 + wStride;
            for (int t = 0; t < taps; t++)
            {
                float* p = plane + tapAt[t];
                var x0 = Vector512.Load(p + i0);
                var x1 = Vector512.Load(p + i1);
                var x2 = Vector512.Load(p + i2);
                var x3 = Vector512.Load(p + i3);
                var b0 = Vector512.Create(w0[t]);
                a00 = Avx512F.FusedMultiplyAdd(x0, b0, a00); a01 = Avx512F.FusedMultiplyAdd(x1, b0, a01);
                a02 = Avx512F.FusedMultiplyAdd(x2, b0, a02); a03 = Avx512F.FusedMultiplyAdd(x3, b0, a03);
                var b1 = Vector512.Create(w1[t]);
                a10 = Avx512F.FusedMultiplyAdd(x0, b1, a10); a11 = Avx512F.FusedMultiplyAdd(x1, b1, a11);
                a12 = Avx512F.FusedMultiplyAdd(x2, b1, a12); a13 = Avx512F.FusedMultiplyAdd(x3, b1, a13);
                var b2 = Vector512.Create(w2[t]);
                a20 = Avx512F.FusedMultiplyAdd(x0, b2, a20); a21 = Avx512F.FusedMultiplyAdd(x1, b2, a21);
                a22 = Avx512F.FusedMultiplyAdd(x2, b2, a22); a23 = Avx512F.FusedMultiplyAdd(x3, b2, a23);
                var b3 = Vector512.Create(w3[t]);
                a30 = Avx512F.FusedMultiplyAdd(x0, b3, a30); a31 = Avx512F.FusedMultiplyAdd(x1, b3, a31);
                a32 = Avx512F.FusedMultiplyAdd(x2, b3, a32); a33 = Avx512F.FusedMultiplyAdd(x3, b3, a33);
            }
        }
        int o0 = at[0].Output, o1 = at[1].Output, o2 = at[2].Output, o3 = at[3].Output;
        a00.Store(y + o0); a01.Store(y + o1); a02.Store(y + o2); a03.Store(y + o3);
        y += outPlane;
        a10.Store(y + o0); a11.Store(y + o1); a12.Store(y + o2); a13.Store(y + o3);
        y += outPlane;
        a20.Store(y + o0); a21.Store(y + o1); a22.Store(y + o2); a23.Store(y + o3);
        y += outPlane;
        a30.Store(y + o0); a31.Store(y + o1); a32.Store(y + o2); a33.Store(y + o3);
    }

    /// <summary>Four output channels at two vectors of 8 output pixels (AVX2's 16 registers: 8 accumulators, 2 loads, a broadcast).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Block256(float* x, long inPlane, int channels, int taps, int* tapAt, float* w, long wStride, float* bias, float* y, long outPlane, Vectors4 at)
    {
        var a00 = Vector256.Create(bias[0]); var a01 = a00;
        var a10 = Vector256.Create(bias[1]); var a11 = a10;
        var a20 = Vector256.Create(bias[2]); var a21 = a20;
        var a30 = Vector256.Create(bias[3]); var a31 = a30;
        int i0 = at[0].Input, i1 = at[1].Input;
        for (int c = 0; c < channels; c++)
        {
            float* plane = x + c * inPlane;
            float* w0 = w + c * taps, w1 = w0 + wStride, w2 = w1 + wStride, w3 = w2 + wStride;
            for (int t = 0; t < taps; t++)
            {
                float* p = plane + tapAt[t];
                var x0 = Avx.LoadVector256(p + i0);
                var x1 = Avx.LoadVector256(p + i1);
                var b0 = Vector256.Create(w0[t]);
                a00 = Fma.MultiplyAdd(x0, b0, a00); a01 = Fma.MultiplyAdd(x1, b0, a01);
                var b1 = Vector256.Create(w1[t]);
                a10 = Fma.MultiplyAdd(x0, b1, a10); a11 = Fma.MultiplyAdd(x1, b1, a11);
                var b2 = Vector256.Create(w2[t]);
                a20 = Fma.MultiplyAdd(x0, b2, a20); a21 = Fma.MultiplyAdd(x1, b2, a21);
                var b3 = Vector256.Create(w3[t]);
                a30 = Fma.MultiplyAdd(x0, b3, a30); a31 = Fma.MultiplyAdd(x1, b3, a31);
            }
        }
        int o0 = at[0].Output, o1 = at[1].Output;
        Avx.Store(y + o0, a00); Avx.Store(y + o1, a01);
        y += outPlane;
        Avx.Store(y + o0, a10); Avx.Store(y + o1, a11);
        y += outPlane;
        Avx.Store(y + o0, a20); Avx.Store(y + o1, a21);
        y += outPlane;
        Avx.Store(y + o0, a30); Avx.Store(y + o1, a31);
    }

    /// <summary>Autograd wrapper: the loops forward, tap products' gradients backward; saves only the input and the weight.</summary>
    sealed class DirectFunction : autograd.SingleTensorFunction<DirectFunction>
    {
        public override string Name => "DirectConvolution";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var (x, weight, g) = ((Tensor)vars[0], (Tensor)vars[1], (TapConvolution.Geometry)vars[2]);
            var bias = vars.Length > 3 ? (Tensor)vars[3] : null;
            TapConvolution.SaveForGradients(ctx, x, weight, bias, g, vars.Length);
            return Compute(x, weight, bias, g);
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput) => TapConvolution.Gradients(ctx, gradOutput);
    }
}
