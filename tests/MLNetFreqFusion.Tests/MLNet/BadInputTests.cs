using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetFreqFusion;
using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Decoders;

namespace MLNetFreqFusion.Tests.MLNet;

/// <summary>Bad input fails early with a message that says what, where and how to fix it.</summary>
[TestClass]
public sealed class BadInputTests
{
    static SemanticSegmentationTrainer.Options Tiny(int classes = 11) => new()
    {
        NumberOfClasses = classes, Backbone = SegmentationBackbone.ResNet18, Decoder = SegmentationDecoder.Bilinear,
        DecoderChannels = 16, CropSize = 64, BatchSize = 4, MaxEpochs = 1, WarmupSteps = 0,
    };

    static string TempDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "ffseg-bad-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    static void WriteCsv(string path, params (string Image, string Mask)[] rows)
        => File.WriteAllLines(path, new[] { "ImagePath,MaskPath" }.Concat(rows.Select(r => $"{r.Image},{r.Mask}")));

    /// <summary>A folder with one digits-seg image, the given mask saved next to it, and a one-row pairs.csv.</summary>
    static (string Dir, IDataView Data, MLContext Ml) OnePair(SegmentationMask mask, string maskName)
    {
        var dir = TempDir();
        mask.Save(Path.Combine(dir, maskName));
        File.Copy(Path.Combine(DigitsSeg.Root, "train", "images", "train_00000.png"), Path.Combine(dir, "image.png"));
        WriteCsv(Path.Combine(dir, "pairs.csv"), ("image.png", maskName));
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromTextFile<DigitsSeg.Row>(Path.Combine(dir, "pairs.csv"), separatorChar: ',', hasHeader: true);
        return (dir, data, ml);
    }

    static Exception FitFails(MLContext ml, IDataView data, SemanticSegmentationTrainer.Options options, string root)
    {
        var pipeline = ml.Transforms.LoadImages("Image", imageFolder: root, inputColumnName: "ImagePath")
            .Append(ml.Transforms.LoadSegmentationMasks("Label", imageFolder: root, inputColumnName: "MaskPath"))
            .Append(ml.SemanticSegmentation().Trainers.FreqFusion(options));
        return Assert.ThrowsExactly<InvalidOperationException>(() => pipeline.Fit(data));
    }

    [TestMethod]
    public void OptionsOutOfRangeAreRejectedWhenTheTrainerIsCreated()
    {
        var ml = new MLContext(1);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ml.SemanticSegmentation().Trainers.FreqFusion(Tiny(classes: 1)));
        StringAssert.Contains(e.Message, "NumberOfClasses");
        var withNames = Tiny(3);
        withNames.ClassNames = new[] { "background", "cat" };
        e = Assert.Throws<ArgumentOutOfRangeException>(() => ml.SemanticSegmentation().Trainers.FreqFusion(withNames));
        StringAssert.Contains(e.Message, "ClassNames has 2 names but NumberOfClasses is 3");
        var ignoreIsAClass = Tiny(3);
        ignoreIsAClass.IgnoreIndex = 2;
        e = Assert.Throws<ArgumentOutOfRangeException>(() => ml.SemanticSegmentation().Trainers.FreqFusion(ignoreIsAClass));
        StringAssert.Contains(e.Message, "IgnoreIndex 2 is a class index");
    }

    [TestMethod]
    public void MissingOrWronglyTypedColumnsNameTheColumnAndTheFix()
    {
        var ml = new MLContext(1);
        var data = DigitsSeg.Load(ml, "train", 4);
        var images = ml.Transforms.LoadImages("Image", DigitsSeg.Root, "ImagePath").Fit(data).Transform(data);
        var trainer = ml.SemanticSegmentation().Trainers.FreqFusion(Tiny());

        var missing = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainer.Fit(images));
        StringAssert.Contains(missing.Message, "Label");
        StringAssert.Contains(missing.Message, "LoadSegmentationMasks");

        // Masks loaded as images: the classic mistake.
        var masksAsImages = ml.Transforms.LoadImages("Label", DigitsSeg.Root, "MaskPath").Fit(images).Transform(images);
        var wrongType = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainer.Fit(masksAsImages));
        StringAssert.Contains(wrongType.Message, "LoadSegmentationMasks, not LoadImages");

        var masksOnly = ml.Transforms.LoadSegmentationMasks("Label", DigitsSeg.Root, "MaskPath").Fit(data).Transform(data);
        var noImage = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainer.Fit(masksOnly));
        StringAssert.Contains(noImage.Message, "LoadImages");
    }

    [TestMethod]
    public void AnImageAndMaskOfDifferentSizesNameTheRowFilesAndSizes()
    {
        var (dir, data, ml) = OnePair(new SegmentationMask(10, 12, new ushort[120]), "small.png");
        try
        {
            var e = FitFails(ml, data, Tiny(), dir);
            StringAssert.Contains(e.Message, "Row 0");
            StringAssert.Contains(e.Message, "small.png");
            StringAssert.Contains(e.Message, "10×12");
            StringAssert.Contains(e.Message, "84×64");
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void LabelValuesOutsideTheClassesNameTheFileAndTheValue()
    {
        var labels = new ushort[84 * 64];
        labels[5] = 12;
        var (dir, data, ml) = OnePair(new SegmentationMask(84, 64, labels), "bad.png");
        try
        {
            var e = FitFails(ml, data, Tiny(), dir);
            StringAssert.Contains(e.Message, "bad.png");
            StringAssert.Contains(e.Message, "label value 12");
            StringAssert.Contains(e.Message, "NumberOfClasses to at least 13");
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void BinaryMasksSavedAs0And255ExplainTheIgnoreIndexAndTheValueMap()
    {
        var labels = new ushort[84 * 64];
        for (int i = 0; i < 200; i++) labels[i] = 255;
        var (dir, data, ml) = OnePair(new SegmentationMask(84, 64, labels), "binary.png");
        try
        {
            var e = FitFails(ml, data, Tiny(classes: 2), dir);
            StringAssert.Contains(e.Message, "255, which is the ignore index");
            StringAssert.Contains(e.Message, "ValueMap");

            // And with the documented fix it trains.
            var fixedPipeline = ml.Transforms.LoadImages("Image", dir, "ImagePath")
                .Append(ml.Transforms.LoadSegmentationMasks("Label", dir, "MaskPath",
                    new MaskDecodeOptions { ValueMap = new Dictionary<ushort, ushort> { [255] = 1 } }))
                .Append(ml.SemanticSegmentation().Trainers.FreqFusion(Tiny(classes: 2)));
            using var model = (IDisposable)fixedPipeline.Fit(data);
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void EmptyTrainingDataSaysSo()
    {
        var ml = new MLContext(1);
        var empty = ml.Data.SkipRows(DigitsSeg.Load(ml, "train"), 1_000_000);
        var e = FitFails(ml, empty, Tiny(), DigitsSeg.Root);
        StringAssert.Contains(e.Message, "has no rows");
    }

    [TestMethod]
    public void AnUnreadableMaskNamesThePath()
    {
        var dir = TempDir();
        try
        {
            File.Copy(Path.Combine(DigitsSeg.Root, "train", "images", "train_00000.png"), Path.Combine(dir, "image.png"));
            File.WriteAllText(Path.Combine(dir, "broken.png"), "not a png");
            WriteCsv(Path.Combine(dir, "pairs.csv"), ("image.png", "broken.png"), ("image.png", "absent.png"));
            var ml = new MLContext(1);
            var data = ml.Data.LoadFromTextFile<DigitsSeg.Row>(Path.Combine(dir, "pairs.csv"), separatorChar: ',', hasHeader: true);
            var masks = ml.Transforms.LoadSegmentationMasks("Label", dir, "MaskPath").Fit(data).Transform(data);
            var all = Assert.Throws<Exception>(() => masks.GetColumn<SegmentationMask>("Label").ToArray());
            StringAssert.Contains(all.Message, "broken.png");
            var second = ml.Data.SkipRows(masks, 1);
            var absent = Assert.Throws<Exception>(() => second.GetColumn<SegmentationMask>("Label").ToArray());
            StringAssert.Contains(absent.Message, "absent.png");
        }
        finally { Directory.Delete(dir, true); }
    }
}
