using System.Diagnostics;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using MLNetFreqFusion.Tests.Docs;
using MLNetFreqFusion.Tests.MLNet;

namespace MLNetFreqFusion.Tests.Foundation;

/// <summary>
/// The library as users get it, set up exactly as docs/getting-started.md says: packed into a folder feed, restored
/// through the documented nuget.config into a new application with the documented references and nothing else of this
/// repository, built without restore warnings (the package's buildTransitive targets edit TorchSharp's native library
/// on old Linux), and run to train with the pretrained backbone, evaluate, save, load and predict.
/// </summary>
[TestClass]
public sealed class PackageConsumptionTests
{
    /// <summary>The placeholder docs/getting-started.md uses for the folder feed.</summary>
    const string FeedPlaceholder = "/path/to/feed";

    [TestMethod]
    [Timeout(600_000)]
    public void APackedLibraryTrainsAndPredictsInANewApplicationSetUpAsGettingStartedSays()
    {
        string repo = DocSnippetTests.RepositoryRoot();
        var steps = GettingStartedSteps(repo);
        string work = Directory.CreateTempSubdirectory("ffseg-package-").FullName;
        // A version of its own: restore extracts the package into the global NuGet folder, where a reused version
        // would hide the newly packed one. It is removed from there afterwards.
        string version = $"0.0.0-test.{DateTime.UtcNow:yyyyMMddHHmmss}.{Environment.ProcessId}";
        try
        {
            string feed = Path.Combine(work, "feed"), app = Path.Combine(work, "app");
            var pack = steps["pack"].Trim().Replace(FeedPlaceholder, feed).Split(' ', StringSplitOptions.RemoveEmptyEntries);
            Assert.AreEqual("dotnet", pack[0], "the pack step of getting-started.md is a dotnet command");
            Run(repo, "dotnet", [.. pack[1..], $"-p:PackageVersion={version}"]);
            Assert.IsTrue(File.Exists(Path.Combine(feed, $"MLNetFreqFusion.{version}.nupkg")), "dotnet pack wrote the package into the feed folder");

            Directory.CreateDirectory(app);
            File.WriteAllText(Path.Combine(app, "nuget.config"), steps["nuget.config"].Replace(FeedPlaceholder, feed));
            string references = steps["csproj"];
            StringAssert.Contains(references, "<PackageReference Include=\"MLNetFreqFusion\" Version=\"1.0.0\" />");
            // What `dotnet new console` writes, plus the references getting-started.md lists.
            File.WriteAllText(Path.Combine(app, "PackageConsumer.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup>
                    <OutputType>Exe</OutputType>
                    <TargetFramework>net10.0</TargetFramework>
                    <ImplicitUsings>enable</ImplicitUsings>
                    <Nullable>enable</Nullable>
                  </PropertyGroup>
                {references.Replace("Include=\"MLNetFreqFusion\" Version=\"1.0.0\"", $"Include=\"MLNetFreqFusion\" Version=\"{version}\"")}
                </Project>
                """);
            File.Copy(Path.Combine(repo, "tests", "MLNetFreqFusion.Tests", "Foundation", "PackageConsumer", "Program.cs"), Path.Combine(app, "Program.cs"));

            string build = Run(app, "dotnet", "build", "-c", "Release");
            var restoreWarnings = build.Split('\n').Where(l => l.Contains("warning NU")).Distinct().ToArray();
            Assert.AreEqual(0, restoreWarnings.Length, "the references of getting-started.md restore without warnings:\n" + string.Join('\n', restoreWarnings));
            if (OperatingSystem.IsLinux() && !SystemLibStdCxxHas("GLIBCXX_3.4.32"))
                StringAssert.Contains(build, "MLNetFreqFusion: patched", "the package's build targets edit libLibTorchSharp.so on this Linux");

            string output = Run(app, "dotnet", Path.Combine(app, "bin", "Release", "net10.0", "PackageConsumer.dll"), DigitsSeg.Root);
            StringAssert.Contains(output, "evaluated 11 classes with ResNet18ImageNet; predicted 84x64");
        }
        finally
        {
            Directory.Delete(work, recursive: true);
            var extracted = Path.Combine(NuGetPackagesFolder(), "mlnetfreqfusion", version);
            if (Directory.Exists(extracted))
                Directory.Delete(extracted, recursive: true);
        }
    }

    [TestMethod]
    public void GettingStartedNamesThePackageVersionsTheRepositoryBuildsWith()
    {
        string repo = DocSnippetTests.RepositoryRoot();
        var central = XDocument.Load(Path.Combine(repo, "Directory.Packages.props")).Descendants("PackageVersion")
            .ToDictionary(e => (string)e.Attribute("Include")!, e => (string)e.Attribute("Version")!);
        var documented = XElement.Parse(GettingStartedSteps(repo)["csproj"]).Elements("PackageReference")
            .Where(e => (string)e.Attribute("Include")! != "MLNetFreqFusion").ToArray();
        Assert.IsTrue(documented.Length >= 4, "getting-started.md lists the libtorch backends and the weights packages");
        foreach (var reference in documented)
        {
            string name = (string)reference.Attribute("Include")!;
            Assert.IsTrue(central.TryGetValue(name, out var version), $"getting-started.md references {name}, which Directory.Packages.props does not pin");
            Assert.AreEqual(version, (string)reference.Attribute("Version")!, $"the version of {name} in getting-started.md");
        }
    }

    /// <summary>The code blocks of docs/getting-started.md marked <c>&lt;!-- package-consumer: name --&gt;</c>, by name.</summary>
    static Dictionary<string, string> GettingStartedSteps(string repo)
    {
        string text = File.ReadAllText(Path.Combine(repo, "docs", "getting-started.md"));
        var steps = Regex.Matches(text, @"<!--\s*package-consumer:\s*(?<name>[\w.]+)\s*-->\s*\n```\w*\n(?<code>.*?)^```", RegexOptions.Multiline | RegexOptions.Singleline)
            .ToDictionary(m => m.Groups["name"].Value, m => m.Groups["code"].Value);
        CollectionAssert.AreEquivalent(new[] { "pack", "nuget.config", "csproj" }, steps.Keys.ToArray(), "the marked install steps of getting-started.md");
        return steps;
    }

    static string NuGetPackagesFolder() => Environment.GetEnvironmentVariable("NUGET_PACKAGES")
        ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    static bool SystemLibStdCxxHas(string version)
    {
        var library = new[] { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6" }.FirstOrDefault(File.Exists);
        return library is not null && File.ReadAllText(library, System.Text.Encoding.Latin1).Contains(version + "\0");
    }

    /// <summary>Runs a command to completion and returns its output; a non-zero exit fails the test with that output.</summary>
    static string Run(string directory, string command, params string[] arguments)
    {
        var start = new ProcessStartInfo(command) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        // The test host runs under `dotnet test`, whose MSBuild settings must not leak into the child builds.
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase) || k.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase)).ToArray())
            start.Environment.Remove(name);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        string all = stdout + stderr.Result;
        Assert.AreEqual(0, process.ExitCode, $"`{command} {string.Join(' ', arguments)}` in {directory} failed:\n{all}");
        return all;
    }
}
