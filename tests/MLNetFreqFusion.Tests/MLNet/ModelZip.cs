using System.IO.Compression;

namespace MLNetFreqFusion.Tests.MLNet;

/// <summary>Damage done to a saved model.zip on purpose, as a bad disk, copy or download would.</summary>
internal static class ModelZip
{
    /// <summary>
    /// Flips one bit (0x04) at each of <paramref name="fractions"/> of the network weights' stream (the TSModel entry).
    /// .NET does not check a zip entry's CRC, so only the model's own checksum can tell.
    /// </summary>
    public static void FlipBitsInWeights(string path, params double[] fractions)
    {
        using var zip = ZipFile.Open(path, ZipArchiveMode.Update);
        var entry = zip.Entries.Single(e => e.FullName.EndsWith("TSModel", StringComparison.Ordinal));
        byte[] bytes;
        using (var read = entry.Open())
        using (var copy = new MemoryStream())
        {
            read.CopyTo(copy);
            bytes = copy.ToArray();
        }
        foreach (double fraction in fractions)
            bytes[(int)(bytes.Length * fraction)] ^= 0x04;
        var name = entry.FullName;
        entry.Delete();
        using var write = zip.CreateEntry(name).Open();
        write.Write(bytes);
    }
}
