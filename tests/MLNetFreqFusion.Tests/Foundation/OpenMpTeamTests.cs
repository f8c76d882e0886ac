using System.Runtime.InteropServices;
using MLNetFreqFusion.Native;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Foundation;

/// <summary>Loops of ours on libtorch's OpenMP threads (<see cref="OpenMpTeam"/>), which the CARAFE loops run on.</summary>
[TestClass]
public sealed class OpenMpTeamTests
{
    [TestMethod]
    public void EveryIndexRunsOnceOnLibTorchsThreads()
    {
        using var _ = ones(1);
        if (OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64)
            StringAssert.Contains(Path.GetFileName(OpenMpTeam.Library) ?? "none", "libgomp", "libtorch on Linux maps its own libgomp");
        var runs = new int[1000];
        var threads = new System.Collections.Concurrent.ConcurrentDictionary<int, bool>();
        OpenMpTeam.For(runs.Length, 2, i =>
        {
            Interlocked.Increment(ref runs[i]);
            threads[Environment.CurrentManagedThreadId] = true;
            Thread.SpinWait(2000);
        });
        CollectionAssert.AreEqual(Enumerable.Repeat(1, runs.Length).ToArray(), runs, "each index exactly once");
        Assert.IsTrue(threads.Count is >= 1 and <= 2, $"at most the two threads asked for; saw {threads.Count}");
    }

    [TestMethod]
    public void AnExceptionInTheLoopReachesTheCaller()
    {
        using var _ = ones(1);
        var error = Assert.ThrowsExactly<InvalidOperationException>(() =>
            OpenMpTeam.For(64, 2, i => { if (i == 17) throw new InvalidOperationException("index 17"); }));
        Assert.AreEqual("index 17", error.Message);
        // The team is usable afterwards.
        int sum = 0;
        OpenMpTeam.For(10, 2, i => Interlocked.Add(ref sum, i));
        Assert.AreEqual(45, sum);
    }
}
