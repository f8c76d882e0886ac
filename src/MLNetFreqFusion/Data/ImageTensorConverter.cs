using System.Runtime.InteropServices;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Data;

/// <summary>
/// The one conversion between ML.NET's image and mask values and network tensors, shared by training and inference:
/// images become float32 RGB planar tensors with values 0..255 (normalisation belongs to the network), masks become
/// int64 class-index tensors. Pixels are copied once into an int32 tensor (one word per pixel); channels are unpacked by
/// torch ops, with no per-pixel managed loop.
/// </summary>
internal static class ImageTensorConverter
{
    /// <summary>An image as a float32 [3, H, W] tensor, RGB, values 0..255 (alpha dropped).</summary>
    internal static Tensor ToTensor(MLImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(Unpack(PixelWords(image), image.PixelFormat));
    }

    /// <summary>A mask as an int64 [H, W] tensor of class indices.</summary>
    internal static Tensor ToTensor(SegmentationMask mask)
    {
        ArgumentNullException.ThrowIfNull(mask);
        using var scope = NewDisposeScope();
        var raw = empty(new long[] { mask.Height, mask.Width }, ScalarType.Int16);
        raw.bytes = MemoryMarshal.AsBytes(mask.Labels.AsSpan());
        // Labels are unsigned 16-bit; the int16 view is signed, so the mask restores values above 32767.
        return scope.MoveToOuter(raw.to(int64).bitwise_and_(0xFFFF));
    }

    /// <summary>An integer [H, W] tensor of class indices (0..65535) as a mask.</summary>
    internal static SegmentationMask ToMask(Tensor labels, IReadOnlyList<string>? classNames = null)
    {
        ArgumentNullException.ThrowIfNull(labels);
        if (labels.dim() != 2)
            throw new ArgumentException($"Expected an [H, W] tensor of class indices; got shape [{string.Join(", ", labels.shape)}].", nameof(labels));
        using var scope = NewDisposeScope();
        var int16 = labels.to(ScalarType.Int32).to(ScalarType.Int16).cpu().contiguous();
        var values = new ushort[int16.numel()];
        int16.bytes.CopyTo(MemoryMarshal.AsBytes(values.AsSpan()));
        return new SegmentationMask((int)labels.shape[1], (int)labels.shape[0], values, classNames);
    }

    // int32 [H, W]: one 32-bit word per pixel, a single copy of the pixel bytes.
    static Tensor PixelWords(MLImage image)
    {
        var pixels = image.Pixels;
        int w = image.Width, h = image.Height;
        if (image.PixelFormat is not (MLPixelFormat.Bgra32 or MLPixelFormat.Rgba32))
            throw new ArgumentException($"Unsupported image pixel format {image.PixelFormat}; expected Bgra32 or Rgba32.", nameof(image));
        if (pixels.Length % (4 * h) != 0 || pixels.Length / h < 4L * w)
            throw new ArgumentException($"Image pixel buffer of {pixels.Length} bytes does not hold {w}×{h} 4-byte pixels.", nameof(image));
        var words = empty(new long[] { h, pixels.Length / (4 * h) }, ScalarType.Int32);
        // The setter copies; the span is only read.
        words.bytes = MemoryMarshal.CreateSpan(ref MemoryMarshal.GetReference(pixels), pixels.Length);
        return words.narrow(1, 0, w);
    }

    // [..., H, W] pixel words -> float32 [..., 3, H, W] RGB. Shifting whole words and masking a byte is three
    // contiguous elementwise passes; it measured faster than gathering channels from an interleaved uint8 layout.
    static Tensor Unpack(Tensor words, MLPixelFormat format)
    {
        // Byte k of a word (k = position in memory) sits at bit 8k on little-endian machines.
        int[] bytePosition = format == MLPixelFormat.Bgra32 ? [2, 1, 0] : [0, 1, 2];
        var shifts = tensor(bytePosition.Select(k => BitConverter.IsLittleEndian ? 8 * k : 8 * (3 - k)).ToArray()).view(3, 1, 1);
        return words.unsqueeze(-3).bitwise_right_shift(shifts).bitwise_and_(0xFF).to(float32);
    }
}
