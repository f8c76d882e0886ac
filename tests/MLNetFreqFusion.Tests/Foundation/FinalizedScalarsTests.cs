using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetFreqFusion.Native;
using MLNetFreqFusion.Tests.MLNet;
using TorchSharp;

namespace MLNetFreqFusion.Tests.Foundation;

/// <summary>
/// TorchSharp frees the native <c>at::Scalar</c> behind every scalar operand only in a finalizer, and a network call
/// allocates too little managed memory for the runtime to collect on its own: the trainer and the predictor collect
/// once every <see cref="FinalizedScalars.PixelsPerCollection"/> pixels (docs/benchmarks.md §17).
/// </summary>
[TestClass]
public sealed class FinalizedScalarsTests
{
    const long Budget = FinalizedScalars.PixelsPerCollection;

    [TestMethod]
    public void CollectsOnceEveryBudgetOfPixelsAndStartsCountingAgain()
    {
        FinalizedScalars.AfterNetworkCall(Budget); // whatever earlier tests left counted, the count starts at 0 here
        long before = FinalizedScalars.Collections;
        for (int round = 0; round < 2; round++)
        {
            for (int call = 0; call < 3; call++)
                Assert.IsFalse(FinalizedScalars.AfterNetworkCall(Budget / 4), $"round {round}, call {call}: below the budget");
            Assert.IsTrue(FinalizedScalars.AfterNetworkCall(Budget / 4), $"round {round}: the budget reached");
        }
        Assert.IsTrue(FinalizedScalars.AfterNetworkCall(3 * Budget), "one call above the budget collects once");
        Assert.AreEqual(before + 3, FinalizedScalars.Collections);
    }

    [TestMethod]
    public void AScalarLeftToItsFinalizerIsCollectedByThePixelBudget()
    {
        var scalar = AbandonedScalar();
        FinalizedScalars.AfterNetworkCall(Budget);
        Assert.IsFalse(scalar.IsAlive, "the gen-0 collection found the abandoned TorchSharp Scalar");
    }

    /// <summary>A TorchSharp Scalar nothing refers to any more, as the implicit alpha of <c>a + b</c> is after the call.</summary>
    static WeakReference AbandonedScalar()
    {
        Scalar alpha = 1;
        return new WeakReference(alpha);
    }

    /// <summary>
    /// Through the public API: a training run of 16 images of 64² in batches of 4 (65,536 pixels) collects once, and each
    /// prediction of a 256² image (65,536 pixels, one network call) once.
    /// </summary>
    [TestMethod]
    public void TrainingAndPredictionCollectOncePerBudget()
    {
        var ml = new MLContext(seed: 5);
        FinalizedScalars.AfterNetworkCall(Budget);
        long beforeFit = FinalizedScalars.Collections;
        using var model = DigitsSeg.Fit(ml, DigitsSeg.TinyOptions(epochs: 1), rows: 16);
        Assert.AreEqual(beforeFit + 1, FinalizedScalars.Collections, "4 steps of 4 images of 64²");

        var segmenter = model.LastTransformer;
        var image = MLImage.CreateFromPixels(256, 256, MLPixelFormat.Bgra32, Enumerable.Repeat((byte)128, 256 * 256 * 4).ToArray());
        FinalizedScalars.AfterNetworkCall(Budget);
        long beforePredictions = FinalizedScalars.Collections;
        for (int i = 1; i <= 3; i++)
        {
            Assert.AreEqual(256, segmenter.Predict(image).Width);
            Assert.AreEqual(beforePredictions + i, FinalizedScalars.Collections, $"prediction {i}");
        }
    }
}
