using Google.Protobuf;
using MLNetFreqFusion.Networks;

namespace MLNetFreqFusion.Onnx;

/// <summary>Writes the ONNX model of a network to a stream or a file, never leaving a partial file behind.</summary>
internal static class OnnxExport
{
    public static void ToStream(SegmentationNetwork network, IReadOnlyList<string>? classNames, Stream destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        if (!destination.CanWrite)
            throw new ArgumentException(
                "The ONNX model cannot be written: the destination stream is closed or read-only. Pass an open, writable stream (for example File.Create(path)).",
                nameof(destination));
        var model = OnnxNetworkEmitter.Emit(network, classNames);
        model.WriteTo(destination);
        destination.Flush();
    }

    /// <summary>Writes a temporary file next to <paramref name="path"/> and moves it into place once complete.</summary>
    public static void ToFile(SegmentationNetwork network, IReadOnlyList<string>? classNames, string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string full = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(full) ?? throw new ArgumentException($"'{path}' is not a file path.", nameof(path));
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"The ONNX model cannot be written to '{full}': the folder '{folder}' does not exist. Create it first or choose another path.");
        var model = OnnxNetworkEmitter.Emit(network, classNames);
        string temporary = Path.Combine(folder, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var file = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write))
                model.WriteTo(file);
            File.Move(temporary, full, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"The ONNX model cannot be written to '{full}': {e.Message} Check that the folder is writable and the file is not in use.", e);
        }
        finally
        {
            if (File.Exists(temporary))
                File.Delete(temporary);
        }
    }
}
