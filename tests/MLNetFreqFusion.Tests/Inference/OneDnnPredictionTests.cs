using System.Runtime.InteropServices;
using Microsoft.ML;
using MLNetFreqFusion.Inference;
using MLNetFreqFusion.Native;
using MLNetFreqFusion.Networks;
using MLNetFreqFusion.Tests.MLNet;
using MLNetFreqFusion.Tests.Networks;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Inference;

/// <summary>
/// oneDNN's convolutions are on for predictions and off for training (docs/decisions.md): its forward is fast and
/// correct, its backward gives NaN gradients on AVX-512 hosts, and libtorch has one switch for the whole process.
/// </summary>
[TestClass]
public sealed class OneDnnPredictionTests
{
    static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    static bool SwitchReachable => OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64;

    /// <summary>A predictor on a tiny network whose forward records libtorch's oneDNN switch as it runs.</summary>
    sealed class RecordingPredictor : IDisposable
    {
        readonly SegmentationNetwork _network;

        public RecordingPredictor(SegmentationDecoder decoder, int seed, Action? duringForward = null)
        {
            manual_seed(seed);
            _network = NetworkTestUtilities.TinyResNetNetwork(decoder, classes: 3);
            _network.register_forward_hook((_, _, output) =>
            {
                Seen.Add(LibTorchRuntime.OneDnnEnabled);
                duringForward?.Invoke();
                return output;
            });
            Predictor = new SegmentationPredictor(_network, new InferenceSettings(), ["a", "b", "c"], CPU);
        }

        public SegmentationPredictor Predictor { get; }

        /// <summary>oneDNN's state during each forward so far.</summary>
        public List<bool?> Seen { get; } = [];

        public SegmentationPrediction[] Predict(Tensor images) => Predictor.Predict(images, withProbabilities: true, () => { });

        public void Dispose() => _network.Dispose();
    }

    [TestMethod]
    public void APredictionRunsWithOneDnnAndLeavesItOff()
    {
        using var scope = NewDisposeScope();
        using var recording = new RecordingPredictor(SegmentationDecoder.FreqFusion, seed: 1);
        recording.Predict(NetworkTestUtilities.RandomImages(1, 40, 40, seed: 2));
        if (!SwitchReachable)
        {
            Assert.IsNull(recording.Seen.Single(), "elsewhere the switch is not reached (oneDNN stays on), and says so");
            return;
        }
        Assert.AreEqual(true, recording.Seen.Single(), "the forward of a prediction runs on oneDNN");
        Assert.AreEqual(false, LibTorchRuntime.OneDnnEnabled, "off again after the prediction, for code that trains");
    }

    [TestMethod]
    public void APredictionWithAutogradOnIsRefused()
    {
        var e = Assert.Throws<InvalidOperationException>(() => LibTorchRuntime.BeginPrediction());
        StringAssert.Contains(e.Message, "no_grad");
    }

    /// <summary>
    /// Predictions on other threads, one started before the training run and still running through it, one started
    /// during it, must not switch oneDNN on for the training thread; once the run has ended a prediction uses it again.
    /// Every wait has a timeout, so a broken scheme fails instead of hanging.
    /// </summary>
    [TestMethod]
    public void TrainingKeepsOneDnnOffWhilePredictionsRunOnOtherThreads()
    {
        if (!SwitchReachable)
            Assert.Inconclusive("libtorch's oneDNN switch is reached on Linux x64 only.");
        using var earlyEntered = new ManualResetEventSlim();
        using var earlyRelease = new ManualResetEventSlim();
        using var duringEntered = new ManualResetEventSlim();
        using var duringRelease = new ManualResetEventSlim();
        using var early = new RecordingPredictor(SegmentationDecoder.FreqFusion, seed: 3, () =>
        {
            earlyEntered.Set();
            earlyRelease.Wait(Patience);
        });
        using var during = new RecordingPredictor(SegmentationDecoder.FreqFusionFpn, seed: 4, () =>
        {
            duringEntered.Set();
            duringRelease.Wait(Patience);
        });
        using var images = NetworkTestUtilities.RandomImages(1, 40, 40, seed: 5);

        var duringTraining = new List<(string When, bool? OneDnn)>();
        Task? duringTask = null;
        var ml = new MLContext(7);
        var validation = DigitsSeg.Load(ml, "val", 4);
        var options = DigitsSeg.TinyOptions(epochs: 1, new SynchronousProgress(report =>
        {
            duringTraining.Add(($"report of step {report.Step}{(report.ValidationMeanIoU is null ? "" : " after validation")}", LibTorchRuntime.OneDnnEnabled));
            if (report.Step != 1 || duringTask is not null)
                return;
            // A prediction that starts during the run: it must leave the switch off while the training thread looks.
            duringTask = Task.Run(() => { using var s = NewDisposeScope(); during.Predict(images); });
            Assert.IsTrue(duringEntered.Wait(Patience), "the second prediction reached its forward");
            duringTraining.Add(("while a prediction started during training runs", LibTorchRuntime.OneDnnEnabled));
            duringRelease.Set();
            Assert.IsTrue(duringTask.Wait(Patience));
        }));
        options.ValidationSet = DigitsSeg.Inputs(ml).Fit(validation).Transform(validation);

        // A prediction in flight (oneDNN on) when the training run starts.
        var earlyTask = Task.Run(() => { using var s = NewDisposeScope(); early.Predict(images); });
        try
        {
            Assert.IsTrue(earlyEntered.Wait(Patience), "the first prediction reached its forward");
            Assert.AreEqual(true, early.Seen.Single(), "a prediction alone runs on oneDNN");
            using var model = DigitsSeg.Fit(ml, options, rows: 8);
        }
        finally
        {
            earlyRelease.Set();
            duringRelease.Set();
        }
        Assert.IsTrue(earlyTask.Wait(Patience));

        Assert.AreEqual(false, during.Seen.Single(), "a prediction that starts during training runs on ATen's kernels");
        Assert.IsTrue(duringTraining.Any(s => s.When.Contains("after validation")), "the run validated");
        Assert.IsTrue(duringTraining.Count >= 4, $"seen: {string.Join("; ", duringTraining)}");
        foreach (var (when, oneDnn) in duringTraining)
            Assert.AreEqual(false, oneDnn, $"oneDNN at the {when}");

        using var scope = NewDisposeScope();
        early.Seen.Clear();
        earlyRelease.Set();
        early.Predict(images);
        Assert.AreEqual(true, early.Seen.Single(), "after the run a prediction uses oneDNN again");
    }

    /// <summary>The same logits, to float32 rounding, whichever backend convolves: ATen's (forced by a training scope) or oneDNN's.</summary>
    [TestMethod]
    [DataRow(SegmentationDecoder.FreqFusion)]
    [DataRow(SegmentationDecoder.FreqFusionFpn)]
    [DataRow(SegmentationDecoder.BilinearFpn)]
    public void PredictionsAreTheSameWithEitherBackend(SegmentationDecoder decoder)
    {
        using var scope = NewDisposeScope();
        using var recording = new RecordingPredictor(decoder, seed: 11);
        using var images = NetworkTestUtilities.RandomImages(2, 72, 88, seed: 12);
        SegmentationPrediction[] aten;
        using (LibTorchRuntime.BeginTraining())
            aten = recording.Predict(images);
        var oneDnn = recording.Predict(images);
        if (SwitchReachable)
            CollectionAssert.AreEqual(new bool?[] { false, true }, recording.Seen, "one prediction per backend");
        for (int i = 0; i < aten.Length; i++)
        {
            float[] a = aten[i].Probabilities!, b = oneDnn[i].Probabilities!;
            Assert.AreEqual(a.Length, b.Length);
            double worst = 0;
            for (int j = 0; j < a.Length; j++)
            {
                Assert.IsTrue(float.IsFinite(b[j]), $"image {i}: oneDNN gave {b[j]} at {j}");
                worst = Math.Max(worst, Math.Abs(a[j] - b[j]));
            }
            Assert.IsTrue(worst < 1e-4, $"image {i}: probabilities differ by up to {worst}");
        }
    }
}
