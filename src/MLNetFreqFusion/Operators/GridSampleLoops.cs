using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using MLNetFreqFusion.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Operators;

/// <summary>
/// <c>grid_sample</c> as FreqFusion's offset generator calls it (bilinear, border padding, align_corners = false),
/// forward and both gradients, as loops over libtorch's memory. ATen's kernel took 1.9 ns an output element forward and
/// 6.4 backward at the concat head's 1/4 stage on 2 threads (docs/benchmarks.md §15). Here each output pixel's four
/// corners and weights are worked out once (a table the group's channels share) and every pass runs plane by plane,
/// four channels at a time so that each pixel's table entry is read once for four planes. The loops are scalar on
/// purpose: with the corners in a table, four loads beat AVX2's gathers on the hosts measured (0.7 against 1.2 ns an
/// output element). The input gradient adds into the corners; each task owns whole channel planes, so no two threads
/// add to one element. Threads are libtorch's own (<see cref="OpenMpTeam"/>).
/// </summary>
internal static unsafe class GridSampleLoops
{
    /// <summary>Set by the benchmarks' <c>profile ab --experiment no-grid-sample-loops</c> only, to time the networks without them.</summary>
    internal static bool OffForBenchmark { get; set; }

    /// <summary>Output elements a task should have at least, so that handing it out costs little beside its work.</summary>
    const int ElementsPerTask = 16384;
    const int PixelsPerTask = 1024;

    /// <summary>Output pixels an image needs for the loops: below, ATen's kernel was faster (0.1 against 0.4 ms at [32, 64, 6²], docs/benchmarks.md §15).</summary>
    internal const int MinimumPixels = 64;

    /// <summary>
    /// Whether the loops run: float32 CPU tensors, at least <see cref="MinimumPixels"/> output pixels an image, input
    /// planes whose element offsets fit in 32 bits. Otherwise <see cref="GridSample"/> calls ATen's <c>grid_sample</c>.
    /// </summary>
    public static bool Fits(Tensor input, Tensor grid) =>
        !OffForBenchmark && input.dim() == 4 && grid.dim() == 4 && grid.shape[3] == 2 && grid.shape[0] == input.shape[0]
        && grid.shape[1] * grid.shape[2] >= MinimumPixels
        && input.shape[2] * input.shape[3] < int.MaxValue && grid.shape[1] * grid.shape[2] < int.MaxValue
        && input.dtype == ScalarType.Float32 && grid.dtype == ScalarType.Float32
        && input.device_type == DeviceType.CPU && grid.device_type == DeviceType.CPU;

    /// <summary>
    /// Per output pixel: the input offsets of its four corners (north-west, north-east, south-west, south-east), the
    /// fractional position between them, and the derivative of the clipped input coordinate by the grid coordinate
    /// (size / 2 inside the map, 0 where border padding clipped it).
    /// </summary>
    sealed class Corners : IDisposable
    {
        public readonly int Pixels, InputH, InputW;
        public readonly int* Nw, Ne, Sw, Se;
        public readonly float* FractionX, FractionY, SlopeX, SlopeY;
        readonly void* _block;

        public Corners(float* grid, int n, int pixels, int inputH, int inputW)
        {
            (Pixels, InputH, InputW) = (pixels, inputH, inputW);
            long count = (long)n * pixels;
            _block = NativeMemory.AlignedAlloc((nuint)(8 * count * sizeof(float)), 64);
            var ints = (int*)_block;
            Nw = ints;
            Ne = ints + count;
            Sw = ints + 2 * count;
            Se = ints + 3 * count;
            FractionX = (float*)(ints + 4 * count);
            FractionY = FractionX + count;
            SlopeX = FractionX + 2 * count;
            SlopeY = FractionX + 3 * count;
            long tasks = (count + PixelsPerTask - 1) / PixelsPerTask;
            OpenMpTeam.For((int)tasks, get_num_threads(), task => LocateAll(grid, (long)task * PixelsPerTask, Math.Min(count, (task + 1L) * PixelsPerTask)));
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void LocateAll(float* grid, long p0, long p1)
        {
            for (long p = p0; p < p1; p++)
                Locate(grid, p);
        }

        // Inlined with Clipped: as calls, their pairs went through the stack (an 8-byte store read back as two 4-byte
        // loads, which the CPU does not forward), 25 ns a pixel against 6 (docs/benchmarks.md §24).
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        void Locate(float* grid, long p)
        {
            var (x, slopeX) = Clipped(grid[2 * p], InputW);
            var (y, slopeY) = Clipped(grid[2 * p + 1], InputH);
            int x0 = (int)x, y0 = (int)y;
            // A corner past the last row or column only occurs at exactly that coordinate, where its weight is 0;
            // reading the border instead keeps every read inside the map, and the clipped slope there is 0 anyway.
            int east = x0 + 1 < InputW ? 1 : 0, south = y0 + 1 < InputH ? InputW : 0;
            int nw = y0 * InputW + x0;
            (Nw[p], Ne[p], Sw[p], Se[p]) = (nw, nw + east, nw + south, nw + south + east);
            (FractionX[p], FractionY[p], SlopeX[p], SlopeY[p]) = (x - x0, y - y0, slopeX, slopeY);
        }

        /// <summary>
        /// align_corners = false: grid −1 and 1 are the outer edges of the first and last pixel; border padding clips
        /// to the centres of the first and last pixel, with no gradient where it clipped (nor at the clip points, as in
        /// ATen; NaN clips to 0).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static (float Coordinate, float Slope) Clipped(float g, int size)
        {
            float c = ((g + 1) * size - 1) * 0.5f;
            if (!(c > 0))
                return (0, 0);
            if (c >= size - 1)
                return (size - 1, 0);
            return (c, size * 0.5f);
        }

        /// <summary>Elements in one channel of the input.</summary>
        public long Plane => (long)InputH * InputW;

        /// <summary>The corners and fractions from pixel <paramref name="first"/> on: an image's, or a task's part of one.</summary>
        public Entries From(long first) => new(this, first);

        public void Dispose() => NativeMemory.AlignedFree(_block);
    }

    readonly struct Entries(Corners table, long first)
    {
        public void Deconstruct(out int* nw, out int* ne, out int* sw, out int* se, out float* fractionX, out float* fractionY)
        {
            nw = table.Nw + first;
            ne = table.Ne + first;
            sw = table.Sw + first;
            se = table.Se + first;
            fractionX = table.FractionX + first;
            fractionY = table.FractionY + first;
        }
    }

    /// <summary>
    /// The forward pass: <paramref name="input"/> [N, C, H, W] sampled at <paramref name="grid"/> [N, Ho, Wo, 2]
    /// into [N, C, Ho, Wo].
    /// </summary>
    public static Tensor Sample(Tensor input, Tensor grid)
    {
        using var scope = NewDisposeScope();
        var x = input.contiguous();
        var positions = grid.contiguous();
        int n = (int)x.shape[0], c = (int)x.shape[1];
        var output = empty(new[] { n, c, grid.shape[1], grid.shape[2] }, dtype: ScalarType.Float32);
        using var corners = new Corners(TensorMemory.Floats(positions), n, (int)(grid.shape[1] * grid.shape[2]), (int)x.shape[2], (int)x.shape[3]);
        float* source = TensorMemory.Floats(x), target = TensorMemory.Floats(output);
        long plane = corners.Plane;
        InChannelTasks(n, c, corners.Pixels, (image, c0, c1) =>
            SamplePlanes(corners, image, source + ((long)image * c + c0) * plane, target + ((long)image * c + c0) * corners.Pixels, c1 - c0));
        return output.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The gradients of <see cref="Sample"/>: by the input [N, C, H, W] (each output's gradient added into its four
    /// corners with their bilinear weights) and by the grid [N, Ho, Wo, 2].
    /// </summary>
    public static (Tensor? GradInput, Tensor? GradGrid) Gradients(Tensor input, Tensor grid, Tensor gradOutput, bool needInput, bool needGrid)
    {
        using var scope = NewDisposeScope();
        var x = input.contiguous();
        var positions = grid.contiguous();
        var gradient = gradOutput.contiguous();
        int n = (int)x.shape[0], c = (int)x.shape[1];
        using var corners = new Corners(TensorMemory.Floats(positions), n, (int)(grid.shape[1] * grid.shape[2]), (int)x.shape[2], (int)x.shape[3]);
        long plane = corners.Plane;
        float* source = TensorMemory.Floats(x), gradOut = TensorMemory.Floats(gradient);
        Tensor? gradInput = null, gradGrid = null;
        if (needInput)
        {
            gradInput = zeros(x.shape, dtype: ScalarType.Float32);
            float* target = TensorMemory.Floats(gradInput);
            InChannelTasks(n, c, corners.Pixels, (image, c0, c1) =>
                SpreadPlanes(corners, image, gradOut + ((long)image * c + c0) * corners.Pixels, target + ((long)image * c + c0) * plane, c1 - c0));
        }
        if (needGrid)
        {
            gradGrid = empty(positions.shape, dtype: ScalarType.Float32);
            float* target = TensorMemory.Floats(gradGrid);
            int chunks = (corners.Pixels + PixelsPerTask - 1) / PixelsPerTask;
            OpenMpTeam.For(n * chunks, get_num_threads(), task =>
            {
                int image = task / chunks, p0 = task % chunks * PixelsPerTask;
                GridGradientPixels(corners, image, source + (long)image * c * plane, gradOut + (long)image * c * corners.Pixels, c,
                    target, p0, Math.Min(corners.Pixels, p0 + PixelsPerTask));
            });
        }
        return (gradInput?.MoveToOuterDisposeScope(), gradGrid?.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Blocks of channels per image, on libtorch's OpenMP threads: multiples of four channels (the loops' unit), as
    /// many as make a task of <see cref="ElementsPerTask"/>, so that small maps are whole images per task instead of
    /// thousands of tiny ones.
    /// </summary>
    static void InChannelTasks(int n, int c, int pixels, Action<int, int, int> channels)
    {
        int perTask = Math.Min(c, Math.Max(4, (ElementsPerTask / pixels + 3) / 4 * 4));
        int blocks = (c + perTask - 1) / perTask;
        OpenMpTeam.For(n * blocks, get_num_threads(), task =>
        {
            int c0 = task % blocks * perTask;
            channels(task / blocks, c0, Math.Min(c, c0 + perTask));
        });
    }

    /// <summary><paramref name="channels"/> consecutive channels of one image: the bilinear interpolation at each pixel's corners.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void SamplePlanes(Corners k, int image, float* source, float* output, int channels)
    {
        long plane = k.Plane, first = (long)image * k.Pixels;
        int pixels = k.Pixels;
        var (nwAt, neAt, swAt, seAt, fxAt, fyAt) = k.From(first);
        int c = 0;
        for (; c + 4 <= channels; c += 4)
        {
            float* s0 = source + c * plane, s1 = s0 + plane, s2 = s1 + plane, s3 = s2 + plane;
            float* o0 = output + (long)c * pixels, o1 = o0 + pixels, o2 = o1 + pixels, o3 = o2 + pixels;
            for (int q = 0; q < pixels; q++)
            {
                int nw = nwAt[q], ne = neAt[q], sw = swAt[q], se = seAt[q];
                float fx = fxAt[q], fy = fyAt[q];
                o0[q] = Bilinear(s0, nw, ne, sw, se, fx, fy);
                o1[q] = Bilinear(s1, nw, ne, sw, se, fx, fy);
                o2[q] = Bilinear(s2, nw, ne, sw, se, fx, fy);
                o3[q] = Bilinear(s3, nw, ne, sw, se, fx, fy);
            }
        }
        for (; c < channels; c++)
        {
            float* s = source + c * plane, o = output + (long)c * pixels;
            for (int q = 0; q < pixels; q++)
                o[q] = Bilinear(s, nwAt[q], neAt[q], swAt[q], seAt[q], fxAt[q], fyAt[q]);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Bilinear(float* s, int nw, int ne, int sw, int se, float fx, float fy)
    {
        float north = s[nw] + fx * (s[ne] - s[nw]), south = s[sw] + fx * (s[se] - s[sw]);
        return north + fy * (south - north);
    }

    /// <summary>
    /// Pixels p0..p1 of image <paramref name="image"/>: the grid's gradient, Σ over channels of the output gradient
    /// times the output's derivative by the clipped coordinate, times that coordinate's slope. Channels are the outer
    /// loop, four at a time, so that each plane is read in order; the sums wait in a buffer of the task's pixels.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void GridGradientPixels(Corners k, int image, float* source, float* gradOut, int channels, float* gradGrid, int p0, int p1)
    {
        long plane = k.Plane, first = (long)image * k.Pixels + p0;
        int pixels = k.Pixels, count = p1 - p0;
        var (nwAt, neAt, swAt, seAt, fxAt, fyAt) = k.From(first);
        float* sumX = stackalloc float[PixelsPerTask], sumY = stackalloc float[PixelsPerTask];
        new Span<float>(sumX, count).Clear();
        new Span<float>(sumY, count).Clear();
        int c = 0;
        for (; c + 4 <= channels; c += 4)
        {
            float* s0 = source + c * plane, s1 = s0 + plane, s2 = s1 + plane, s3 = s2 + plane;
            float* g0 = gradOut + (long)c * pixels + p0, g1 = g0 + pixels, g2 = g1 + pixels, g3 = g2 + pixels;
            for (int q = 0; q < count; q++)
            {
                int nw = nwAt[q], ne = neAt[q], sw = swAt[q], se = seAt[q];
                float fx = fxAt[q], fy = fyAt[q];
                var (x0, y0) = Slopes(s0, nw, ne, sw, se, fx, fy);
                var (x1, y1) = Slopes(s1, nw, ne, sw, se, fx, fy);
                var (x2, y2) = Slopes(s2, nw, ne, sw, se, fx, fy);
                var (x3, y3) = Slopes(s3, nw, ne, sw, se, fx, fy);
                sumX[q] += g0[q] * x0 + g1[q] * x1 + g2[q] * x2 + g3[q] * x3;
                sumY[q] += g0[q] * y0 + g1[q] * y1 + g2[q] * y2 + g3[q] * y3;
            }
        }
        for (; c < channels; c++)
        {
            float* s = source + c * plane, g = gradOut + (long)c * pixels + p0;
            for (int q = 0; q < count; q++)
            {
                var (x, y) = Slopes(s, nwAt[q], neAt[q], swAt[q], seAt[q], fxAt[q], fyAt[q]);
                sumX[q] += g[q] * x;
                sumY[q] += g[q] * y;
            }
        }
        float* slopeX = k.SlopeX + first, slopeY = k.SlopeY + first, to = gradGrid + 2 * first;
        for (int q = 0; q < count; q++)
        {
            to[2 * q] = sumX[q] * slopeX[q];
            to[2 * q + 1] = sumY[q] * slopeY[q];
        }
    }

    /// <summary>The interpolation's derivatives by x and y: (1 − fy)(ne − nw) + fy (se − sw) and (1 − fx)(sw − nw) + fx (se − ne).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static (float X, float Y) Slopes(float* s, int nw, int ne, int sw, int se, float fx, float fy)
    {
        float north = s[ne] - s[nw], west = s[sw] - s[nw];
        return (north + fy * (s[se] - s[sw] - north), west + fx * (s[se] - s[ne] - west));
    }

    /// <summary>
    /// <paramref name="channels"/> consecutive channels of one image: each output gradient added into its four corners
    /// with their bilinear weights. Consecutive pixels share corners, so one channel alone would wait on each add's
    /// store before the next add's load; four channels at a time keep four independent chains in flight.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void SpreadPlanes(Corners k, int image, float* gradOut, float* gradInput, int channels)
    {
        long plane = k.Plane, first = (long)image * k.Pixels;
        int pixels = k.Pixels;
        var (nwAt, neAt, swAt, seAt, fxAt, fyAt) = k.From(first);
        int c = 0;
        for (; c + 4 <= channels; c += 4)
        {
            float* g0 = gradOut + (long)c * pixels, g1 = g0 + pixels, g2 = g1 + pixels, g3 = g2 + pixels;
            float* t0 = gradInput + c * plane, t1 = t0 + plane, t2 = t1 + plane, t3 = t2 + plane;
            for (int q = 0; q < pixels; q++)
            {
                int nw = nwAt[q], ne = neAt[q], sw = swAt[q], se = seAt[q];
                float fx = fxAt[q], fy = fyAt[q];
                float wnw = (1 - fx) * (1 - fy), wne = fx * (1 - fy), wsw = (1 - fx) * fy, wse = fx * fy;
                float a0 = g0[q], a1 = g1[q], a2 = g2[q], a3 = g3[q];
                t0[nw] += wnw * a0; t1[nw] += wnw * a1; t2[nw] += wnw * a2; t3[nw] += wnw * a3;
                t0[ne] += wne * a0; t1[ne] += wne * a1; t2[ne] += wne * a2; t3[ne] += wne * a3;
                t0[sw] += wsw * a0; t1[sw] += wsw * a1; t2[sw] += wsw * a2; t3[sw] += wsw * a3;
                t0[se] += wse * a0; t1[se] += wse * a1; t2[se] += wse * a2; t3[se] += wse * a3;
            }
        }
        for (; c < channels; c++)
        {
            float* g = gradOut + (long)c * pixels, t = gradInput + c * plane;
            for (int q = 0; q < pixels; q++)
            {
                float fx = fxAt[q], fy = fyAt[q], a = g[q];
                t[nwAt[q]] += (1 - fx) * (1 - fy) * a;
                t[neAt[q]] += fx * (1 - fy) * a;
                t[swAt[q]] += (1 - fx) * fy * a;
                t[seAt[q]] += fx * fy * a;
            }
        }
    }
}
