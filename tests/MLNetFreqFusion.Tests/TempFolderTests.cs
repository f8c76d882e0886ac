namespace MLNetFreqFusion.Tests;

/// <summary>Tests that write files: each test gets a fresh folder, deleted afterwards, so no test sees another's files.</summary>
public abstract class TempFolderTests
{
    protected string Folder { get; private set; } = "";

    [TestInitialize]
    public void CreateFolder() => Folder = Directory.CreateTempSubdirectory($"ff-{GetType().Name}-").FullName;

    [TestCleanup]
    public void DeleteFolder() => Directory.Delete(Folder, recursive: true);
}
