using MLNetFreqFusion.Backbones;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Networks;

// PyTorch checkpoints in and out, and the pretrained backbone weights Create loads.
public sealed partial class SegmentationNetwork
{
    /// <summary>
    /// Loads a whole-network PyTorch checkpoint (.pt, .pth, .bin, .safetensors) saved by <see cref="SaveCheckpoint"/>
    /// or from an identically named PyTorch model. Strict by default: missing or unexpected keys and shape mismatches
    /// throw with a list of them; with <paramref name="strict"/> false only fitting tensors are copied.
    /// </summary>
    /// <param name="path">The checkpoint file.</param>
    /// <param name="strict">Require an exact match of keys and shapes.</param>
    public CheckpointLoadResult LoadCheckpoint(string path, bool strict = true)
    {
        var source = Checkpoints.Read(path);
        try
        {
            var keys = source.ToDictionary(p => StripPrefix(p.Key, "module."), p => p.Value);
            return Checkpoints.Apply(this, keys, strict, allowUnexpected: false, $"The checkpoint '{path}'");
        }
        finally
        {
            foreach (var tensor in source.Values)
                tensor.Dispose();
        }
    }

    /// <summary>
    /// Loads backbone weights from a PyTorch checkpoint: a torchvision ResNet (<c>conv1.weight</c>, <c>layer1.0.…</c>),
    /// a HuggingFace Segformer model (<c>encoder.…</c> or <c>segformer.encoder.…</c>) or a whole network of ours
    /// (<c>backbone.…</c>). Keys outside the backbone (classifier, <c>fc</c>, decode head) are ignored and listed in
    /// <see cref="CheckpointLoadResult.UnexpectedKeys"/>. Strict by default: missing backbone keys or shape mismatches
    /// throw; with <paramref name="strict"/> false only fitting tensors are copied.
    /// </summary>
    /// <param name="path">The checkpoint file.</param>
    /// <param name="strict">Require every backbone tensor to be present with the right shape.</param>
    public CheckpointLoadResult LoadBackboneCheckpoint(string path, bool strict = true)
    {
        var source = Checkpoints.Read(path);
        try
        {
            var keys = new Dictionary<string, Tensor>();
            foreach (var (key, value) in source)
            {
                var name = StripPrefix(key, "module.");
                name = StripPrefix(StripPrefix(name, "backbone."), "segformer.");
                keys.TryAdd(name, value);
            }
            return Checkpoints.Apply(backbone, keys, strict, allowUnexpected: true, $"The checkpoint '{path}' (backbone {Architecture.Backbone})");
        }
        finally
        {
            foreach (var tensor in source.Values)
                tensor.Dispose();
        }
    }

    /// <summary>
    /// Saves the whole network's state dict as a PyTorch checkpoint readable by <c>torch.load</c> (or by
    /// <c>safetensors</c> when the path ends in .safetensors), with the same keys as <c>state_dict()</c>.
    /// </summary>
    /// <param name="path">The file to write.</param>
    public void SaveCheckpoint(string path)
    {
        if (Path.GetExtension(path).Equals(".safetensors", StringComparison.OrdinalIgnoreCase))
            this.save_safetensors(path);
        else
            this.save_py(path);
    }

    private void LoadPretrainedBackbone()
    {
        var path = _pretrainedWeightsPath;
        if (Architecture.Backbone == SegmentationBackbone.ResNet18ImageNet)
        {
            path ??= PretrainedModels.FindResNet18Onnx() ?? throw new InvalidOperationException(
                "The ResNet18ImageNet backbone needs ResNet18.onnx from the NuGet package Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1, " +
                $"but '{PretrainedModels.ResNet18OnnxRelativePath}' is not in '{AppContext.BaseDirectory}'. Reference that package in the application " +
                "or set PretrainedWeightsPath to the file.");
            if (Path.GetExtension(path).Equals(".onnx", StringComparison.OrdinalIgnoreCase))
            {
                ResNet18OnnxWeights.Load((ResNet)backbone, path);
                return;
            }
        }
        if (path is null)
            return;
        if (Path.GetExtension(path).Equals(".onnx", StringComparison.OrdinalIgnoreCase))
            throw new NotSupportedException(
                $"'{path}': ONNX weights are read only for the ResNet18ImageNet backbone; give a PyTorch checkpoint for {Architecture.Backbone}.");
        LoadBackboneCheckpoint(path);
    }

    private static string StripPrefix(string key, string prefix) =>
        key.StartsWith(prefix, StringComparison.Ordinal) ? key[prefix.Length..] : key;
}
