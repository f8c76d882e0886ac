using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetFreqFusion.Inference;
using MLNetFreqFusion.Tests.MLNet;

namespace MLNetFreqFusion.Tests.Inference;

/// <summary>
/// A model's predictions run on one thread of its own whichever thread asks, so that glibc's per-thread arenas do not
/// each keep a prediction's memory (docs/benchmarks.md §18); the trainer's validation stays on the training thread.
/// </summary>
[TestClass]
public sealed class NetworkThreadTests
{
    [TestMethod]
    [Timeout(60_000)] // a call from the thread itself that waited for the thread would never return
    public void RunsEveryCallOnOneThreadThatIsNotTheCallers()
    {
        using var worker = new NetworkThread("test");
        var callers = new int[4];
        var runners = new int[4];
        Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            callers[i] = Environment.CurrentManagedThreadId;
            runners[i] = worker.Run(() => Environment.CurrentManagedThreadId);
        });
        Assert.AreEqual(1, runners.Distinct().Count(), $"runner threads: {string.Join(", ", runners)}");
        CollectionAssert.DoesNotContain(callers, runners[0]);
        Assert.AreEqual(runners[0], worker.Run(() => worker.Run(() => Environment.CurrentManagedThreadId)), "a call from the thread itself runs in place");
    }

    [TestMethod]
    public void RethrowsTheWorksExceptionToTheCaller()
    {
        using var worker = new NetworkThread("test");
        var thrown = Assert.Throws<OperationCanceledException>(() => worker.Run<int>(() => throw new OperationCanceledException("stop")));
        Assert.AreEqual("stop", thrown.Message);
        Assert.AreEqual(7, worker.Run(() => 7), "the thread goes on after a failed call");
    }

    [TestMethod]
    public void EndsOnDisposeAndRefusesWorkAfterwards()
    {
        var worker = new NetworkThread("test");
        Assert.IsFalse(worker.IsRunning, "started by the first call only");
        Assert.AreEqual(1, worker.Run(() => 1));
        Assert.IsTrue(worker.IsRunning);
        worker.Dispose();
        var refused = Assert.Throws<ObjectDisposedException>(() => worker.Run(() => 2));
        StringAssert.Contains(refused.Message, "disposed");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (worker.IsRunning && clock.Elapsed < TimeSpan.FromSeconds(10))
            Thread.Sleep(10);
        Assert.IsFalse(worker.IsRunning, "the thread ended");
    }

    [TestMethod]
    [Timeout(60_000)] // dropped work would leave its caller waiting for ever
    public void WorkHandedOverBeforeDisposeStillRuns()
    {
        var worker = new NetworkThread("test");
        using var started = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var first = Task.Run(() => worker.Run(() => { started.Set(); release.Wait(); return 1; }));
        started.Wait();
        var second = Task.Run(() => worker.Run(() => 2));
        while (worker.Waiting == 0)
            Thread.Sleep(1);
        worker.Dispose();
        release.Set();
        Assert.AreEqual(1, first.Result);
        Assert.AreEqual(2, second.Result);
    }

    [TestMethod]
    public void ADroppedPredictorIsCollectedAndEndsItsThread()
    {
        var (predictor, thread) = PredictOnceAndDrop();
        for (int i = 0; i < 3 && predictor.IsAlive; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        Assert.IsFalse(predictor.IsAlive, "nothing, the thread included, keeps a dropped predictor alive");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (thread.IsRunning && clock.Elapsed < TimeSpan.FromSeconds(10))
            Thread.Sleep(10);
        Assert.IsFalse(thread.IsRunning, "its finalizer ended the thread");
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    static (WeakReference Predictor, NetworkThread Thread) PredictOnceAndDrop()
    {
        using var network = MLNetFreqFusion.Networks.SegmentationNetwork.Create(
            new MLNetFreqFusion.Networks.SegmentationArchitecture { NumberOfClasses = 3, DecoderChannels = 16 }, loadPretrainedWeights: false);
        var predictor = new SegmentationPredictor(network, new InferenceSettings(), new[] { "a", "b", "c" }, TorchSharp.torch.CPU, ownThread: true);
        var image = MLImage.CreateFromPixels(32, 32, MLPixelFormat.Bgra32, new byte[32 * 32 * 4]);
        Assert.AreEqual(32, predictor.Predict(image, () => { }).Width);
        Assert.IsTrue(predictor.PredictionThread!.IsRunning);
        return (new WeakReference(predictor), predictor.PredictionThread!);
    }

    /// <summary>Through a trained model: predictions from several threads run on one other thread.</summary>
    [TestMethod]
    public void AModelPredictsOnItsOwnThread()
    {
        var ml = new MLContext(seed: 6);
        using var model = DigitsSeg.Fit(ml, DigitsSeg.TinyOptions(epochs: 1), rows: 4);
        var predictor = model.LastTransformer.Predictor;
        Assert.IsNotNull(predictor.PredictionThread, "a model's predictor has a thread of its own");
        var image = MLImage.CreateFromPixels(64, 48, MLPixelFormat.Bgra32, Enumerable.Repeat((byte)90, 64 * 48 * 4).ToArray());
        var runners = new int[3];
        Parallel.For(0, 3, new ParallelOptions { MaxDegreeOfParallelism = 3 }, i =>
            Assert.AreEqual(64, predictor.Predict(image, withProbabilities: false, () => runners[i] = Environment.CurrentManagedThreadId).Mask.Width));
        Assert.AreEqual(1, runners.Distinct().Count(), $"runner threads: {string.Join(", ", runners)}");
        Assert.AreNotEqual(Environment.CurrentManagedThreadId, runners[0]);
        // What a PredictionEngine and the public Predict go through: the same predictor, so the same thread.
        Assert.AreEqual(64, model.LastTransformer.Predict(image).Width);
    }
}
