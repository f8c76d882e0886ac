using System.Text.RegularExpressions;
using Microsoft.ML;

namespace MLNetFreqFusion.Tests.Docs;

/// <summary>
/// <c>mlContext.Model.Save(model, schema, path)</c> truncates <c>path</c> before it writes, so a save that fails halfway
/// (a full disk, an exception inside the model's SaveModel) destroys the model that was there. The samples and the
/// docs save to a temporary file and move it into place; this keeps them doing so.
/// </summary>
[TestClass]
public sealed class ModelSaveTests : TempFolderTests
{
    static readonly Regex ModelSave = new(@"\.Model\.Save\(", RegexOptions.Compiled);

    [TestMethod]
    public void EveryModelSaveInTheSamplesAndDocsWritesATemporaryFileAndMovesIt()
    {
        var root = DocSnippetTests.RepositoryRoot();
        var sources = Directory.GetFiles(Path.Combine(root, "samples"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}"))
            .Select(f => (Where: Path.GetRelativePath(root, f), Code: File.ReadAllText(f)))
            .Concat(DocSnippetTests.Blocks(root).Select(b => (Where: $"{b.Doc}:{b.Line}", b.Code)))
            .ToArray();
        int saves = 0;
        foreach (var (where, code) in sources)
        {
            foreach (Match m in ModelSave.Matches(code))
            {
                int lineStart = code.LastIndexOf('\n', m.Index) + 1;
                if (code[lineStart..m.Index].TrimStart().StartsWith("//", StringComparison.Ordinal))
                    continue;
                saves++;
                var following = string.Join('\n', code[m.Index..].Split('\n').Take(3));
                StringAssert.Contains(following, "File.Move(", $"{where}: Model.Save writes its final path directly; save to a temporary file and File.Move it into place.");
            }
        }
        Assert.IsGreaterThan(0, saves, "the sample saves a model; the scan must find it");
    }

    /// <summary>Why: a save that fails leaves ML.NET's target truncated; the pattern leaves the old model intact.</summary>
    [TestMethod]
    public void AFailedSaveThroughATemporaryFileLeavesTheOldModelIntact()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(new[] { new Row { X = 1 } });
        var good = ml.Transforms.CopyColumns("Y", "X").Fit(data);
        var path = Path.Combine(Folder, "model.zip");
        ml.Model.Save(good, data.Schema, path);
        long goodLength = new FileInfo(path).Length;
        // A custom mapping without a contract name cannot be saved: it fails inside Save, as a full disk would.
        var failing = ml.Transforms.CustomMapping<Row, Row>((input, output) => output.X = input.X, contractName: null).Fit(data);

        Assert.Throws<Exception>(() => ml.Model.Save(failing, data.Schema, path));
        Assert.AreNotEqual(goodLength, new FileInfo(path).Length, "ML.NET's Save truncated the good model (the reason for the pattern)");

        ml.Model.Save(good, data.Schema, path);
        var before = File.ReadAllBytes(path);
        string temporary = path + ".partial";
        Assert.Throws<Exception>(() =>
        {
            try
            {
                ml.Model.Save(failing, data.Schema, temporary);
                File.Move(temporary, path, overwrite: true);
            }
            finally
            {
                File.Delete(temporary);
            }
        });
        CollectionAssert.AreEqual(before, File.ReadAllBytes(path));
        Assert.IsFalse(File.Exists(temporary));
    }

    sealed class Row
    {
        public float X { get; set; }
    }
}
