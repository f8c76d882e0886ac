using System.Diagnostics;
using MLNetFreqFusion.Tests.Docs;
using MLNetFreqFusion.Tests.MLNet;

namespace MLNetFreqFusion.Tests.Foundation;

/// <summary>
/// The library as users get it: packed into a .nupkg, restored from a feed into a new application that references
/// nothing else of this repository, built (the package's buildTransitive targets edit TorchSharp's native library on
/// old Linux), and run to train, evaluate, save, load and predict.
/// </summary>
[TestClass]
public sealed class PackageConsumptionTests
{
    [TestMethod]
    [Timeout(600_000)]
    public void APackedLibraryTrainsAndPredictsInANewApplication()
    {
        string repo = DocSnippetTests.RepositoryRoot();
        string work = Directory.CreateTempSubdirectory("ffseg-package-").FullName;
        // A version of its own: restore extracts the package into the global NuGet folder, where a reused version
        // would hide the newly packed one. It is removed from there afterwards.
        string version = $"0.0.0-test.{DateTime.UtcNow:yyyyMMddHHmmss}.{Environment.ProcessId}";
        try
        {
            string feed = Path.Combine(work, "feed"), app = Path.Combine(work, "app");
            Run(repo, "dotnet", "pack", Path.Combine(repo, "src", "MLNetFreqFusion"), "-c", "Release", "-o", feed, $"-p:PackageVersion={version}");
            Directory.CreateDirectory(app);
            foreach (var file in new[] { "PackageConsumer.csproj", "Program.cs" })
                File.Copy(Path.Combine(repo, "tests", "MLNetFreqFusion.Tests", "Foundation", "PackageConsumer", file), Path.Combine(app, file));
            File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources>
                    <clear />
                    <add key="packed" value="{feed}" />
                    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
                  </packageSources>
                </configuration>
                """);

            string build = Run(app, "dotnet", "build", "-c", "Release", $"-p:MLNetFreqFusionVersion={version}");
            if (OperatingSystem.IsLinux() && !SystemLibStdCxxHas("GLIBCXX_3.4.32"))
                StringAssert.Contains(build, "MLNetFreqFusion: patched", "the package's build targets edit libLibTorchSharp.so on this Linux");

            string output = Run(app, "dotnet", Path.Combine(app, "bin", "Release", "net10.0", "PackageConsumer.dll"), DigitsSeg.Root);
            StringAssert.Contains(output, "evaluated 11 classes; predicted 84x64");
        }
        finally
        {
            Directory.Delete(work, recursive: true);
            var extracted = Path.Combine(NuGetPackagesFolder(), "mlnetfreqfusion", version);
            if (Directory.Exists(extracted))
                Directory.Delete(extracted, recursive: true);
        }
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
