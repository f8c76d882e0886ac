using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using MLNetFreqFusion.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Operators;

/// <summary>
/// CARAFE ×1 and ×2, forward and both gradients, as AVX2/FMA loops over libtorch's memory (the ×2 forward in
/// AVX-512 on hosts that have it, <see cref="UpsamplingRowsOf4"/>). Every output is a sum of
/// k² products (k² per phase when up-sampling); as ATen operations that was k² passes over the whole map at ×1 and
/// gathered windows in batched matrix products of 4 × 25 at ×2, together a fifth of the concat head's training step
/// (docs/benchmarks.md §14). The loops compute each output vector in registers in one pass: four channels (×1) or
/// two channels' four phases (×2) share every load, the kernel gradient sums a pixel's channels before it stores, and
/// the ×2 feature gradient sums output column pairs once at the end. <see cref="Carafe"/> pads the input (the padding
/// mode is its business) and folds the padding's gradient back; the loops never read outside a map. Threads are
/// libtorch's own (<see cref="OpenMpTeam"/>).
/// </summary>
internal static unsafe class CarafeLoops
{
    /// <summary>Set by the benchmarks' <c>profile ab --experiment no-carafe-loops</c> only, to time the networks without them.</summary>
    internal static bool OffForBenchmark { get; set; }

    /// <summary>Set by the benchmarks' <c>profile ab --experiment no-kernel-gradient-blocks</c> only: every group's channels in one pass.</summary>
    internal static bool KernelGradientBlocksOffForBenchmark { get; set; }

    const int Lanes = 8;
    const int RowsPerTask = 4;

    /// <summary>
    /// Whether the loops run: float32 CPU tensors on an x64 CPU with AVX2 and FMA (every host this library is
    /// measured on), source maps at least one vector (8 pixels) wide, up factor 1 or 2 (all FreqFusion uses).
    /// Otherwise <see cref="Carafe"/> keeps its ATen formulations.
    /// </summary>
    public static bool Fits(Tensor x, Tensor kernels, int up) =>
        !OffForBenchmark && Avx2.IsSupported && Fma.IsSupported && (up == 1 || up == 2) && x.dim() == 4 && x.shape[3] >= Lanes
        && x.dtype == ScalarType.Float32 && kernels.dtype == ScalarType.Float32
        && x.device_type == DeviceType.CPU && kernels.device_type == DeviceType.CPU;

    /// <summary>
    /// Where a weighted window sum reads, for output pixel (y, x) and tap (i, j): the weight plane of tap i·k + j at
    /// (y + WeightOffset + WeightStep·i, x + WeightOffset + WeightStep·j) and the source at
    /// (y + SourceOffset + SourceStep·i, x + SourceOffset + SourceStep·j). With a <c>Residual</c> r other than 0 (the ×1
    /// forward only) the output is r · the source at the window's centre − the sum: FreqFusion's high-pass filter.
    /// </summary>
    readonly record struct Walk(int WeightOffset, int WeightStep, int SourceOffset, int SourceStep, float Residual = 0);

    /// <summary>
    /// Element strides of a map of kernels (N = G·k²·phases maps, each tap's phases adjacent) between its rows, taps,
    /// phases, kernel groups and images: as planes, [B, N, rows, columns], or as rows per map row, [B, rows, N, columns].
    /// </summary>
    readonly record struct TapLayout(long Row, long Tap, long Phase, long Group, long Image)
    {
        public static TapLayout Planes(int groups, int k, int phases, long rows, long columns) =>
            new(Row: columns, Tap: phases * rows * columns, Phase: rows * columns, Group: k * k * phases * rows * columns, Image: groups * k * k * phases * rows * columns);

        public static TapLayout Rows(int groups, int k, int phases, long rows, long columns) =>
            new(Row: groups * k * k * phases * columns, Tap: phases * columns, Phase: columns, Group: k * k * phases * columns, Image: rows * groups * k * k * phases * columns);
    }

    /// <summary>
    /// Batch, channels, kernel groups, kernel size, up factor, and the sizes of the output (on the source's grid: an
    /// up-sampled output has up times its rows and columns), source and weight maps as the loop reads them (a weight
    /// map's layout beyond its planes' sizes is a <see cref="TapLayout"/>'s business).
    /// </summary>
    readonly record struct Dims(int B, int C, int G, int K, int Up, int H, int W, int SourceH, int SourceW, int WeightH, int WeightW)
    {
        public long Plane => (long)H * W;
        public long SourcePlane => (long)SourceH * SourceW;
        public long WeightPlane => (long)WeightH * WeightW;
        public int ChannelsPerGroup => C / G;
    }

    /// <summary>
    /// The forward pass: <paramref name="padded"/> [B, C, h + 2p, w + 2p] reassembled by <paramref name="kernels"/>
    /// [B, G·k², up·h, up·w] into [B, C, up·h, up·w]; with a <paramref name="residual"/> r ≠ 0 (up 1 only),
    /// r · x − that, in the same pass.
    /// </summary>
    public static Tensor Reassemble(Tensor padded, Tensor kernels, int k, int up, float residual = 0)
    {
        if (residual != 0 && up != 1)
            throw new ArgumentOutOfRangeException(nameof(residual), residual, "The residual form is a high-pass filter: up factor 1 only.");
        using var scope = NewDisposeScope();
        var source = padded.contiguous();
        long b = padded.shape[0], c = padded.shape[1], h = kernels.shape[2] / up, w = kernels.shape[3] / up;
        RequireVectorWidth(w);
        var output = empty(new[] { b, c, up * h, up * w }, dtype: ScalarType.Float32);
        if (up == 2)
        {
            // out[2y + u, 2x + v] = Σ_ij kernel_(ij, (u, v))[y, x] · padded[y + i, x + j]
            bool planar = PlanarLayoutsForBenchmark;
            var weights = planar ? nn.functional.pixel_unshuffle(kernels, 2).contiguous() : PhaseRows(kernels);
            int groups = (int)(kernels.shape[1] / (k * k));
            var layout = planar ? TapLayout.Planes(groups, k, 4, h, w) : TapLayout.Rows(groups, k, 4, h, w);
            float* wt = TensorMemory.Floats(weights), s = TensorMemory.Floats(source), o = TensorMemory.Floats(output);
            var d = new Dims((int)b, (int)c, groups, k, 2, (int)h, (int)w, (int)source.shape[2], (int)source.shape[3], (int)h, (int)w);
            InTasks(d, (bi, y0, y1) => UpsamplingRows(wt, s, o, d, layout, bi, y0, y1));
            return output.MoveToOuterDisposeScope();
        }
        // out[y, x] = Σ_ij kernel_ij[y, x] · padded[y + i, x + j]
        WeightedWindows(kernels.contiguous(), source, output, k, new Walk(WeightOffset: 0, WeightStep: 0, SourceOffset: 0, SourceStep: 1, residual));
        return output.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The feature gradient on the padded source map: position (Y, X) fed output (Y − i, X − j) through tap (i, j),
    /// of every sub-pixel phase when up-sampling. Returns all of it, [B, C, h + 2p, w + 2p], or only its interior
    /// [B, C, h, w] (all a zero-padded input needs).
    /// </summary>
    public static Tensor PaddedGradient(Tensor kernels, Tensor gradOutput, int k, int up, bool interiorOnly)
    {
        if (up != 1 && up != 2)
            throw new ArgumentOutOfRangeException(nameof(up), up, "The loops' feature gradient covers up factors 1 and 2.");
        RequireVectorWidth(kernels.shape[3] / up);
        using var scope = NewDisposeScope();
        int p = k / 2, q = 2 * p, rim = up * q;
        // Zero rims of 2p source pixels make every (Y − i, X − j) a valid read of the kernels (and at ×1 of the
        // gradient), so the loops have no bounds to test there.
        var sides = new long[] { rim, rim, rim, rim };
        var weights = nn.functional.pad(kernels, sides, PaddingModes.Constant, 0).contiguous();
        long h = kernels.shape[2] / up + (interiorOnly ? 0 : q), w = kernels.shape[3] / up + (interiorOnly ? 0 : q);
        var output = empty(new[] { gradOutput.shape[0], gradOutput.shape[1], h, w }, dtype: ScalarType.Float32);
        // Padded position Y is output row Y − p of the interior; in the rimmed maps source row Y − i sits at Y − i + 2p.
        int offset = (interiorOnly ? p : 0) + q;
        if (up == 1)
        {
            var source = nn.functional.pad(gradOutput, sides, PaddingModes.Constant, 0).contiguous();
            WeightedWindows(weights, source, output, k, new Walk(WeightOffset: offset, WeightStep: -1, SourceOffset: offset, SourceStep: -1));
        }
        else
        {
            long n = weights.shape[1], rows = weights.shape[2], columns = weights.shape[3];
            var layout = TapLayout.Planes((int)(n / (k * k)), k, 1, rows, columns);
            // The gradient is read without rims (a copy of the largest tensor in the network's backward pass, 127 MB at
            // the concat head's last stage and 512² batch 2): rows outside it are skipped, and the vectors at its left
            // and right edges read it through masks (docs/benchmarks.md §22).
            bool rimmed = RimmedGradientForBenchmark;
            var gradient = rimmed ? nn.functional.pad(gradOutput, sides, PaddingModes.Constant, 0).contiguous() : gradOutput.contiguous();
            int gradientRim = rimmed ? 0 : rim;
            float* wt = TensorMemory.Floats(weights), s = TensorMemory.Floats(gradient), o = TensorMemory.Floats(output);
            var d = new Dims((int)output.shape[0], (int)output.shape[1], (int)(n / (k * k)), k, 2, (int)h, (int)w,
                (int)gradient.shape[2], (int)gradient.shape[3], (int)rows, (int)columns);
            InTasks(d, (bi, y0, y1) => UpsamplingGradientRows(wt, s, o, d, layout, offset, gradientRim, bi, y0, y1));
        }
        return output.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The kernel gradient [B, G·k², up·h, up·w]: tap (i, j) at output pixel (y, x) is Σ over its group's channels of
    /// gradOutput[y, x] · padded[y / up + i, x / up + j].
    /// </summary>
    public static Tensor KernelGradient(Tensor padded, Tensor gradOutput, int k, int up, long groups)
    {
        using var scope = NewDisposeScope();
        // Each source column repeated up times: column x / up + j of the source is then column x + up·j, so the loop
        // reads whole vectors at the output's resolution.
        // (A broadcast view copied once: ATen's repeat_interleave gathers through an index and took longer.)
        var source = up == 1 ? padded.contiguous()
            : padded.unsqueeze(4).expand(-1, -1, -1, -1, up).reshape(padded.shape[0], padded.shape[1], padded.shape[2], up * padded.shape[3]);
        var grad = gradOutput.contiguous();
        long b = grad.shape[0], c = grad.shape[1], h = grad.shape[2], w = grad.shape[3];
        RequireVectorWidth(w / up);
        // The taps' sums are written as rows per map row, [B, h, G·k², w], and laid out as planes at the end: a row's
        // k² partial sums then stay in L1 between channel blocks; as planes of a power-of-two size (128² at 512²
        // images) they all fell in one cache set (docs/benchmarks.md §22).
        bool planar = PlanarLayoutsForBenchmark;
        var output = planar ? empty(new[] { b, groups * k * k, h, w }, dtype: ScalarType.Float32) : empty(new[] { b, h, groups * k * k, w }, dtype: ScalarType.Float32);
        float* s = TensorMemory.Floats(source), g = TensorMemory.Floats(grad), o = TensorMemory.Floats(output);
        var d = new Dims((int)b, (int)c, (int)groups, k, up, (int)h, (int)w, (int)source.shape[2], (int)source.shape[3], (int)h, (int)w);
        var layout = planar ? TapLayout.Planes((int)groups, k, 1, h, w) : TapLayout.Rows((int)groups, k, 1, h, w);
        InTasks(d, (bi, y0, y1) => KernelGradientRows(s, g, o, d, layout, bi, y0, y1));
        return (planar ? output : output.permute(0, 2, 1, 3).contiguous()).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The loops' last vector of a row ends at the row's end; a row shorter than a vector would start it before the
    /// row, outside the tensor. <see cref="Fits"/> keeps such maps away; this makes a caller that skipped it fail safely.
    /// </summary>
    static void RequireVectorWidth(long width)
    {
        if (width < Lanes)
            throw new ArgumentException($"The CARAFE loops need maps at least {Lanes} pixels wide (got {width}); check CarafeLoops.Fits first.");
    }

    /// <summary>
    /// Set by the benchmarks' <c>profile ab --experiment planar-carafe-layouts</c> only: the ×2 forward reads its
    /// kernels, and the kernel gradient writes its taps, as whole planes instead of rows per map row.
    /// </summary>
    internal static bool PlanarLayoutsForBenchmark { get; set; }

    /// <summary>
    /// [B, N, 2h, 2w] → [B, h, N·4, w]: for each source row, every kernel's four phases as consecutive rows. A pixel's
    /// 4k² weights then lie one row (w floats) apart instead of a plane apart; with planes of a power-of-two size (64²
    /// at 512² images) the planar layout put all 100 in one cache set, and the forward ran 1.8× slower per output
    /// there than at 63² (docs/benchmarks.md §22).
    /// </summary>
    static Tensor PhaseRows(Tensor kernels)
    {
        long b = kernels.shape[0], n = kernels.shape[1], h = kernels.shape[2] / 2, w = kernels.shape[3] / 2;
        // [b, n, y, u, x, v] → [b, y, n, u, v, x]
        return kernels.view(b, n, h, 2, w, 2).permute(0, 2, 1, 3, 5, 4).reshape(b, h, n * 4, w);
    }

    /// <summary>
    /// Rows y0..y1 (on the source's grid) of image b's ×2 forward, a channel pair at a time, from kernels laid out as
    /// <paramref name="layout"/> says.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void UpsamplingRows(float* weights, float* source, float* output, Dims d, TapLayout layout, int b, int y0, int y1)
    {
        int perGroup = d.ChannelsPerGroup;
        bool wide = UpsamplesInAvx512(d.W);
        for (int group = 0; group < d.G; group++)
        {
            float* groupWeights = weights + b * layout.Image + group * layout.Group;
            int c = group * perGroup, end = (group + 1) * perGroup;
            if (wide)
            {
                // A channel block's rows keep its source rows in L1 while the weights stream from L2; a pixel block's
                // channels the other way round measured 5–10 % slower.
                for (; c + 4 <= end; c += 4)
                    UpsamplingRowsOf4(groupWeights, source + ((long)b * d.C + c) * d.SourcePlane, output + ((long)b * d.C + c) * 4 * d.Plane, d, layout, y0, y1);
            }
            // The four phases read the same windows, so two channels' phases are summed together; an odd last channel
            // goes in both places and is stored once.
            for (; c < end; c += 2)
            {
                float* first = source + ((long)b * d.C + c) * d.SourcePlane;
                float* second = c + 1 < end ? first + d.SourcePlane : first;
                UpsamplingRowsOf2(groupWeights, first, second, output + ((long)b * d.C + c) * 4 * d.Plane, c + 1 < end, d, layout, y0, y1);
            }
        }
    }

    /// <summary>Set by the benchmarks' <c>profile ab --experiment rimmed-carafe-gradient</c> only: the ×2 feature gradient reads a zero-rimmed copy of the incoming gradient.</summary>
    internal static bool RimmedGradientForBenchmark { get; set; }

    /// <summary>The weighted window sums without up-sampling: the ×1 forward pass and the ×1 feature gradient.</summary>
    static void WeightedWindows(Tensor weights, Tensor source, Tensor output, int k, Walk walk)
    {
        float* wt = TensorMemory.Floats(weights), s = TensorMemory.Floats(source), o = TensorMemory.Floats(output);
        var d = new Dims((int)output.shape[0], (int)output.shape[1], (int)(weights.shape[1] / (k * k)), k, 1, (int)output.shape[2], (int)output.shape[3],
            (int)source.shape[2], (int)source.shape[3], (int)weights.shape[2], (int)weights.shape[3]);
        InTasks(d, (bi, y0, y1) => WeightedWindowRows(wt, s, o, d, walk, bi, y0, y1));
    }

    /// <summary>Bands of output rows per image, on libtorch's OpenMP threads.</summary>
    static void InTasks(Dims d, Action<int, int, int> rows) => OpenMpTeam.ForRowBands(d.B, d.H, RowsPerTask, rows);

    /// <summary>Plane strides of one weighted window sum without up-sampling: between the taps of the weights and between output channels.</summary>
    readonly record struct Strides(long WeightTap, long OutputChannel);

    /// <summary>
    /// Rows y0..y1 of image b without up-sampling: out[c, y, x] = Σ_ij weight_(g(c), ij)[walk] · source[c, walk].
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void WeightedWindowRows(float* weights, float* source, float* output, Dims d, Walk walk, int b, int y0, int y1)
    {
        int k2 = d.K * d.K, perGroup = d.ChannelsPerGroup;
        var strides = new Strides(d.WeightPlane, d.Plane);
        for (int group = 0; group < d.G; group++)
        {
            float* groupWeights = weights + ((long)b * d.G + group) * k2 * strides.WeightTap;
            int end = (group + 1) * perGroup, c = group * perGroup;
            float* Source(int channel) => source + ((long)b * d.C + channel) * d.SourcePlane;
            float* Output(int channel) => output + ((long)b * d.C + channel) * strides.OutputChannel;
            // Four channels share each weight load; the ones left over go one at a time.
            for (; c + 4 <= end; c += 4)
                WeightedWindowRowsOf4(groupWeights, Source(c), Output(c), d, walk, strides, y0, y1);
            for (; c < end; c++)
                WeightedWindowRowsOf1(groupWeights, Source(c), Output(c), d, walk, strides, y0, y1);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void WeightedWindowRowsOf4(float* weights, float* source, float* output, Dims d, Walk walk, Strides strides, int y0, int y1)
    {
        int k = d.K, vectors = Vectors(d.W);
        long sc = d.SourcePlane, oc = strides.OutputChannel, tap = strides.WeightTap;
        for (int y = y0; y < y1; y++)
        {
            for (int v = 0, x = 0; v < vectors; v++, x = Math.Min(x + Lanes, d.W - Lanes))
            {
                Vector256<float> a0 = Vector256<float>.Zero, a1 = a0, a2 = a0, a3 = a0;
                for (int i = 0; i < k; i++)
                {
                    float* weightRow = weights + i * k * tap + (long)(y + walk.WeightOffset + walk.WeightStep * i) * d.WeightW + x + walk.WeightOffset;
                    float* sourceRow = source + (long)(y + walk.SourceOffset + walk.SourceStep * i) * d.SourceW + x + walk.SourceOffset;
                    for (int j = 0; j < k; j++)
                    {
                        var weight = Avx.LoadVector256(weightRow + j * tap + walk.WeightStep * j);
                        float* at = sourceRow + walk.SourceStep * j;
                        a0 = Fma.MultiplyAdd(weight, Avx.LoadVector256(at), a0);
                        a1 = Fma.MultiplyAdd(weight, Avx.LoadVector256(at + sc), a1);
                        a2 = Fma.MultiplyAdd(weight, Avx.LoadVector256(at + 2 * sc), a2);
                        a3 = Fma.MultiplyAdd(weight, Avx.LoadVector256(at + 3 * sc), a3);
                    }
                }
                float* to = output + (long)y * d.W + x;
                if (walk.Residual != 0)
                {
                    // The forward's residual form: residual · centre − the weighted sum.
                    var scale = Vector256.Create(walk.Residual);
                    float* centre = source + (long)(y + k / 2) * d.SourceW + x + k / 2;
                    a0 = Fma.MultiplySubtract(scale, Avx.LoadVector256(centre), a0);
                    a1 = Fma.MultiplySubtract(scale, Avx.LoadVector256(centre + sc), a1);
                    a2 = Fma.MultiplySubtract(scale, Avx.LoadVector256(centre + 2 * sc), a2);
                    a3 = Fma.MultiplySubtract(scale, Avx.LoadVector256(centre + 3 * sc), a3);
                }
                Avx.Store(to, a0);
                Avx.Store(to + oc, a1);
                Avx.Store(to + 2 * oc, a2);
                Avx.Store(to + 3 * oc, a3);
            }
        }
    }

    /// <summary>
    /// The forward pass of up-sampling by 2 for two channels: each source load feeds the four phases' sums, each
    /// weight load both channels'. The phases of a row are interleaved in registers and stored as whole output rows,
    /// [B, C, 2h, 2w], so no pixel_shuffle pass follows.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void UpsamplingRowsOf2(float* weights, float* firstSource, float* secondSource, float* output, bool storeSecond, Dims d, TapLayout layout,
        int y0, int y1)
    {
        int k = d.K, vectors = Vectors(d.W);
        long oc = 4 * d.Plane, tap = layout.Tap, wp = layout.Phase, row = 2L * d.W;
        for (int y = y0; y < y1; y++)
        {
            for (int v = 0, x = 0; v < vectors; v++, x = Math.Min(x + Lanes, d.W - Lanes))
            {
                Vector256<float> a0 = Vector256<float>.Zero, a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
                for (int i = 0; i < k; i++)
                {
                    float* weightRow = weights + i * k * tap + y * layout.Row + x;
                    long sourceRow = (long)(y + i) * d.SourceW + x;
                    for (int j = 0; j < k; j++)
                    {
                        var first = Avx.LoadVector256(firstSource + sourceRow + j);
                        var second = Avx.LoadVector256(secondSource + sourceRow + j);
                        float* at = weightRow + j * tap;
                        var w0 = Avx.LoadVector256(at);
                        var w1 = Avx.LoadVector256(at + wp);
                        var w2 = Avx.LoadVector256(at + 2 * wp);
                        var w3 = Avx.LoadVector256(at + 3 * wp);
                        a0 = Fma.MultiplyAdd(w0, first, a0);
                        a1 = Fma.MultiplyAdd(w1, first, a1);
                        a2 = Fma.MultiplyAdd(w2, first, a2);
                        a3 = Fma.MultiplyAdd(w3, first, a3);
                        b0 = Fma.MultiplyAdd(w0, second, b0);
                        b1 = Fma.MultiplyAdd(w1, second, b1);
                        b2 = Fma.MultiplyAdd(w2, second, b2);
                        b3 = Fma.MultiplyAdd(w3, second, b3);
                    }
                }
                // Phases (u, v) = (0, 0), (0, 1), (1, 0), (1, 1): output rows 2y and 2y + 1, columns 2x + v.
                float* to = output + 2L * y * row + 2 * x;
                StoreInterleaved(to, a0, a1);
                StoreInterleaved(to + row, a2, a3);
                if (storeSecond)
                {
                    StoreInterleaved(to + oc, b0, b1);
                    StoreInterleaved(to + oc + row, b2, b3);
                }
            }
        }
    }

    /// <summary>Set by the benchmarks' <c>profile ab --experiment no-avx512-carafe</c> (and by tests): the ×2 forward in AVX2 pairs of channels only.</summary>
    internal static bool Avx512UpsamplingOffForBenchmark { get; set; }

    /// <summary>
    /// Whether the ×2 forward takes four channels at a time in AVX-512 vectors of 16 pixels: on AVX-512 hosts, for
    /// source rows of whole vectors (the concat head's maps at 512² images, 16–64 pixels wide); rows of other widths
    /// would compute part of their last vector twice, so they stay on the AVX2 pairs.
    /// </summary>
    static bool UpsamplesInAvx512(int width) => !Avx512UpsamplingOffForBenchmark && Avx512F.IsSupported && width % WideLanes == 0;

    const int WideLanes = 16;

    /// <summary>
    /// The ×2 forward for four channels in AVX-512: 16 accumulators (four channels' four phases over 16 pixels), so each
    /// tap's four weight vectors serve four channels instead of two — half the weight loads a product of the AVX2 pairs,
    /// whose eight accumulators are all AVX2's sixteen registers allow beside the loads. Each output is the same sum in
    /// the same order as there.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void UpsamplingRowsOf4(float* weights, float* source, float* output, Dims d, TapLayout layout, int y0, int y1)
    {
        int k = d.K;
        long sp = d.SourcePlane, oc = 4 * d.Plane, tap = layout.Tap, wp = layout.Phase, row = 2L * d.W;
        var firstHalf = Vector512.Create(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        var secondHalf = Vector512.Create(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        for (int y = y0; y < y1; y++)
        {
            for (int x = 0; x < d.W; x += WideLanes)
            {
                Vector512<float> a0 = Vector512<float>.Zero, a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
                Vector512<float> c0 = a0, c1 = a0, c2 = a0, c3 = a0, e0 = a0, e1 = a0, e2 = a0, e3 = a0;
                for (int i = 0; i < k; i++)
                {
                    float* weightRow = weights + i * k * tap + y * layout.Row + x;
                    float* sourceRow = source + (long)(y + i) * d.SourceW + x;
                    for (int j = 0; j < k; j++)
                    {
                        float* at = weightRow + j * tap;
                        var w0 = Avx512F.LoadVector512(at);
                        var w1 = Avx512F.LoadVector512(at + wp);
                        var w2 = Avx512F.LoadVector512(at + 2 * wp);
                        var w3 = Avx512F.LoadVector512(at + 3 * wp);
                        var s = Avx512F.LoadVector512(sourceRow + j);
                        a0 = Avx512F.FusedMultiplyAdd(w0, s, a0);
                        a1 = Avx512F.FusedMultiplyAdd(w1, s, a1);
                        a2 = Avx512F.FusedMultiplyAdd(w2, s, a2);
                        a3 = Avx512F.FusedMultiplyAdd(w3, s, a3);
                        s = Avx512F.LoadVector512(sourceRow + sp + j);
                        b0 = Avx512F.FusedMultiplyAdd(w0, s, b0);
                        b1 = Avx512F.FusedMultiplyAdd(w1, s, b1);
                        b2 = Avx512F.FusedMultiplyAdd(w2, s, b2);
                        b3 = Avx512F.FusedMultiplyAdd(w3, s, b3);
                        s = Avx512F.LoadVector512(sourceRow + 2 * sp + j);
                        c0 = Avx512F.FusedMultiplyAdd(w0, s, c0);
                        c1 = Avx512F.FusedMultiplyAdd(w1, s, c1);
                        c2 = Avx512F.FusedMultiplyAdd(w2, s, c2);
                        c3 = Avx512F.FusedMultiplyAdd(w3, s, c3);
                        s = Avx512F.LoadVector512(sourceRow + 3 * sp + j);
                        e0 = Avx512F.FusedMultiplyAdd(w0, s, e0);
                        e1 = Avx512F.FusedMultiplyAdd(w1, s, e1);
                        e2 = Avx512F.FusedMultiplyAdd(w2, s, e2);
                        e3 = Avx512F.FusedMultiplyAdd(w3, s, e3);
                    }
                }
                float* to = output + 2L * y * row + 2 * x;
                StoreInterleaved(to, a0, a1, firstHalf, secondHalf);
                StoreInterleaved(to + row, a2, a3, firstHalf, secondHalf);
                StoreInterleaved(to + oc, b0, b1, firstHalf, secondHalf);
                StoreInterleaved(to + oc + row, b2, b3, firstHalf, secondHalf);
                StoreInterleaved(to + 2 * oc, c0, c1, firstHalf, secondHalf);
                StoreInterleaved(to + 2 * oc + row, c2, c3, firstHalf, secondHalf);
                StoreInterleaved(to + 3 * oc, e0, e1, firstHalf, secondHalf);
                StoreInterleaved(to + 3 * oc + row, e2, e3, firstHalf, secondHalf);
            }
        }
    }

    /// <summary>Stores [e0, o0, e1, o1, …, e15, o15] from 16 even and 16 odd columns, through two two-source permutations.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StoreInterleaved(float* to, Vector512<float> even, Vector512<float> odd, Vector512<int> firstHalf, Vector512<int> secondHalf)
    {
        Avx512F.Store(to, Avx512F.PermuteVar16x32x2(even, firstHalf, odd));
        Avx512F.Store(to + WideLanes, Avx512F.PermuteVar16x32x2(even, secondHalf, odd));
    }

    /// <summary>Stores [e0, o0, e1, o1, …, e7, o7]: an output row's even and odd columns.</summary>
    static void StoreInterleaved(float* to, Vector256<float> even, Vector256<float> odd)
    {
        // Unpacking works within 128-bit lanes: [e0 o0 e1 o1 | e4 o4 e5 o5] and [e2 o2 e3 o3 | e6 o6 e7 o7].
        var low = Avx.UnpackLow(even, odd);
        var high = Avx.UnpackHigh(even, odd);
        Avx.Store(to, Avx.Permute2x128(low, high, 0x20));
        Avx.Store(to + Lanes, Avx.Permute2x128(low, high, 0x31));
    }

    /// <summary>One channel, for the channels of a group left over after the blocks.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void WeightedWindowRowsOf1(float* weights, float* source, float* output, Dims d, Walk walk, Strides strides, int y0, int y1)
    {
        int k = d.K, vectors = Vectors(d.W);
        long tap = strides.WeightTap;
        for (int y = y0; y < y1; y++)
        {
            for (int v = 0, x = 0; v < vectors; v++, x = Math.Min(x + Lanes, d.W - Lanes))
            {
                var sum = Vector256<float>.Zero;
                for (int i = 0; i < k; i++)
                {
                    float* weightRow = weights + i * k * tap + (long)(y + walk.WeightOffset + walk.WeightStep * i) * d.WeightW + x + walk.WeightOffset;
                    float* sourceRow = source + (long)(y + walk.SourceOffset + walk.SourceStep * i) * d.SourceW + x + walk.SourceOffset;
                    for (int j = 0; j < k; j++)
                        sum = Fma.MultiplyAdd(Avx.LoadVector256(weightRow + j * tap + walk.WeightStep * j), Avx.LoadVector256(sourceRow + walk.SourceStep * j), sum);
                }
                if (walk.Residual != 0)
                    sum = Fma.MultiplySubtract(Vector256.Create(walk.Residual), Avx.LoadVector256(source + (long)(y + k / 2) * d.SourceW + x + k / 2), sum);
                Avx.Store(output + (long)y * d.W + x, sum);
            }
        }
    }

    /// <summary>
    /// Whole vectors per row; a width that is not a multiple of 8 takes a last vector ending at the row's end, which
    /// computes a few outputs twice instead of leaving them to slower scalar code (every output is written, never added to).
    /// </summary>
    static int Vectors(int width) => (width + Lanes - 1) / Lanes;

    /// <summary>
    /// Channels summed per pass of a row's kernel gradient. The sum of a tap runs over all of its group's channels (768
    /// at the concat head's last stage); swept whole for every vector and tap, a row's channels (about 4 MB of source
    /// rows there) came from beyond L2 over and over, 5 GMAC/s. A block of 8 channels' rows stays in L1 while every
    /// vector and tap of the row uses it, and the row's partial sums (k² × w floats) stay there between blocks:
    /// 2.1× faster at [2, 768, 64²] ×2 (docs/benchmarks.md §19). A group whose rows fit in
    /// <see cref="KernelGradientWholeGroupBytes"/> is summed in one pass, which small maps and groups did faster.
    /// </summary>
    const int KernelGradientChannelBlock = 8;

    /// <summary>Bytes of a group's gradient and source rows for one output row up to which its channels are not blocked.</summary>
    const long KernelGradientWholeGroupBytes = 128 * 1024;

    /// <summary>
    /// Rows y0..y1 of image b's kernel gradient, channel block by channel block, four taps at a time so each gradient
    /// load feeds four sums; the source has each column repeated up times. The sums continue from the stored partial
    /// sums in channel order, so they add in the same order as one pass over all channels would.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void KernelGradientRows(float* source, float* grad, float* output, Dims d, TapLayout layout, int b, int y0, int y1)
    {
        int k = d.K, k2 = k * k, perGroup = d.ChannelsPerGroup;
        int* shift = stackalloc int[k2];
        for (int t = 0; t < k2; t++)
            shift[t] = t / k * d.SourceW + d.Up * (t % k);
        // Whole vectors that do not overlap; a width that is not a multiple of 8 ends with a vector flush with the row's
        // end, which overlaps the one before and so is summed over all channels at once, after the blocks.
        int whole = d.W / Lanes;
        long groupRowBytes = (long)perGroup * ((long)k * d.SourceW + d.W) * sizeof(float);
        int block = groupRowBytes <= KernelGradientWholeGroupBytes || KernelGradientBlocksOffForBenchmark ? perGroup : KernelGradientChannelBlock;
        for (int group = 0; group < d.G; group++)
        {
            float* groupGrad = grad + ((long)b * d.C + group * perGroup) * d.Plane;
            float* groupSource = source + ((long)b * d.C + group * perGroup) * d.SourcePlane;
            float* groupOutput = output + b * layout.Image + group * layout.Group;
            for (int y = y0; y < y1; y++)
            {
                float* gradRow = groupGrad + (long)y * d.W;
                float* sourceRow = groupSource + (long)(y / d.Up) * d.SourceW;
                float* outputRow = groupOutput + y * layout.Row;
                for (int c0 = 0; c0 < perGroup; c0 += block)
                {
                    int c1 = Math.Min(perGroup, c0 + block);
                    for (int v = 0; v < whole; v++)
                        KernelGradientVector(sourceRow, gradRow, outputRow, d, layout.Tap, shift, v * Lanes, c0, c1);
                }
                if (d.W % Lanes != 0)
                    KernelGradientVector(sourceRow, gradRow, outputRow, d, layout.Tap, shift, d.W - Lanes, 0, perGroup);
            }
        }
    }

    /// <summary>
    /// The k² tap sums of the 8 pixels from column x over channels c0..c1 of a group, added to the stored partial sums
    /// (stored afresh when c0 is 0).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void KernelGradientVector(float* sourceRow, float* gradRow, float* outputRow, Dims d, long tap, int* shift, int x, int c0, int c1)
    {
        int k2 = d.K * d.K;
        long sc = d.SourcePlane, gc = d.Plane;
        float* g0 = gradRow + x, s0 = sourceRow + x, o0 = outputRow + x;
        bool first = c0 == 0;
        int t = 0;
        for (; t + 4 <= k2; t += 4)
        {
            Vector256<float> a0, a1, a2, a3;
            if (first)
            {
                a0 = a1 = a2 = a3 = Vector256<float>.Zero;
            }
            else
            {
                a0 = Avx.LoadVector256(o0 + t * tap);
                a1 = Avx.LoadVector256(o0 + (t + 1) * tap);
                a2 = Avx.LoadVector256(o0 + (t + 2) * tap);
                a3 = Avx.LoadVector256(o0 + (t + 3) * tap);
            }
            int r0 = shift[t], r1 = shift[t + 1], r2 = shift[t + 2], r3 = shift[t + 3];
            for (int c = c0; c < c1; c++)
            {
                var gv = Avx.LoadVector256(g0 + c * gc);
                float* s = s0 + c * sc;
                a0 = Fma.MultiplyAdd(gv, Avx.LoadVector256(s + r0), a0);
                a1 = Fma.MultiplyAdd(gv, Avx.LoadVector256(s + r1), a1);
                a2 = Fma.MultiplyAdd(gv, Avx.LoadVector256(s + r2), a2);
                a3 = Fma.MultiplyAdd(gv, Avx.LoadVector256(s + r3), a3);
            }
            Avx.Store(o0 + t * tap, a0);
            Avx.Store(o0 + (t + 1) * tap, a1);
            Avx.Store(o0 + (t + 2) * tap, a2);
            Avx.Store(o0 + (t + 3) * tap, a3);
        }
        for (; t < k2; t++)
        {
            var sum = first ? Vector256<float>.Zero : Avx.LoadVector256(o0 + t * tap);
            int r = shift[t];
            for (int c = c0; c < c1; c++)
                sum = Fma.MultiplyAdd(Avx.LoadVector256(g0 + c * gc), Avx.LoadVector256(s0 + c * sc + r), sum);
            Avx.Store(o0 + t * tap, sum);
        }
    }

    /// <summary>
    /// Rows y0..y1 of image b's feature gradient for up-sampling by 2, two channels at a time. Source pixel (Y, X) fed
    /// the 2×2 output pixels (2(Y − i) + u, 2(X − j) + v) through tap (i, j); a vector of 8 source columns sums 16
    /// output columns, accumulated over every tap and phase and added in pairs once at the end. Rows and columns of the
    /// rimmed gradient and kernels are at output resolution; <paramref name="offset"/> is in source pixels.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void UpsamplingGradientRows(float* weights, float* source, float* output, Dims d, TapLayout layout, int offset, int rim, int b, int y0, int y1)
    {
        int k = d.K, perGroup = d.ChannelsPerGroup, vectors = Vectors(d.W);
        long sp = d.SourcePlane, op = d.Plane;
        var lanes = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7);
        for (int group = 0; group < d.G; group++)
        {
            float* groupWeights = weights + b * layout.Image + group * layout.Group;
            int end = (group + 1) * perGroup;
            for (int c = group * perGroup; c < end; c += 2)
            {
                // An odd last channel is computed twice over and stored once.
                float* first = source + ((long)b * d.C + c) * sp;
                float* second = c + 1 < end ? first + sp : first;
                for (int y = y0; y < y1; y++)
                {
                    for (int v = 0, x = 0; v < vectors; v++, x = Math.Min(x + Lanes, d.W - Lanes))
                    {
                        Vector256<float> firstLow = Vector256<float>.Zero, firstHigh = firstLow, secondLow = firstLow, secondHigh = firstLow;
                        // Rimmed column of the vector's tap j = 0; the gradient's own column is rim less. Tap j reads 2j
                        // columns to the left: masks are needed only where some tap's 16 columns leave the gradient.
                        long column = 2 * (x + offset), gradientColumn = column - rim;
                        bool edge = gradientColumn - 2 * (k - 1) < 0 || gradientColumn + 2 * Lanes > d.SourceW;
                        for (int i = 0; i < k; i++)
                        {
                            for (int u = 0; u < 2; u++)
                            {
                                long r = 2 * (y + offset - i) + u, gradientRow = r - rim;
                                // Outside the gradient the rimmed kernels are zero too: nothing to add.
                                if (gradientRow < 0 || gradientRow >= d.SourceH)
                                    continue;
                                long row = gradientRow * d.SourceW + gradientColumn;
                                float* weightRow = groupWeights + r * layout.Row + column + i * k * layout.Tap;
                                for (int j = 0; j < k; j++)
                                {
                                    long at = row - 2 * j;
                                    float* weight = weightRow + j * (layout.Tap - 2);
                                    var weightLow = Avx.LoadVector256(weight);
                                    var weightHigh = Avx.LoadVector256(weight + Lanes);
                                    Vector256<float> firstLowGradient, firstHighGradient, secondLowGradient, secondHighGradient;
                                    if (edge)
                                    {
                                        var low = Vector256.Create((int)(gradientColumn - 2 * j)) + lanes;
                                        var high = low + Vector256.Create(Lanes);
                                        var lowMask = InRange(low, d.SourceW);
                                        var highMask = InRange(high, d.SourceW);
                                        firstLowGradient = Avx.MaskLoad(first + at, lowMask);
                                        firstHighGradient = Avx.MaskLoad(first + at + Lanes, highMask);
                                        secondLowGradient = Avx.MaskLoad(second + at, lowMask);
                                        secondHighGradient = Avx.MaskLoad(second + at + Lanes, highMask);
                                    }
                                    else
                                    {
                                        firstLowGradient = Avx.LoadVector256(first + at);
                                        firstHighGradient = Avx.LoadVector256(first + at + Lanes);
                                        secondLowGradient = Avx.LoadVector256(second + at);
                                        secondHighGradient = Avx.LoadVector256(second + at + Lanes);
                                    }
                                    firstLow = Fma.MultiplyAdd(weightLow, firstLowGradient, firstLow);
                                    firstHigh = Fma.MultiplyAdd(weightHigh, firstHighGradient, firstHigh);
                                    secondLow = Fma.MultiplyAdd(weightLow, secondLowGradient, secondLow);
                                    secondHigh = Fma.MultiplyAdd(weightHigh, secondHighGradient, secondHigh);
                                }
                            }
                        }
                        float* to = output + ((long)b * d.C + c) * op + (long)y * d.W + x;
                        Avx.Store(to, PairSums(firstLow, firstHigh));
                        if (c + 1 < end)
                            Avx.Store(to + op, PairSums(secondLow, secondHigh));
                    }
                }
            }
        }
    }

    /// <summary>All bits set in the lanes whose column is in 0..width − 1: masked loads read nothing elsewhere, not even a fault.</summary>
    static Vector256<float> InRange(Vector256<int> columns, int width) =>
        Avx2.AndNot(Avx2.CompareGreaterThan(Vector256<int>.Zero, columns), Avx2.CompareGreaterThan(Vector256.Create(width), columns)).AsSingle();

    /// <summary>[l0 + l1, l2 + l3, …, l6 + l7, h0 + h1, …, h6 + h7]: adjacent output columns summed into their source column.</summary>
    static Vector256<float> PairSums(Vector256<float> low, Vector256<float> high)
    {
        // HorizontalAdd works within 128-bit lanes: [l01, l23, h01, h23 | l45, l67, h45, h67]; swap the middle quarters.
        var sums = Avx.HorizontalAdd(low, high);
        return Avx2.Permute4x64(sums.AsDouble(), 0b11_01_10_00).AsSingle();
    }
}
