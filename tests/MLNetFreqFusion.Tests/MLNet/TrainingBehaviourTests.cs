using Microsoft.ML;
using MLNetFreqFusion;
using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Decoders;
using TorchSharp;

namespace MLNetFreqFusion.Tests.MLNet;

/// <summary>Cancellation, reproducibility and memory of Fit, on a few tiny epochs.</summary>
[TestClass]
public sealed class TrainingBehaviourTests
{
    static List<SemanticSegmentationProgress> Train(int seed, int rows, int epochs, Action<MLContext, SemanticSegmentationProgress>? onReport = null)
    {
        var ml = new MLContext(seed);
        var reports = new List<SemanticSegmentationProgress>();
        var options = DigitsSeg.TinyOptions(epochs, new SynchronousProgress(r => { reports.Add(r); onReport?.Invoke(ml, r); }));
        using var model = DigitsSeg.Fit(ml, options, rows);
        return reports;
    }

    [TestMethod]
    public void CancelExecutionStopsTrainingAtTheNextStep()
    {
        int steps = 0;
        var e = Assert.Throws<OperationCanceledException>(() => Train(1, 16, 3, (ml, r) =>
        {
            steps = r.Step;
            if (r.Step == 2) ml.CancelExecution();
        }));
        Assert.AreEqual(2, steps, "no step runs after the cancellation");
        Assert.IsNotNull(e.Message);
    }

    [TestMethod]
    public void TheSameSeedGivesTheSameLosses()
    {
        var a = Train(5, 8, 1).Select(r => r.Loss).ToArray();
        var b = Train(5, 8, 1).Select(r => r.Loss).ToArray();
        Assert.AreEqual(2, a.Length);
        for (int i = 0; i < a.Length; i++)
            Assert.AreEqual(a[i], b[i], 1e-5 * Math.Abs(a[i]), $"step {i + 1}");
        var c = Train(6, 8, 1).Select(r => r.Loss).ToArray();
        Assert.AreNotEqual(a[0], c[0], "another seed draws other weights and crops");
    }

    [TestMethod]
    public void LiveTensorsDoNotGrowAcrossEpochs()
    {
        // The count is process-wide and includes tensor objects nobody disposed that wait for the finalizer: those of
        // earlier tests, and a few dozen that building a network leaves (init functions' return values and the like,
        // 25 for this one). The trainer's own gen-0 collections (FinalizedScalars) would finalize them during some
        // epoch and lower its count, so they are flushed after the first step, and the epochs' counts are then taken
        // as they stand: a step that left tensors undisposed would change them.
        static void Flush()
        {
            for (int round = 0, unchanged = 0; round < 50 && unchanged < 3; round++)
            {
                long before = torch.Tensor.TotalCount;
                GC.Collect();
                GC.WaitForPendingFinalizers();
                unchanged = torch.Tensor.TotalCount == before ? unchanged + 1 : 0;
            }
        }
        Flush();
        var liveAtEpochEnd = new Dictionary<int, long>();
        Train(3, 8, 4, (_, r) =>
        {
            // The last step report of an epoch: everything of the step has been disposed by then, and the thread that
            // makes the batches has made its last one. Counted over all threads: batches are made on that thread and
            // disposed on this one.
            if (r.Step == 1) Flush();
            if (r.Step % 2 == 0) liveAtEpochEnd[r.Epoch] = torch.Tensor.TotalCount;
        });
        Assert.AreEqual(4, liveAtEpochEnd.Count);
        Assert.AreEqual(liveAtEpochEnd[2], liveAtEpochEnd[4], $"live tensors after epochs 2..4: {string.Join(", ", liveAtEpochEnd.Values)}");
        Assert.AreEqual(liveAtEpochEnd[3], liveAtEpochEnd[4]);
    }
}
