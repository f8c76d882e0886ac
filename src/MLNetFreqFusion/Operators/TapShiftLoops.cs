using System.Numerics;
using System.Runtime.Intrinsics;
using MLNetFreqFusion.Native;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Operators;

/// <summary>
/// The shifted additions of <see cref="TapConvolution"/> and their adjoint as loops over libtorch's memory. As ATen
/// operations each of the k² taps was a slice of the output, a slice of its plane and an in-place addition (and in the
/// backward a zero fill and k² copies): three dozen operators a call, which at the small maps of FreqFusion's early
/// stages cost more than the matrix product itself (docs/benchmarks.md §20). Here each output row is summed in one
/// visit while it stays in L1, tap after tap in the slices' order, so results are bit for bit the ATen additions'; each
/// plane row of the gradient is written once, zeros included. Float32 and float64 (the tests' precision), on libtorch's threads.
/// </summary>
internal static unsafe class TapShiftLoops
{
    /// <summary>
    /// output[b, o, y, x] = bias[o] + Σ_t planes[b, t, o, y + RowShift_t, x + ColumnShift_t] over the taps whose
    /// position lies on the plane; planes [B, taps, out, h, w], output [B, out, outH, outW], both contiguous.
    /// </summary>
    public static void SumShifted(Tensor planes, Tensor? bias, Tensor output, int[] rowShifts, int[] columnShifts)
    {
        if (output.dtype == ScalarType.Float64)
            SumShifted<double>(planes, bias, output, rowShifts, columnShifts);
        else
            SumShifted<float>(planes, bias, output, rowShifts, columnShifts);
    }

    /// <summary>
    /// The adjoint: gradPlanes[b, t, o, Y, X] = gradOutput[b, o, Y − RowShift_t, X − ColumnShift_t] where that is on
    /// the output, zero elsewhere; every element of <paramref name="gradPlanes"/> [B, taps, out, h, w] is written.
    /// </summary>
    public static void ScatterShifted(Tensor gradOutput, Tensor gradPlanes, int[] rowShifts, int[] columnShifts)
    {
        if (gradOutput.dtype == ScalarType.Float64)
            ScatterShifted<double>(gradOutput, gradPlanes, rowShifts, columnShifts);
        else
            ScatterShifted<float>(gradOutput, gradPlanes, rowShifts, columnShifts);
    }

    static void SumShifted<T>(Tensor planes, Tensor? bias, Tensor output, int[] rowShifts, int[] columnShifts) where T : unmanaged, INumber<T>
    {
        T* p = TensorMemory.Elements<T>(planes), o = TensorMemory.Elements<T>(output);
        T* bi = bias is null ? null : TensorMemory.Elements<T>(bias);
        int images = (int)output.shape[0], outputs = (int)output.shape[1], outH = (int)output.shape[2], outW = (int)output.shape[3];
        int h = (int)planes.shape[3], w = (int)planes.shape[4], taps = rowShifts.Length;
        OpenMpTeam.ForRuns((long)images * outputs * outH, outW, (first, end) =>
        {
            for (long r = first; r < end; r++)
            {
                long plane = r / outH;
                int y = (int)(r % outH), b = (int)(plane / outputs), channel = (int)(plane % outputs);
                T* row = o + r * outW;
                new Span<T>(row, outW).Fill(bi is null ? T.Zero : bi[channel]);
                for (int t = 0; t < taps; t++)
                {
                    int sy = y + rowShifts[t], sx = columnShifts[t];
                    int x0 = Math.Max(0, -sx), x1 = Math.Min(outW, w - sx);
                    if (sy < 0 || sy >= h || x1 <= x0)
                        continue;
                    AddRow(row, p + (((long)b * taps + t) * outputs + channel) * h * w + (long)sy * w + sx, x0, x1);
                }
            }
        });
    }

    static void AddRow<T>(T* row, T* source, int x0, int x1) where T : unmanaged, INumber<T>
    {
        int x = x0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; x + Vector256<T>.Count <= x1; x += Vector256<T>.Count)
                Vector256.Store(Vector256.Load(row + x) + Vector256.Load(source + x), row + x);
        }
        for (; x < x1; x++)
            row[x] += source[x];
    }

    static void ScatterShifted<T>(Tensor gradOutput, Tensor gradPlanes, int[] rowShifts, int[] columnShifts) where T : unmanaged, INumber<T>
    {
        T* g = TensorMemory.Elements<T>(gradOutput), gp = TensorMemory.Elements<T>(gradPlanes);
        int images = (int)gradPlanes.shape[0], taps = (int)gradPlanes.shape[1], outputs = (int)gradPlanes.shape[2], h = (int)gradPlanes.shape[3], w = (int)gradPlanes.shape[4];
        int outH = (int)gradOutput.shape[2], outW = (int)gradOutput.shape[3];
        OpenMpTeam.ForRuns((long)images * taps * outputs * h, w, (first, end) =>
        {
            for (long r = first; r < end; r++)
            {
                long plane = r / h;
                int sy = (int)(r % h), channel = (int)(plane % outputs), t = (int)(plane / outputs % taps), b = (int)(plane / ((long)outputs * taps));
                int sx = columnShifts[t], x0 = Math.Max(0, sx), x1 = Math.Min(w, outW + sx), y = sy - rowShifts[t];
                var row = new Span<T>(gp + r * w, w);
                if (y < 0 || y >= outH || x1 <= x0)
                {
                    row.Clear();
                    continue;
                }
                row[..x0].Clear();
                new ReadOnlySpan<T>(g + (((long)b * outputs + channel) * outH + y) * outW + (x0 - sx), x1 - x0).CopyTo(row[x0..x1]);
                row[x1..].Clear();
            }
        });
    }
}
