using Microsoft.ML;

namespace MLNetFreqFusion.Tests.Data;

[TestClass]
public sealed class DatasetLayoutTests : TempFolderTests
{
    readonly MLContext _ml = new(seed: 1);

    string Touch(params string[] parts)
    {
        var path = Path.Combine([Folder, .. parts]);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, [1]);
        return path;
    }

    List<(string Image, string Mask)> Rows(IDataView view)
    {
        CollectionAssert.AreEqual(new[] { "ImagePath", "MaskPath" }, view.Schema.Select(c => c.Name).ToArray());
        return _ml.Data.CreateEnumerable<ImageMaskPair>(view, reuseRowObject: false).Select(p => (p.ImagePath, p.MaskPath)).ToList();
    }

    [TestMethod]
    public void TextFileResolvesPathsAgainstItsFolder()
    {
        // digits-seg's form: a header and paths relative to the CSV.
        var sample = MaskDecodingTests.SamplePath();
        var csv = Path.Combine(Folder, "pairs.csv");
        File.WriteAllLines(csv, ["ImagePath,MaskPath", .. Enumerable.Range(0, 3).Select(i =>
            $"{Path.GetRelativePath(Folder, Path.Combine(sample, "images", $"test_0000{i}.png"))},{Path.Combine(sample, "masks_palette", $"test_0000{i}.png")}")]);

        var rows = Rows(_ml.Data.LoadSegmentationPairsFromTextFile(csv));

        Assert.AreEqual(3, rows.Count);
        Assert.AreEqual(Path.Combine(sample, "images", "test_00002.png"), rows[2].Image);
        Assert.AreEqual(Path.Combine(sample, "masks_palette", "test_00002.png"), rows[2].Mask);
        Assert.IsTrue(rows.All(r => Path.IsPathFullyQualified(r.Image) && File.Exists(r.Image) && File.Exists(r.Mask)));
    }

    [TestMethod]
    public void TextFileWithTabsAndReorderedHeaderUsesTheNamedColumns()
    {
        Touch("img", "a.jpg");
        Touch("ann", "a.png");
        var tsv = Path.Combine(Folder, "list.tsv");
        File.WriteAllLines(tsv, ["MaskPath\tImagePath", "ann/a.png\timg/a.jpg"]);

        var rows = Rows(_ml.Data.LoadSegmentationPairsFromTextFile(tsv, '\t'));

        Assert.AreEqual((Path.Combine(Folder, "img", "a.jpg"), Path.Combine(Folder, "ann", "a.png")), rows.Single());
    }

    [TestMethod]
    public void TextFileListsMissingFilesWithTheirLines()
    {
        Touch("i", "a.png");
        Touch("m", "a.png");
        var csv = Path.Combine(Folder, "pairs.csv");
        File.WriteAllLines(csv, ["i/a.png,m/a.png", "i/b.png,m/a.png", "i/a.png,m/c.png"]);

        var e = Assert.ThrowsExactly<FileNotFoundException>(() => _ml.Data.LoadSegmentationPairsFromTextFile(csv, hasHeader: false));

        StringAssert.Contains(e.Message, "line 2: image " + Path.Combine(Folder, "i", "b.png"));
        StringAssert.Contains(e.Message, "line 3: mask " + Path.Combine(Folder, "m", "c.png"));
        StringAssert.Contains(e.Message, "2 missing");
    }

    [TestMethod]
    public void FoldersPairAnyExtensionsRecursively()
    {
        Touch("images", "b.jpg");
        Touch("images", "a.jpeg");
        Touch("images", "city", "c.png");
        Touch("images", "notes.txt");
        Touch("masks", "a.png");
        Touch("masks", "b.png");
        Touch("masks", "city", "c.bmp");

        var rows = Rows(_ml.Data.LoadSegmentationPairsFromFolders(Path.Combine(Folder, "images"), Path.Combine(Folder, "masks")));

        CollectionAssert.AreEqual(new[]
        {
            (Path.Combine(Folder, "images", "a.jpeg"), Path.Combine(Folder, "masks", "a.png")),
            (Path.Combine(Folder, "images", "b.jpg"), Path.Combine(Folder, "masks", "b.png")),
            (Path.Combine(Folder, "images", "city", "c.png"), Path.Combine(Folder, "masks", "city", "c.bmp")),
        }, rows);
    }

    [TestMethod]
    public void FoldersWithSuffixesPairCityscapesNames()
    {
        Touch("leftImg8bit", "aachen", "aachen_000000_000019_leftImg8bit.png");
        Touch("gtFine", "aachen", "aachen_000000_000019_gtFine_labelIds.png");
        Touch("gtFine", "aachen", "aachen_000000_000019_gtFine_color.png");

        var rows = Rows(_ml.Data.LoadSegmentationPairsFromFolders(Path.Combine(Folder, "leftImg8bit"), Path.Combine(Folder, "gtFine"), "_leftImg8bit", "_gtFine_labelIds"));

        Assert.AreEqual(Path.Combine(Folder, "gtFine", "aachen", "aachen_000000_000019_gtFine_labelIds.png"), rows.Single().Mask);
    }

    [TestMethod]
    public void MissingPartnersAreListedByName()
    {
        Touch("images", "a.jpg");
        Touch("images", "lonely.jpg");
        Touch("masks", "a.png");
        Touch("masks", "orphan.png");

        var e = Assert.ThrowsExactly<InvalidDataException>(() =>
            _ml.Data.LoadSegmentationPairsFromFolders(Path.Combine(Folder, "images"), Path.Combine(Folder, "masks")));

        StringAssert.Contains(e.Message, "1 image(s) without a mask");
        StringAssert.Contains(e.Message, Path.Combine(Folder, "images", "lonely.jpg"));
        StringAssert.Contains(e.Message, "1 mask(s) without an image");
        StringAssert.Contains(e.Message, Path.Combine(Folder, "masks", "orphan.png"));
    }

    [TestMethod]
    public void TwoFilesWithOneNameAreAnError()
    {
        Touch("images", "a.jpg");
        Touch("images", "a.png");
        Touch("masks", "a.png");

        var e = Assert.ThrowsExactly<InvalidDataException>(() =>
            _ml.Data.LoadSegmentationPairsFromFolders(Path.Combine(Folder, "images"), Path.Combine(Folder, "masks")));
        StringAssert.Contains(e.Message, "'a'");
    }

    [TestMethod]
    public void PascalVocSplitReadsTheIdList()
    {
        var voc = Path.Combine(Folder, "VOCdevkit", "VOC2012");
        foreach (var id in new[] { "2007_000032", "2007_000039", "2007_000063" })
        {
            Touch("VOCdevkit", "VOC2012", "JPEGImages", id + ".jpg");
            Touch("VOCdevkit", "VOC2012", "SegmentationClass", id + ".png");
        }
        Touch("VOCdevkit", "VOC2012", "JPEGImages", "2008_000001.jpg"); // detection-only image, not in the split
        Directory.CreateDirectory(Path.Combine(voc, "ImageSets", "Segmentation"));
        File.WriteAllLines(Path.Combine(voc, "ImageSets", "Segmentation", "val.txt"), ["2007_000039", "2007_000063", ""]);

        var rows = Rows(_ml.Data.LoadSegmentationPairsFromPascalVoc(voc, "val"));

        CollectionAssert.AreEqual(new[]
        {
            (Path.Combine(voc, "JPEGImages", "2007_000039.jpg"), Path.Combine(voc, "SegmentationClass", "2007_000039.png")),
            (Path.Combine(voc, "JPEGImages", "2007_000063.jpg"), Path.Combine(voc, "SegmentationClass", "2007_000063.png")),
        }, rows);
        var devkit = Assert.ThrowsExactly<FileNotFoundException>(() => _ml.Data.LoadSegmentationPairsFromPascalVoc(Path.Combine(Folder, "VOCdevkit"), "val"));
        StringAssert.Contains(devkit.Message, voc);
    }

    [TestMethod]
    public void PascalVocReportsIdsWithoutMasks()
    {
        var voc = Path.Combine(Folder, "VOC2012");
        Touch("VOC2012", "JPEGImages", "x.jpg");
        Directory.CreateDirectory(Path.Combine(voc, "ImageSets", "Segmentation"));
        File.WriteAllLines(Path.Combine(voc, "ImageSets", "Segmentation", "train.txt"), ["x"]);

        var e = Assert.ThrowsExactly<FileNotFoundException>(() => _ml.Data.LoadSegmentationPairsFromPascalVoc(voc));
        StringAssert.Contains(e.Message, Path.Combine(voc, "SegmentationClass", "x.png"));
    }

    [TestMethod]
    public void Ade20kPairsImagesWithAnnotations()
    {
        var ade = Path.Combine(Folder, "ADEChallengeData2016");
        Touch("ADEChallengeData2016", "images", "training", "ADE_train_00000001.jpg");
        Touch("ADEChallengeData2016", "annotations", "training", "ADE_train_00000001.png");
        Touch("ADEChallengeData2016", "images", "validation", "ADE_val_00000001.jpg");
        Touch("ADEChallengeData2016", "annotations", "validation", "ADE_val_00000001.png");

        var train = Rows(_ml.Data.LoadSegmentationPairsFromAde20k(ade));
        var val = Rows(_ml.Data.LoadSegmentationPairsFromAde20k(ade, "val"));

        Assert.AreEqual((Path.Combine(ade, "images", "training", "ADE_train_00000001.jpg"), Path.Combine(ade, "annotations", "training", "ADE_train_00000001.png")), train.Single());
        Assert.AreEqual(Path.Combine(ade, "annotations", "validation", "ADE_val_00000001.png"), val.Single().Mask);
        Assert.ThrowsExactly<ArgumentException>(() => _ml.Data.LoadSegmentationPairsFromAde20k(ade, "test"));
    }
}
