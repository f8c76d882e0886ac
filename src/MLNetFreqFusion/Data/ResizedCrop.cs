using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Data;

/// <summary>
/// One box of an image or mask as if the whole of it had been resized with libtorch's <c>F.interpolate</c> (bilinear
/// with align_corners false and no antialiasing for images, nearest for masks), computed from the source pixels that
/// box is interpolated from. Memory is bounded by the box: training augmentation crops a small box out of images scaled
/// by up to <see cref="AugmentationOptions.MaxScaleRatio"/>, and resizing a large photo whole held gigabytes.
/// </summary>
/// <remarks>
/// The sampling positions are libtorch's CPU ones, computed in float32 as libtorch computes them for float32 input,
/// so that a box equals the crop of the resized tensor up to float rounding: bilinear samples source coordinate
/// <c>(dst + 0.5) · in/out − 0.5</c> clamped at 0, blending rows (or columns) <c>i0 = ⌊src⌋</c> (at most in − 1) and
/// <c>min(i0 + 1, in − 1)</c> with weight <c>src − i0</c> on the second; nearest takes <c>min(⌊dst · in/out⌋, in − 1)</c>.
/// AugmentationTests compares both against <c>F.interpolate</c>.
/// </remarks>
internal static class ResizedCrop
{
    /// <summary>The box of <paramref name="image"/> resized bilinearly to <paramref name="height"/> × <paramref name="width"/>.</summary>
    /// <param name="image">[C, H, W], any numeric type.</param>
    /// <param name="height">Height of the resized image.</param>
    /// <param name="width">Width of the resized image.</param>
    /// <param name="box">The box in the resized image's pixels; it must lie inside it.</param>
    /// <returns>float32 [C, box.H, box.W], a new tensor.</returns>
    public static Tensor Image(Tensor image, int height, int width, (int Y, int X, int H, int W) box)
    {
        CheckBox(image, height, width, box);
        using var scope = NewDisposeScope();
        var (r0, r1, wr0, wr1) = Bilinear(box.Y, box.H, (int)image.shape[^2], height);
        var (c0, c1, wc0, wc1) = Bilinear(box.X, box.W, (int)image.shape[^1], width);
        var rows0 = TensorIndex.Tensor(tensor(r0).unsqueeze(1));
        var rows1 = TensorIndex.Tensor(tensor(r1).unsqueeze(1));
        var cols0 = TensorIndex.Tensor(tensor(c0).unsqueeze(0));
        var cols1 = TensorIndex.Tensor(tensor(c1).unsqueeze(0));
        // Four gathers of the box's size (broadcast row and column indices), never a full source row or column.
        Tensor At(TensorIndex rows, TensorIndex cols) => image.index(TensorIndex.Colon, rows, cols).to(float32);
        var left = tensor(wc0).unsqueeze(0);
        var right = tensor(wc1).unsqueeze(0);
        // libtorch's order: each source row blended across columns, then the two rows blended.
        var top = At(rows0, cols0) * left + At(rows0, cols1) * right;
        var bottom = At(rows1, cols0) * left + At(rows1, cols1) * right;
        var result = top * tensor(wr0).unsqueeze(1) + bottom * tensor(wr1).unsqueeze(1);
        return scope.MoveToOuter(result.contiguous());
    }

    /// <summary>The box of <paramref name="mask"/> resized by nearest neighbour to <paramref name="height"/> × <paramref name="width"/>.</summary>
    /// <param name="mask">[H, W] class indices, any integer type.</param>
    /// <param name="height">Height of the resized mask.</param>
    /// <param name="width">Width of the resized mask.</param>
    /// <param name="box">The box in the resized mask's pixels; it must lie inside it.</param>
    /// <returns>int64 [box.H, box.W], a new tensor.</returns>
    public static Tensor Mask(Tensor mask, int height, int width, (int Y, int X, int H, int W) box)
    {
        CheckBox(mask, height, width, box);
        using var scope = NewDisposeScope();
        var rows = TensorIndex.Tensor(tensor(Nearest(box.Y, box.H, (int)mask.shape[^2], height)).unsqueeze(1));
        var cols = TensorIndex.Tensor(tensor(Nearest(box.X, box.W, (int)mask.shape[^1], width)).unsqueeze(0));
        // index makes a new tensor even when the box is the whole mask, so the result never shares the caller's storage.
        return scope.MoveToOuter(mask.index(rows, cols).to(int64).contiguous());
    }

    static void CheckBox(Tensor t, int height, int width, (int Y, int X, int H, int W) box)
    {
        if (height < 1 || width < 1 || box.H < 1 || box.W < 1 || box.Y < 0 || box.X < 0 || box.Y + box.H > height || box.X + box.W > width)
            throw new ArgumentOutOfRangeException(nameof(box),
                $"The box (y {box.Y}, x {box.X}, {box.H}×{box.W}) does not lie inside the resized {height}×{width} of a [{string.Join(", ", t.shape)}] tensor.");
    }

    static (long[] I0, long[] I1, float[] W0, float[] W1) Bilinear(int start, int count, int input, int output)
    {
        var i0 = new long[count];
        var i1 = new long[count];
        var w0 = new float[count];
        var w1 = new float[count];
        float scale = (float)input / output;
        for (int i = 0; i < count; i++)
        {
            // Fused, as libtorch's vectorised CPU kernels compute it (measured against F.interpolate: the unfused
            // product differs by one float32 step at source coordinates in the hundreds).
            float src = MathF.FusedMultiplyAdd(scale, (start + i) + 0.5f, -0.5f);
            if (src < 0)
                src = 0;
            long first = Math.Min((long)MathF.Floor(src), input - 1);
            float lambda = Math.Clamp(src - first, 0f, 1f);
            i0[i] = first;
            i1[i] = first < input - 1 ? first + 1 : first;
            w1[i] = lambda;
            w0[i] = 1f - lambda;
        }
        return (i0, i1, w0, w1);
    }

    static long[] Nearest(int start, int count, int input, int output)
    {
        var indices = new long[count];
        float scale = (float)input / output;
        for (int i = 0; i < count; i++)
            indices[i] = Math.Min((long)MathF.Floor((start + i) * scale), input - 1);
        return indices;
    }
}
