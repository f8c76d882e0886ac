using System.Text.RegularExpressions;

namespace MLNetFreqFusion.Tests.Docs;

/// <summary>
/// Every C# block in the docs quotes compiled code: a ```csharp block must follow a
/// <c>&lt;!-- snippet: path/to/File.cs#name --&gt;</c> line and equal (whitespace-normalised) the region between
/// <c>// &lt;snippet:name&gt;</c> and <c>// &lt;/snippet:name&gt;</c> in that file, which the build compiles.
/// </summary>
[TestClass]
public sealed class DocSnippetTests
{
    static readonly Regex CSharpBlock = new(@"^[ \t]*```csharp[ \t]*\r?\n(?<code>.*?)^[ \t]*```", RegexOptions.Multiline | RegexOptions.Singleline);
    static readonly Regex Annotation = new(@"<!--\s*snippet:\s*(?<path>[^#\s]+)#(?<name>[\w-]+)\s*-->\s*$");

    internal static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MLNetFreqFusion.sln")))
                return dir.FullName;
        throw new DirectoryNotFoundException($"No MLNetFreqFusion.sln above {AppContext.BaseDirectory}.");
    }

    internal static string Normalise(string code) => Regex.Replace(code, @"\s+", " ").Trim();

    /// <summary>The code between the markers of <paramref name="name"/>; throws when they are missing or repeated.</summary>
    internal static string Region(string source, string name, string file)
    {
        string start = $"// <snippet:{name}>", end = $"// </snippet:{name}>";
        int s = source.IndexOf(start, StringComparison.Ordinal);
        Assert.IsTrue(s >= 0, $"{file} has no '{start}' marker.");
        Assert.AreEqual(-1, source.IndexOf(start, s + 1, StringComparison.Ordinal), $"{file} has '{start}' twice.");
        int e = source.IndexOf(end, s, StringComparison.Ordinal);
        Assert.IsTrue(e > s, $"{file} has no '{end}' after '{start}'.");
        return source[(s + start.Length)..e];
    }

    /// <summary>(markdown file, line, snippet file, snippet name, block code) for every csharp block of docs/*.md and README.md.</summary>
    internal static IEnumerable<(string Doc, int Line, string? Path, string? Name, string Code)> Blocks(string root)
    {
        var docs = Directory.GetFiles(Path.Combine(root, "docs"), "*.md").Append(Path.Combine(root, "README.md")).Order();
        foreach (var doc in docs)
        {
            var text = File.ReadAllText(doc);
            foreach (Match m in CSharpBlock.Matches(text))
            {
                int line = text[..m.Index].Count(c => c == '\n') + 1;
                var before = text[..m.Index].TrimEnd('\r', '\n', ' ', '\t');
                var lastLine = before[(before.LastIndexOf('\n') + 1)..];
                var a = Annotation.Match(lastLine);
                yield return (Path.GetRelativePath(root, doc), line, a.Success ? a.Groups["path"].Value : null,
                    a.Success ? a.Groups["name"].Value : null, m.Groups["code"].Value);
            }
        }
    }

    [TestMethod]
    public void EveryCSharpBlockInTheDocsEqualsItsCompiledSnippet()
    {
        var root = RepositoryRoot();
        var blocks = Blocks(root).ToList();
        Assert.IsTrue(blocks.Count >= 15, $"only {blocks.Count} csharp blocks found in docs/*.md and README.md");
        var problems = new List<string>();
        foreach (var (doc, line, path, name, code) in blocks)
        {
            if (path is null || name is null)
            {
                problems.Add($"{doc}:{line}: csharp block without a '<!-- snippet: samples/...cs#name -->' line before it.");
                continue;
            }
            var file = Path.Combine(root, path);
            if (!File.Exists(file))
            {
                problems.Add($"{doc}:{line}: snippet file {path} does not exist.");
                continue;
            }
            string region;
            try
            {
                region = Region(File.ReadAllText(file), name, path);
            }
            catch (AssertFailedException e)
            {
                problems.Add($"{doc}:{line}: {e.Message}");
                continue;
            }
            if (Normalise(region) != Normalise(code))
                problems.Add($"{doc}:{line}: the block differs from {path}#{name}.\n--- doc:\n{code}\n--- source:\n{region}");
        }
        Assert.AreEqual(0, problems.Count, string.Join("\n\n", problems));
    }

    [TestMethod]
    public void TheCheckCatchesADifferenceAndAMissingMarker()
    {
        const string source = "a();\n// <snippet:x>\n  int y =  1;\n// </snippet:x>\n";
        Assert.AreEqual(Normalise("int y = 1;"), Normalise(Region(source, "x", "f.cs")));
        Assert.AreNotEqual(Normalise("int y = 2;"), Normalise(Region(source, "x", "f.cs")));
        Assert.Throws<AssertFailedException>(() => Region(source, "z", "f.cs"));
    }
}
