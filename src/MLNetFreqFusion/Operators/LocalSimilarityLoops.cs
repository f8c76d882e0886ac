using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using MLNetFreqFusion.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Operators;

/// <summary>
/// <see cref="LocalSimilarity"/> with a 3×3 window, forward and backward, as AVX2/FMA loops over libtorch's memory. As
/// ATen operations the channel norm was a strided reduction plus a division, each of the eight neighbours a product
/// over all channels written out and summed (forward) or an addcmul over the whole map (backward), and the norm's
/// backward a few more passes. Here every pass walks the channels of eight pixels with the sums in registers: the norms,
/// then the unit vectors written into a zero-padded map (so neighbours outside the map add nothing and no loop has a
/// border), then the eight dot products; backward, the neighbour sum of the unit vectors' gradient together with its
/// projection onto each pixel's unit vector, then the norm's backward. Threads are libtorch's own (<see cref="OpenMpTeam"/>).
/// </summary>
internal static unsafe class LocalSimilarityLoops
{
    /// <summary>Set by the benchmarks' <c>profile ab --experiment no-local-similarity-loops</c> only, to time the networks without them.</summary>
    internal static bool OffForBenchmark { get; set; }

    const int Lanes = 8;
    const int Neighbours = 8;
    const int RowsPerTask = 4;

    /// <summary>
    /// Whether the loops run: a 3×3 window (the offset generator's), float32 CPU features at least one vector (8
    /// pixels) wide, an x64 CPU with AVX2 and FMA. Otherwise <see cref="LocalSimilarity"/> keeps its ATen operations.
    /// </summary>
    public static bool Fits(Tensor x, int window) =>
        !OffForBenchmark && window == 3 && Avx2.IsSupported && Fma.IsSupported && x.dim() == 4 && x.shape[3] >= Lanes
        && x.dtype == ScalarType.Float32 && x.device_type == DeviceType.CPU;

    /// <summary>
    /// The unit vectors of <paramref name="x"/> [B, C, H, W] along the channels, written into a map padded by
    /// <paramref name="dilation"/> zeros on every side, and each pixel's norm clamped below at <paramref name="epsilon"/>
    /// [B, 1, H, W], which the backward pass needs.
    /// </summary>
    public static (Tensor PaddedUnit, Tensor Norms) Normalize(Tensor x, int dilation, float epsilon)
    {
        using var scope = NewDisposeScope();
        var source = x.contiguous();
        var d = new Dims(source, dilation);
        var padded = zeros(new[] { d.B, d.C, d.H + 2L * dilation, d.W + 2L * dilation }, dtype: ScalarType.Float32);
        var norms = empty(new[] { d.B, 1L, d.H, d.W }, dtype: ScalarType.Float32);
        float* s = TensorMemory.Floats(source), u = TensorMemory.Floats(padded), n = TensorMemory.Floats(norms);
        if (PixelMajorNormsForBenchmark)
            InTasks(d, (b, y0, y1) => PixelMajorNormalizeRows(s, u, n, d, epsilon, b, y0, y1));
        else
            InTasks(d, (b, y0, y1) => NormalizeRows(s, u, n, d, epsilon, b, y0, y1));
        return (padded.MoveToOuterDisposeScope(), norms.MoveToOuterDisposeScope());
    }

    /// <summary>Each pixel's dot products with its eight neighbours <paramref name="dilation"/> apart, [B, 8, H, W], from <see cref="Normalize"/>'s padded unit vectors.</summary>
    public static Tensor Dots(Tensor paddedUnit, int dilation)
    {
        using var scope = NewDisposeScope();
        var d = Dims.OfPadded(paddedUnit, dilation);
        var output = empty(new long[] { d.B, Neighbours, d.H, d.W }, dtype: ScalarType.Float32);
        float* source = TensorMemory.Floats(paddedUnit), target = TensorMemory.Floats(output);
        InTasks(d, (b, y0, y1) => DotRows(source, target, d, b, y0, y1));
        return output.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The gradient of the features: first the unit vectors', Σ_t weights_t(q)·u(q + d_t), where
    /// <paramref name="weights"/> [B, 8, H, W] already holds each pixel's own similarity gradient plus the one it
    /// received as the opposite neighbour (<see cref="LocalSimilarity"/>'s backward explains the sum); then through the
    /// normalisation, (g − u (u·g)) / norm, or g / ε where the norm was clamped (no gradient flows through the clamp).
    /// </summary>
    public static Tensor Gradient(Tensor paddedUnit, Tensor norms, Tensor weights, int dilation, float epsilon)
    {
        using var scope = NewDisposeScope();
        var d = Dims.OfPadded(paddedUnit, dilation);
        var contiguousWeights = weights.contiguous();
        var output = empty(new long[] { d.B, d.C, d.H, d.W }, dtype: ScalarType.Float32);
        float* u = TensorMemory.Floats(paddedUnit), n = TensorMemory.Floats(norms), w = TensorMemory.Floats(contiguousWeights), target = TensorMemory.Floats(output);
        InTasks(d, (b, y0, y1) => GradientRows(u, n, w, target, d, epsilon, b, y0, y1));
        return output.MoveToOuterDisposeScope();
    }

    readonly record struct Dims(int B, int C, int H, int W, int Dilation)
    {
        public Dims(Tensor x, int dilation) : this((int)x.shape[0], (int)x.shape[1], (int)x.shape[2], (int)x.shape[3], dilation) { }

        public static Dims OfPadded(Tensor padded, int dilation) =>
            new((int)padded.shape[0], (int)padded.shape[1], (int)padded.shape[2] - 2 * dilation, (int)padded.shape[3] - 2 * dilation, dilation);

        public int PaddedW => W + 2 * Dilation;
        public long PaddedPlane => (long)(H + 2 * Dilation) * PaddedW;
        public long Plane => (long)H * W;
    }

    static void InTasks(Dims d, Action<int, int, int> rows)
    {
        // The last vector of a row ends at the row's end; a row shorter than a vector would start it before the row.
        if (d.W < Lanes)
            throw new ArgumentException($"The local similarity loops need maps at least {Lanes} pixels wide (got {d.W}); check LocalSimilarityLoops.Fits first.");
        OpenMpTeam.ForRowBands(d.B, d.H, RowsPerTask, rows);
    }

    /// <summary>
    /// Where the vector of output columns starting at <paramref name="x"/> is: the last one of a row ends at the row's
    /// end and overlaps the one before (outputs are written, never added to, so the overlap is harmless).
    /// </summary>
    static int VectorStart(int x, int w) => Math.Min(x, w - Lanes);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DotRows(float* padded, float* output, Dims d, int b, int y0, int y1)
    {
        int pw = d.PaddedW, step = d.Dilation, rowStep = d.Dilation * pw;
        for (int y = y0; y < y1; y++)
        {
            for (int x0 = 0; x0 < d.W; x0 += Lanes)
            {
                int x = VectorStart(x0, d.W);
                // The centre of (y, x) in the padded map; the neighbours sit ±step columns and ±rowStep elements away.
                float* p = padded + (long)b * d.C * d.PaddedPlane + (long)(y + step) * pw + x + step;
                Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default, s4 = default, s5 = default, s6 = default, s7 = default;
                for (int c = 0; c < d.C; c++, p += d.PaddedPlane)
                {
                    var centre = Avx.LoadVector256(p);
                    s0 = Fma.MultiplyAdd(centre, Avx.LoadVector256(p - rowStep - step), s0);
                    s1 = Fma.MultiplyAdd(centre, Avx.LoadVector256(p - rowStep), s1);
                    s2 = Fma.MultiplyAdd(centre, Avx.LoadVector256(p - rowStep + step), s2);
                    s3 = Fma.MultiplyAdd(centre, Avx.LoadVector256(p - step), s3);
                    s4 = Fma.MultiplyAdd(centre, Avx.LoadVector256(p + step), s4);
                    s5 = Fma.MultiplyAdd(centre, Avx.LoadVector256(p + rowStep - step), s5);
                    s6 = Fma.MultiplyAdd(centre, Avx.LoadVector256(p + rowStep), s6);
                    s7 = Fma.MultiplyAdd(centre, Avx.LoadVector256(p + rowStep + step), s7);
                }
                // Neighbours in row-major order without the centre, as LocalSimilarity lays them out.
                float* o = output + (long)b * Neighbours * d.Plane + (long)y * d.W + x;
                Avx.Store(o, s0);
                Avx.Store(o + d.Plane, s1);
                Avx.Store(o + 2 * d.Plane, s2);
                Avx.Store(o + 3 * d.Plane, s3);
                Avx.Store(o + 4 * d.Plane, s4);
                Avx.Store(o + 5 * d.Plane, s5);
                Avx.Store(o + 6 * d.Plane, s6);
                Avx.Store(o + 7 * d.Plane, s7);
            }
        }
    }

    /// <summary>
    /// Vectors of a row whose sums of squares wait in a buffer while the channels go by. Each channel's part of the
    /// row is read in order, plane after plane: walking a pixel's channels instead read one vector from each plane, and
    /// with planes of a power-of-two size (128² floats at 512² images) every read fell in the same cache sets, 10× the
    /// time per element of a 64² map (docs/benchmarks.md §24).
    /// </summary>
    const int ChunkVectors = 32;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void NormalizeRows(float* source, float* padded, float* norms, Dims d, float epsilon, int b, int y0, int y1)
    {
        var floor = Vector256.Create(epsilon);
        var sums = stackalloc Vector256<float>[ChunkVectors];
        int vectors = (d.W + Lanes - 1) / Lanes;
        for (int y = y0; y < y1; y++)
        {
            float* rowSource = source + (long)b * d.C * d.Plane + (long)y * d.W;
            float* rowNorms = norms + (long)b * d.Plane + (long)y * d.W;
            float* rowUnit = padded + (long)b * d.C * d.PaddedPlane + (long)(y + d.Dilation) * d.PaddedW + d.Dilation;
            for (int first = 0; first < vectors; first += ChunkVectors)
            {
                int count = Math.Min(ChunkVectors, vectors - first);
                for (int v = 0; v < count; v++)
                    sums[v] = Vector256<float>.Zero;
                for (int c = 0; c < d.C; c++)
                {
                    float* s = rowSource + c * d.Plane;
                    for (int v = 0; v < count; v++)
                    {
                        var value = Avx.LoadVector256(s + VectorStart((first + v) * Lanes, d.W));
                        sums[v] = Fma.MultiplyAdd(value, value, sums[v]);
                    }
                }
                for (int v = 0; v < count; v++)
                {
                    sums[v] = Avx.Max(Avx.Sqrt(sums[v]), floor);
                    Avx.Store(rowNorms + VectorStart((first + v) * Lanes, d.W), sums[v]);
                }
                for (int c = 0; c < d.C; c++)
                {
                    float* s = rowSource + c * d.Plane, u = rowUnit + c * d.PaddedPlane;
                    for (int v = 0; v < count; v++)
                    {
                        int x = VectorStart((first + v) * Lanes, d.W);
                        Avx.Store(u + x, Avx.Divide(Avx.LoadVector256(s + x), sums[v]));
                    }
                }
            }
        }
    }

    /// <summary>Set by the benchmarks' <c>profile ab --experiment pixel-major-similarity-norms</c> only: each pixel's norm summed across the planes, as before §24.</summary>
    internal static bool PixelMajorNormsForBenchmark { get; set; }

    /// <summary>The normalisation before §24, kept for <see cref="PixelMajorNormsForBenchmark"/>: a pixel vector's channels across the planes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static void PixelMajorNormalizeRows(float* source, float* padded, float* norms, Dims d, float epsilon, int b, int y0, int y1)
    {
        var floor = Vector256.Create(epsilon);
        for (int y = y0; y < y1; y++)
        {
            for (int x0 = 0; x0 < d.W; x0 += Lanes)
            {
                int x = VectorStart(x0, d.W);
                float* s = source + (long)b * d.C * d.Plane + (long)y * d.W + x;
                var squares = Vector256<float>.Zero;
                for (int c = 0; c < d.C; c++)
                {
                    var v = Avx.LoadVector256(s + c * d.Plane);
                    squares = Fma.MultiplyAdd(v, v, squares);
                }
                var norm = Avx.Max(Avx.Sqrt(squares), floor);
                Avx.Store(norms + (long)b * d.Plane + (long)y * d.W + x, norm);
                float* u = padded + (long)b * d.C * d.PaddedPlane + (long)(y + d.Dilation) * d.PaddedW + x + d.Dilation;
                for (int c = 0; c < d.C; c++)
                    Avx.Store(u + c * d.PaddedPlane, Avx.Divide(Avx.LoadVector256(s + c * d.Plane), norm));
            }
        }
    }


    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void GradientRows(float* padded, float* norms, float* weights, float* output, Dims d, float epsilon, int b, int y0, int y1)
    {
        int pw = d.PaddedW, step = d.Dilation, rowStep = d.Dilation * pw;
        var floor = Vector256.Create(epsilon);
        for (int y = y0; y < y1; y++)
        {
            for (int x0 = 0; x0 < d.W; x0 += Lanes)
            {
                int x = VectorStart(x0, d.W);
                float* wt = weights + (long)b * Neighbours * d.Plane + (long)y * d.W + x;
                var w0 = Avx.LoadVector256(wt);
                var w1 = Avx.LoadVector256(wt + d.Plane);
                var w2 = Avx.LoadVector256(wt + 2 * d.Plane);
                var w3 = Avx.LoadVector256(wt + 3 * d.Plane);
                var w4 = Avx.LoadVector256(wt + 4 * d.Plane);
                var w5 = Avx.LoadVector256(wt + 5 * d.Plane);
                var w6 = Avx.LoadVector256(wt + 6 * d.Plane);
                var w7 = Avx.LoadVector256(wt + 7 * d.Plane);
                float* first = padded + (long)b * d.C * d.PaddedPlane + (long)(y + step) * pw + x + step;
                float* o = output + (long)b * d.C * d.Plane + (long)y * d.W + x;
                // The unit vectors' gradient g, kept in the output for the second pass, and u·g.
                var projection = Vector256<float>.Zero;
                float* p = first;
                for (int c = 0; c < d.C; c++, p += d.PaddedPlane)
                {
                    var north = Fma.MultiplyAdd(w0, Avx.LoadVector256(p - rowStep - step),
                        Fma.MultiplyAdd(w1, Avx.LoadVector256(p - rowStep), Avx.Multiply(w2, Avx.LoadVector256(p - rowStep + step))));
                    var middle = Fma.MultiplyAdd(w3, Avx.LoadVector256(p - step), Avx.Multiply(w4, Avx.LoadVector256(p + step)));
                    var south = Fma.MultiplyAdd(w5, Avx.LoadVector256(p + rowStep - step),
                        Fma.MultiplyAdd(w6, Avx.LoadVector256(p + rowStep), Avx.Multiply(w7, Avx.LoadVector256(p + rowStep + step))));
                    var g = Avx.Add(Avx.Add(north, middle), south);
                    projection = Fma.MultiplyAdd(g, Avx.LoadVector256(p), projection);
                    Avx.Store(o + c * d.Plane, g);
                }
                var norm = Avx.LoadVector256(norms + (long)b * d.Plane + (long)y * d.W + x);
                // Where the norm was clamped the unit vector is x / ε, whose gradient has no projection term.
                projection = Avx.And(projection, Avx.CompareGreaterThan(norm, floor));
                p = first;
                for (int c = 0; c < d.C; c++, p += d.PaddedPlane)
                {
                    var g = Avx.LoadVector256(o + c * d.Plane);
                    Avx.Store(o + c * d.Plane, Avx.Divide(Fma.MultiplyAddNegated(Avx.LoadVector256(p), projection, g), norm));
                }
            }
        }
    }
}
