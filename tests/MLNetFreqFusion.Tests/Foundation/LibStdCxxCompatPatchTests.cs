using System.Text;
using MLNetFreqFusion.Native;

namespace MLNetFreqFusion.Tests.Foundation;

[TestClass]
public sealed class LibStdCxxCompatPatchTests
{
    static string OriginalLibTorchSharp()
    {
        var nugetRoot = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var path = Path.Combine(nugetRoot, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        if (!File.Exists(path))
            Assert.Inconclusive($"The unpatched TorchSharp native library is not in the NuGet cache at {path}.");
        return path;
    }

    [TestMethod]
    public void PatchMarksTheVersionWeakAndRebindsTheSymbolAndIsIdempotent()
    {
        var original = File.ReadAllBytes(OriginalLibTorchSharp());
        var copy = (byte[])original.Clone();

        Assert.AreEqual(LibStdCxxPatchResult.Patched, LibStdCxxCompatPatch.Patch(copy, "copy"));

        var newName = Encoding.ASCII.GetBytes(LibStdCxxCompatPatch.NewSymbol + "\0");
        Assert.IsTrue(LibStdCxxCompatPatch.IndexOf(original, newName) >= 0);
        Assert.AreEqual(-1, LibStdCxxCompatPatch.IndexOf(copy, newName), "the GLIBCXX_3.4.32 symbol name must be gone");
        int changed = 0;
        for (int i = 0; i < copy.Length; i++) if (copy[i] != original[i]) changed++;
        // 29 name bytes at most, one flags byte, one or two version-index bytes: nothing else may move.
        Assert.IsTrue(changed is > 0 and <= 32, $"{changed} bytes changed");
        Assert.AreEqual(original.Length, copy.Length);

        var again = (byte[])copy.Clone();
        Assert.AreEqual(LibStdCxxPatchResult.AlreadyPatched, LibStdCxxCompatPatch.Patch(again, "copy"));
        CollectionAssert.AreEqual(copy, again);
    }

    [TestMethod]
    public void PatchApplyEditsAFileCopyOnDisk()
    {
        var path = Path.Combine(Path.GetTempPath(), $"libLibTorchSharp-{Guid.NewGuid():N}.so");
        File.Copy(OriginalLibTorchSharp(), path);
        try
        {
            Assert.AreEqual(LibStdCxxPatchResult.Patched, LibStdCxxCompatPatch.Apply(path));
            Assert.AreEqual(LibStdCxxPatchResult.AlreadyPatched, LibStdCxxCompatPatch.Apply(path));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void AFileOfAnotherShapeFailsWithAnExplanation()
    {
        var notElf = Encoding.ASCII.GetBytes(new string('x', 128));
        var e = Assert.ThrowsExactly<InvalidDataException>(() => LibStdCxxCompatPatch.Patch(notElf, "future.so"));
        StringAssert.Contains(e.Message, "future.so");
        StringAssert.Contains(e.Message, "docs/linux.md");

        // A real ELF file without the GLIBCXX_3.4.32 requirement (here: libstdc++ itself or the dotnet host).
        var other = File.ReadAllBytes("/proc/self/exe");
        var e2 = Assert.ThrowsExactly<InvalidDataException>(() => LibStdCxxCompatPatch.Patch(other, "dotnet"));
        StringAssert.Contains(e2.Message, "TorchSharp");
    }
}
