using Microsoft.ML;
using MLNetFreqFusion.Backbones;

namespace MLNetFreqFusion.Tests.MLNet;

/// <summary>Data sets that cannot be learned from or measured: a clear message, never NaN or a wrong hint.</summary>
[TestClass]
public sealed class HostileDataTests : TempFolderTests
{
    /// <summary>One digits-seg image with a mask of the given labels, through LoadImages and LoadSegmentationMasks.</summary>
    (MLContext Ml, IDataView Data) OnePair(ushort fill, string subfolder = "")
    {
        string folder = Directory.CreateDirectory(Path.Combine(Folder, subfolder)).FullName;
        var labels = Enumerable.Repeat(fill, 84 * 64).ToArray();
        new SegmentationMask(84, 64, labels).Save(Path.Combine(folder, "mask.png"));
        File.Copy(Path.Combine(DigitsSeg.Root, "train", "images", "train_00000.png"), Path.Combine(folder, "image.png"));
        File.WriteAllLines(Path.Combine(folder, "pairs.csv"), ["ImagePath,MaskPath", "image.png,mask.png"]);
        var ml = new MLContext(1);
        var rows = ml.Data.LoadFromTextFile<DigitsSeg.Row>(Path.Combine(folder, "pairs.csv"), separatorChar: ',', hasHeader: true);
        var data = ml.Transforms.LoadImages("Image", folder, "ImagePath")
            .Append(ml.Transforms.LoadSegmentationMasks("Label", folder, "MaskPath"))
            .Append(ml.Transforms.LoadSegmentationMasks("PredictedLabel", folder, "MaskPath"))
            .Fit(rows).Transform(rows);
        return (ml, data);
    }

    [TestMethod]
    public void EvaluatingLabelsThatAreAllTheIgnoreIndexSaysSoInsteadOfReturningNaN()
    {
        var (ml, data) = OnePair(255);

        var e = Assert.ThrowsExactly<InvalidOperationException>(() => ml.SemanticSegmentation().Evaluate(data, numberOfClasses: 11));

        StringAssert.Contains(e.Message, "is 255, the ignore index");
        StringAssert.Contains(e.Message, "NaN");
    }

    [TestMethod]
    public void TrainingOnLabelsThatAreAllTheIgnoreIndexDoesNotBlameClass0()
    {
        var (ml, data) = OnePair(255);
        var options = Tiny();

        var e = Assert.ThrowsExactly<InvalidOperationException>(() => ml.SemanticSegmentation().Trainers.FreqFusion(options).Fit(data));

        StringAssert.Contains(e.Message, "Every pixel of the training data is 255, the ignore index");
        Assert.IsFalse(e.Message.Contains("class 0", StringComparison.Ordinal), e.Message);
    }

    [TestMethod]
    public void AValidationSetWhoseLabelsAreAllTheIgnoreIndexFailsBeforeTheFirstStep()
    {
        var (ml, data) = OnePair(1);
        var (_, allIgnored) = OnePair(255, "validation");
        var options = Tiny();
        options.ValidationSet = allIgnored;
        int steps = 0;
        options.Progress = new SynchronousProgress(_ => steps++);

        var e = Assert.ThrowsExactly<InvalidOperationException>(() => ml.SemanticSegmentation().Trainers.FreqFusion(options).Fit(data));

        StringAssert.Contains(e.Message, "Every pixel of the ValidationSet is 255, the ignore index: there is nothing to measure");
        Assert.AreEqual(0, steps, "no training step runs");
    }

    /// <summary>What docs/training.md says about cancellation: the context stays cancelled; a new one works.</summary>
    [TestMethod]
    public void AfterCancelExecutionTheContextStaysCancelledAndANewOneWorks()
    {
        var (ml, data) = OnePair(1);
        var options = Tiny();

        ml.CancelExecution();

        Assert.Throws<OperationCanceledException>(() => ml.SemanticSegmentation().Evaluate(data, numberOfClasses: 11));
        Assert.Throws<OperationCanceledException>(() => ml.SemanticSegmentation().Trainers.FreqFusion(options).Fit(data));
        var fresh = new MLContext(1);
        Assert.AreEqual(1.0, fresh.SemanticSegmentation().Evaluate(data, numberOfClasses: 11).PixelAccuracy);
    }

    static SemanticSegmentationTrainer.Options Tiny() => new()
    {
        NumberOfClasses = 3, Backbone = SegmentationBackbone.ResNet18, Decoder = SegmentationDecoder.Bilinear,
        DecoderChannels = 16, CropSize = 64, BatchSize = 1, MaxEpochs = 1, WarmupSteps = 0,
    };

    /// <summary>Values that used to pass and fail at Fit, fail with NullReferenceException, or blame the learning rate later.</summary>
    [TestMethod]
    [DataRow("LearningRate", DisplayName = "LearningRate = +∞")]
    [DataRow("PolyPower", DisplayName = "PolyPower = NaN")]
    [DataRow("PolyPower-negative", DisplayName = "PolyPower = -1")]
    [DataRow("ClassWeights", DisplayName = "ClassWeights negative")]
    [DataRow("ClassWeights-nan", DisplayName = "ClassWeights NaN")]
    [DataRow("ClassWeights-zero", DisplayName = "ClassWeights all zero")]
    [DataRow("Augmentation", DisplayName = "Augmentation.FlipProbability = 2")]
    [DataRow("Recipe", DisplayName = "Recipe outside the enum")]
    [DataRow("ClassNames", DisplayName = "ClassNames with a null")]
    [DataRow("Backbone", DisplayName = "Backbone outside the enum")]
    [DataRow("Decoder", DisplayName = "Decoder outside the enum")]
    [DataRow("DecoderChannels", DisplayName = "DecoderChannels = 0")]
    [DataRow("DecoderChannels-groups", DisplayName = "DecoderChannels = 30 with FreqFusion (offsets in 4 groups)")]
    [DataRow("DecoderInputStages", DisplayName = "DecoderInputStages out of range")]
    public void HostileOptionsAreRejectedWhenTheTrainerIsCreated(string option)
    {
        var o = Tiny();
        switch (option)
        {
            case "LearningRate": o.LearningRate = double.PositiveInfinity; break;
            case "PolyPower": o.PolyPower = double.NaN; break;
            case "PolyPower-negative": o.PolyPower = -1; break;
            case "ClassWeights": o.ClassWeights = [1, -1, 1]; break;
            case "ClassWeights-nan": o.ClassWeights = [1, float.NaN, 1]; break;
            case "ClassWeights-zero": o.ClassWeights = [0, 0, 0]; break;
            case "Augmentation": o.Augmentation = new AugmentationOptions { FlipProbability = 2 }; break;
            case "Recipe": o.Recipe = (TrainingRecipe)7; break;
            case "ClassNames": o.ClassNames = ["background", null!, "dog"]; break;
            case "Backbone": o.Backbone = (SegmentationBackbone)99; break;
            case "Decoder": o.Decoder = (SegmentationDecoder)99; break;
            case "DecoderChannels": o.DecoderChannels = 0; break;
            case "DecoderChannels-groups": o.Decoder = SegmentationDecoder.FreqFusion; o.DecoderChannels = 30; break;
            case "DecoderInputStages": o.DecoderInputStages = [0, 5]; break;
        }
        var ml = new MLContext(1);

        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.SemanticSegmentation().Trainers.FreqFusion(o));

        StringAssert.Contains(e.Message, option.Split('-')[0]);
    }

    /// <summary>
    /// A learning rate of 1e6 with the FreqFusion head: on the old code a SIGSEGV in libtorch's grid_sample backward, or
    /// with the bilinear head a model whose every probability is NaN. Now a clear error and no model.
    /// </summary>
    [TestMethod]
    [DataRow(SegmentationDecoder.FreqFusion)]
    [DataRow(SegmentationDecoder.Bilinear)]
    public void TrainingThatDivergesStopsWithAClearErrorAndReturnsNoModel(SegmentationDecoder decoder)
    {
        var ml = new MLContext(1);
        var data = DigitsSeg.Inputs(ml).Fit(DigitsSeg.Load(ml, "train", take: 4)).Transform(DigitsSeg.Load(ml, "train", take: 4));
        var o = Tiny();
        o.NumberOfClasses = 11;
        o.Decoder = decoder;
        o.LearningRate = 1e6;
        o.MaxEpochs = 3;
        o.BatchSize = 2;

        var e = Assert.ThrowsExactly<InvalidOperationException>(() => ml.SemanticSegmentation().Trainers.FreqFusion(o).Fit(data));

        StringAssert.Contains(e.Message, "Training diverged");
        StringAssert.Contains(e.Message, "LearningRate");
    }

    /// <summary>A PNG cut short: LoadImages hands it over with black rows; Fit names the row and file (Transform uses the same check).</summary>
    [TestMethod]
    public void ATruncatedImageFailsFitNamingTheFileAndRow()
    {
        var (ml, data) = OnePair(1);
        var image = Path.Combine(Folder, "image.png");
        var bytes = File.ReadAllBytes(image);
        File.WriteAllBytes(image, bytes[..(bytes.Length * 2 / 3)]);
        var o = Tiny();

        var fit = Assert.ThrowsExactly<InvalidOperationException>(() => ml.SemanticSegmentation().Trainers.FreqFusion(o).Fit(data));

        StringAssert.Contains(fit.Message, image);
        StringAssert.Contains(fit.Message, "Row 0");
        StringAssert.Contains(fit.Message, "truncated");
    }

    /// <summary>Three flipped bits in the weights inside model.zip: .NET does not check the zip CRC; the model's checksum does.</summary>
    [TestMethod]
    public void AModelWhoseWeightsWereDamagedFailsToLoadWithAClearMessage()
    {
        var (ml, data) = OnePair(1);
        var o = Tiny();
        using var model = ml.SemanticSegmentation().Trainers.FreqFusion(o).Fit(data);
        var path = Path.Combine(Folder, "model.zip");
        ml.Model.Save(model, null, path);
        Assert.IsNotNull(new MLContext(1).Model.Load(path, out _), "the intact model loads");
        ModelZip.FlipBitsInWeights(path, 1 / 3.0, 1 / 2.0, 2 / 3.0);

        var e = Assert.Throws<Exception>(() => new MLContext(1).Model.Load(path, out _));

        var message = e is System.Reflection.TargetInvocationException { InnerException: { } inner } ? inner.ToString() : e.ToString();
        StringAssert.Contains(message, "do not match the checksum");
    }
}
