namespace MLNetFreqFusion.Backbones;

/// <summary>
/// Locates pretrained weights that ship in NuGet packages, so that nothing is downloaded at run time.
/// </summary>
public static class PretrainedModels
{
    /// <summary>Where Microsoft.ML.DnnImageFeaturizer.ResNet18 puts its ONNX file, relative to the build output.</summary>
    public const string ResNet18OnnxRelativePath = "DnnImageModels/ResNet18Onnx/ResNet18.onnx";

    /// <summary>
    /// Finds ResNet18.onnx of the NuGet package Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1, whose build props copy
    /// it to <c>DnnImageModels/ResNet18Onnx/ResNet18.onnx</c> in the output folder of every project that references it.
    /// Looks in <paramref name="searchDirectory"/> (default: <see cref="AppContext.BaseDirectory"/>) and returns the full
    /// path, or null when the application does not reference the package.
    /// </summary>
    /// <param name="searchDirectory">The folder to look in; the application's base directory when null.</param>
    public static string? FindResNet18Onnx(string? searchDirectory = null)
    {
        var path = Path.Combine(searchDirectory ?? AppContext.BaseDirectory, ResNet18OnnxRelativePath);
        return File.Exists(path) ? Path.GetFullPath(path) : null;
    }
}
