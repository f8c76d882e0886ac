using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Onnx;
using MLNetFreqFusion.Data;
using MLNetFreqFusion.Onnx;
using MLNetFreqFusion.Tests.MLNet;

namespace MLNetFreqFusion.Tests.Onnx;

/// <summary>
/// <see cref="SemanticSegmentationTransformer.ExportToOnnx(Stream)"/> on a model trained on the digits-seg slice:
/// the ONNX file in ONNX Runtime predicts what the transformer predicts; bad destinations fail clearly and leave no file.
/// </summary>
[TestClass]
public sealed class OnnxExportTransformerTests
{
    static MLContext _ml = null!;
    static TransformerChain<SemanticSegmentationTransformer> _model = null!;

    [ClassInitialize]
    public static void Train(TestContext _)
    {
        _ml = new MLContext(seed: 1);
        // Digit versus background with the digit class weighted up: a few steps give masks with both classes,
        // on the pretrained ResNet18ImageNet (its BGR mean-subtraction input convention included).
        var options = SemanticSegmentationEndToEndTests.SmallOptions(validation: null, epochs: 3);
        options.ScoreColumnName = "Score";
        _model = DigitsSeg.Fit(_ml, options, rows: 16, DigitsSeg.Binary);
    }

    [ClassCleanup]
    public static void DisposeModel() => _model?.Dispose();

    static SemanticSegmentationTransformer Segmenter => _model.LastTransformer;

    static byte[] ExportToBytes()
    {
        using var stream = new MemoryStream();
        Segmenter.ExportToOnnx(stream);
        return stream.ToArray();
    }

    [TestMethod]
    public void OnnxRuntimeGivesTheTransformersMasksAndProbabilitiesOnTheTestSlice()
    {
        var scored = _model.Transform(DigitsSeg.Load(_ml, "test"));
        // The scored view's images are disposed once read, so the test reads its own copies.
        var images = scored.GetColumn<string>("ImagePath").Select(p => MLImage.CreateFromFile(Path.Combine(DigitsSeg.Root, p))).ToArray();
        var masks = scored.GetColumn<SegmentationMask>("PredictedLabel").ToArray();
        var probabilities = scored.GetColumn<float[]>("Score").ToArray();
        Assert.IsTrue(images.Length >= 16, "the test slice has 16 images");

        using var session = OnnxTestSupport.Session(ExportToBytes());
        long pixels = 0, equal = 0;
        double worstProbability = 0;
        var predictedClasses = new HashSet<long>();
        for (int i = 0; i < images.Length; i++)
        {
            using var rgb = ImageTensorConverter.ToTensor(images[i]).unsqueeze(0);
            var (logits, shape, labels, _) = OnnxTestSupport.Run(session, OnnxTestSupport.ToArray(rgb), rgb.shape);
            int classes = (int)shape[1], count = images[i].Width * images[i].Height;
            Assert.AreEqual(Segmenter.NumberOfClasses, classes);
            for (int p = 0; p < count; p++)
            {
                pixels++;
                predictedClasses.Add(labels[p]);
                if (labels[p] == masks[i].Labels[p])
                    equal++;
                // Softmax over the classes of pixel p (logits are class-major).
                double max = double.NegativeInfinity, sum = 0;
                for (int c = 0; c < classes; c++)
                    max = Math.Max(max, logits[c * count + p]);
                for (int c = 0; c < classes; c++)
                    sum += Math.Exp(logits[c * count + p] - max);
                for (int c = 0; c < classes; c++)
                {
                    double probability = Math.Exp(logits[c * count + p] - max) / sum;
                    worstProbability = Math.Max(worstProbability, Math.Abs(probability - probabilities[i][c * count + p]));
                }
            }
        }
        double agreement = (double)equal / pixels;
        Console.WriteLine($"{images.Length} images, {pixels} pixels: masks agree on {agreement:P4}, max |Δp| = {worstProbability:E2}, classes predicted: {predictedClasses.Count}");
        Assert.IsTrue(predictedClasses.Count >= 2, "the trained model predicts more than one class, so agreement is not trivial");
        Assert.IsTrue(agreement >= 0.999, $"masks agree on {agreement:P4} of the pixels; at least 99.9 % expected");
        Assert.IsTrue(worstProbability <= 1e-3, $"probabilities differ by up to {worstProbability:E2}");
        foreach (var image in images)
            image.Dispose();
    }

    /// <summary>The ML.NET deployment of docs/deploy-onnx.md, run: ApplyOnnxModel predicts the transformer's masks.</summary>
    [TestMethod]
    public void MLNetApplyOnnxModelPipelinePredictsTheTransformersMasks()
    {
        var folder = Directory.CreateTempSubdirectory("onnx-mlnet-").FullName;
        try
        {
            string modelPath = Path.Combine(folder, "model.onnx"), imageFolder = DigitsSeg.Root;
            Segmenter.ExportToOnnx(modelPath);
            var ml = new MLContext(seed: 1);
            IDataView data = DigitsSeg.Load(ml, "test");
            // <snippet:onnx-mlnet>
            const int width = 84, height = 64;   // every image is resized to one size, so the input shape is fixed
            var pipeline = ml.Transforms.LoadImages("Image", imageFolder, inputColumnName: "ImagePath")
                .Append(ml.Transforms.ResizeImages("Image", width, height))
                .Append(ml.Transforms.ExtractPixels("image", "Image"))   // planar R, G, B as 0..255 floats: the graph's input
                .Append(ml.Transforms.ApplyOnnxModel(new OnnxOptions
                {
                    ModelFile = modelPath, InputColumns = new[] { "image" }, OutputColumns = new[] { "labels" },
                    ShapeDictionary = new Dictionary<string, int[]> { ["image"] = new[] { 1, 3, height, width } },
                }));
            IDataView scored = pipeline.Fit(data).Transform(data);
            long[][] labels = scored.GetColumn<long[]>("labels").ToArray();   // height × width class indices per row
            // </snippet:onnx-mlnet>
            var masks = _model.Transform(DigitsSeg.Load(_ml, "test")).GetColumn<SegmentationMask>("PredictedLabel").ToArray();
            Assert.AreEqual(masks.Length, labels.Length);
            long pixels = 0, equal = 0;
            for (int i = 0; i < masks.Length; i++)
            {
                Assert.AreEqual((masks[i].Width, masks[i].Height), (width, height), "the test images are 84×64, so the resize keeps them");
                for (int p = 0; p < labels[i].Length; p++, pixels++)
                    equal += labels[i][p] == masks[i].Labels[p] ? 1 : 0;
            }
            double agreement = (double)equal / pixels;
            Console.WriteLine($"ApplyOnnxModel masks agree with the transformer on {agreement:P4} of {pixels} pixels");
            Assert.IsTrue(agreement >= 0.999, $"masks agree on {agreement:P4}");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [TestMethod]
    public void ExportToAPathWritesALoadableFileAndReplacesAnOldOne()
    {
        var folder = Directory.CreateTempSubdirectory("onnx-export-").FullName;
        try
        {
            var path = Path.Combine(folder, "model.onnx");
            File.WriteAllText(path, "an older file");
            var model = _model;
            // <snippet:onnx-export>
            SemanticSegmentationTransformer segmenter = model.LastTransformer;   // model: the fitted (or loaded) pipeline
            segmenter.ExportToOnnx(path);                                      // or ExportToOnnx(stream)
            // </snippet:onnx-export>
            using var session = OnnxTestSupport.Session(File.ReadAllBytes(path));
            CollectionAssert.AreEqual(new[] { OnnxNetworkEmitter.InputName }, session.InputMetadata.Keys.ToArray());
            CollectionAssert.AreEquivalent(new[] { OnnxNetworkEmitter.LogitsName, OnnxNetworkEmitter.LabelsName }, session.OutputMetadata.Keys.ToArray());
            Assert.AreEqual(System.Text.Json.JsonSerializer.Serialize(Segmenter.ClassNames), session.ModelMetadata.CustomMetadataMap["class_names"]);
            CollectionAssert.AreEqual(new[] { "model.onnx" }, Directory.GetFiles(folder).Select(Path.GetFileName).ToArray());
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [TestMethod]
    public void ExportToAMissingFolderThrowsAndWritesNothing()
    {
        var folder = Path.Combine(Path.GetTempPath(), "onnx-missing-" + Guid.NewGuid().ToString("N"));
        var path = Path.Combine(folder, "model.onnx");
        var e = Assert.ThrowsExactly<DirectoryNotFoundException>(() => Segmenter.ExportToOnnx(path));
        StringAssert.Contains(e.Message, folder);
        Assert.IsFalse(Directory.Exists(folder));
    }

    [TestMethod]
    public void ExportOntoAFolderThrowsAndLeavesNoPartialFile()
    {
        // Root may write anywhere, so a path that names an existing folder stands in for an unwritable one.
        var folder = Directory.CreateTempSubdirectory("onnx-export-").FullName;
        try
        {
            var target = Directory.CreateDirectory(Path.Combine(folder, "model.onnx")).FullName;
            var e = Assert.ThrowsExactly<IOException>(() => Segmenter.ExportToOnnx(target));
            StringAssert.Contains(e.Message, target);
            Assert.AreEqual(0, Directory.GetFiles(folder).Length, "no temporary or partial file is left");
            Assert.AreEqual(0, Directory.GetFileSystemEntries(target).Length);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [TestMethod]
    public void ExportToAClosedOrReadOnlyStreamThrowsBeforeWriting()
    {
        var closed = new MemoryStream();
        closed.Dispose();
        var e = Assert.ThrowsExactly<ArgumentException>(() => Segmenter.ExportToOnnx(closed));
        StringAssert.Contains(e.Message, "closed or read-only");
        using var readOnly = new MemoryStream(new byte[16], writable: false);
        Assert.ThrowsExactly<ArgumentException>(() => Segmenter.ExportToOnnx(readOnly));
        Assert.ThrowsExactly<ArgumentNullException>(() => Segmenter.ExportToOnnx((Stream)null!));
    }
}
