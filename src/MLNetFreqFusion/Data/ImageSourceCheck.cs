using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetFreqFusion.Data;

/// <summary>
/// Makes damaged image files fail by name where rows are read. ML.NET's <c>LoadImages</c> decodes leniently: a
/// truncated or corrupt file comes back with black rows, and bytes it cannot decode at all fail as "Invalid input
/// stream contents (Parameter 'imageStream')" with no file or row. It tags every image with its file path, so the
/// file can be decoded again strictly (<see cref="StrictImageDecoder"/>); each file is checked once per instance, so
/// an epoch after the first costs nothing. Images without a file (made in memory, from a stream) are left as they are.
/// </summary>
internal sealed class ImageSourceCheck
{
    readonly HashSet<string> _verified = new(StringComparer.Ordinal);

    /// <summary>
    /// Calls <paramref name="getter"/> for the row's image; a failure is rethrown naming the row and column (ML.NET's
    /// own message names neither), and an image read from a file that does not decode strictly is refused.
    /// </summary>
    internal void Read(ValueGetter<MLImage> getter, ref MLImage image, long row, string column)
    {
        try
        {
            getter(ref image);
        }
        // ML.NET 6 (SkiaSharp 3) reports undecodable bytes as a bare Exception ("Unable to allocate pixels for the
        // bitmap"), 5.0 as an ArgumentException: whatever it throws is rethrown with the row and column, never swallowed.
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new InvalidDataException($"Row {row}: the image in column '{column}' could not be read: {e.Message} " +
                "The file is missing, empty, not an image or damaged; LoadImages does not say which, so check the row's path.", e);
        }
        if (image is not null)
            Verify(image, row, column);
    }

    /// <summary>Refuses an image whose source file (its <see cref="MLImage.Tag"/>) is truncated or corrupt.</summary>
    internal void Verify(MLImage image, long row, string column)
    {
        if (string.IsNullOrEmpty(image.Tag) || _verified.Contains(image.Tag) || !File.Exists(image.Tag))
            return;
        try
        {
            StrictImageDecoder.Decode(File.ReadAllBytes(image.Tag), $"Image '{image.Tag}'", SkiaSharp.SKColorType.Bgra8888, SkiaSharp.SKAlphaType.Premul,
                (long)image.Width * image.Height, "the size LoadImages decoded");
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"Row {row}, column '{column}': {e.Message}", e);
        }
        _verified.Add(image.Tag);
    }
}
