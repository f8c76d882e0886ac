using System.Runtime.InteropServices;
using Microsoft.ML.Data;
using SkiaSharp;

namespace MLNetFreqFusion.Data;

/// <summary>
/// Decodes image files with SkiaSharp and refuses what SkiaSharp would otherwise let through: a header that declares
/// more pixels than a limit (checked before anything is allocated; <c>SKCodec.GetPixels(info, out byte[])</c> sizes
/// its array with an int and crashes natively on huge images), and pixel data that is truncated or corrupt
/// (<c>SKBitmap.Decode</c>, which <c>MLImage.CreateFromFile</c> and <c>LoadImages</c> use, returns such files with the
/// missing rows black). Every message names the file.
/// </summary>
internal static class StrictImageDecoder
{
    /// <summary>
    /// Decodes <paramref name="file"/> into pixels of <paramref name="colorType"/>, rows packed (stride = width × bytes
    /// per pixel), without colour management.
    /// </summary>
    /// <param name="file">The encoded file.</param>
    /// <param name="colorType">Pixel layout to decode to.</param>
    /// <param name="alphaType">Alpha handling (unpremultiplied keeps stored colours exact).</param>
    /// <param name="what">What the messages call it, with its name: "Mask 'a.png'", "Image 'b.jpg'".</param>
    /// <param name="maxPixels">Largest accepted width × height.</param>
    /// <param name="limitName">Where the limit comes from, for the message (e.g. "SegmentationMask.MaxPixels").</param>
    internal static (int Width, int Height, byte[] Pixels) Decode(byte[] file, string what, SKColorType colorType, SKAlphaType alphaType,
        long maxPixels, string limitName)
    {
        using var data = SKData.CreateCopy(file);
        using var codec = SKCodec.Create(data)
            ?? throw new InvalidDataException($"{what} is not an image SkiaSharp can decode (PNG, JPEG, BMP, GIF, WebP, ICO, WBMP); " +
                (file.Length == 0 ? "the file is empty." : "check that the file is complete and really an image."));
        var (width, height) = (codec.Info.Width, codec.Info.Height);
        CheckPixelCount(width, height, maxPixels, what, limitName);
        var info = new SKImageInfo(width, height, colorType, alphaType);
        var pixels = new byte[info.BytesSize64];
        var handle = GCHandle.Alloc(pixels, GCHandleType.Pinned);
        SKCodecResult result;
        try
        {
            result = codec.GetPixels(info, handle.AddrOfPinnedObject());
        }
        finally
        {
            handle.Free();
        }
        if (result != SKCodecResult.Success)
            throw new InvalidDataException(result == SKCodecResult.IncompleteInput
                ? $"{what} ({codec.EncodedFormat}, {width}×{height}) is truncated: the file ends before all its pixels, which a lenient decoder fills with black. Replace the file with a complete copy."
                : $"{what} ({codec.EncodedFormat}, {width}×{height}) has corrupt pixel data ({result}); a lenient decoder would return black pixels. Replace the file with an undamaged copy.");
        return (width, height, pixels);
    }

    /// <summary>
    /// Reads an image file the way <c>MLImage.CreateFromFile</c> does (32-bit BGRA, premultiplied alpha, so predictions
    /// match images from <c>LoadImages</c>), but strictly: an undecodable, truncated or corrupt file, or one of more than
    /// <paramref name="maxPixels"/> pixels, is an <see cref="InvalidDataException"/> naming it.
    /// </summary>
    internal static MLImage DecodeImage(byte[] file, string name, long maxPixels, string limitName)
    {
        var (width, height, pixels) = Decode(file, $"Image '{name}'", SKColorType.Bgra8888, SKAlphaType.Premul, maxPixels, limitName);
        var image = MLImage.CreateFromPixels(width, height, MLPixelFormat.Bgra32, pixels);
        image.Tag = name;
        return image;
    }

    /// <summary>Refuses a declared size above the limit before anything is allocated.</summary>
    internal static void CheckPixelCount(long width, long height, long maxPixels, string what, string limitName)
    {
        long pixels = width * height;
        if (pixels > maxPixels)
            throw new InvalidDataException($"{what} declares {width}×{height} = {pixels:N0} pixels, more than the limit of {maxPixels:N0} ({limitName}); " +
                "it is refused before decoding. A small file declaring such a size is damaged or hostile; split genuine images this large into tiles.");
    }
}
