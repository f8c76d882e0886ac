using System.Collections;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Networks;

/// <summary>What loading a PyTorch checkpoint did: which tensors were copied and which did not fit.</summary>
public sealed class CheckpointLoadResult
{
    internal CheckpointLoadResult(IReadOnlyList<string> loaded, IReadOnlyList<string> missing, IReadOnlyList<string> unexpected, IReadOnlyList<string> shapeMismatches)
    {
        LoadedKeys = loaded;
        MissingKeys = missing;
        UnexpectedKeys = unexpected;
        ShapeMismatches = shapeMismatches;
    }

    /// <summary>Keys (network names) whose tensors were copied from the checkpoint.</summary>
    public IReadOnlyList<string> LoadedKeys { get; }

    /// <summary>Keys of the network that the checkpoint does not have; they keep their previous values.</summary>
    public IReadOnlyList<string> MissingKeys { get; }

    /// <summary>Keys of the checkpoint that the network does not have; they were ignored.</summary>
    public IReadOnlyList<string> UnexpectedKeys { get; }

    /// <summary>"key: checkpoint [shape] vs network [shape]" for tensors present in both with different shapes; not copied.</summary>
    public IReadOnlyList<string> ShapeMismatches { get; }
}

/// <summary>Reads PyTorch state dicts through TorchSharp.PyBridge and copies them into modules by key.</summary>
internal static class Checkpoints
{
    private static readonly string[] SupportedExtensions = [".pt", ".pth", ".bin", ".ckpt", ".safetensors"];

    // Keys that mean "this checkpoint wraps its state dict" (mmseg/mmcv, timm, lightning).
    private static readonly string[] WrapperKeys = ["state_dict", "model", "module", "model_state_dict"];

    /// <summary>Reads a state dict from .safetensors or a torch.save pickle (.pt, .pth, .bin, .ckpt).</summary>
    public static Dictionary<string, Tensor> Read(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"The checkpoint '{path}' does not exist.", path);
        var extension = Path.GetExtension(path).ToLowerInvariant();
        if (!SupportedExtensions.Contains(extension))
            throw new NotSupportedException(
                $"'{path}' is not a PyTorch checkpoint this library reads: use .safetensors or a torch.save file (.pt, .pth, .bin, .ckpt).");
        if (extension == ".safetensors")
            return Safetensors.LoadStateDict(path);

        Hashtable table;
        try
        {
            table = PyTorchUnpickler.UnpickleStateDict(path);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"'{path}' could not be read as a torch.save state dict: {e.Message}", e);
        }
        return Flatten(table, path);
    }

    private static Dictionary<string, Tensor> Flatten(Hashtable table, string path)
    {
        if (!table.Values.OfType<Tensor>().Any())
        {
            foreach (var key in WrapperKeys)
            {
                if (table[key] is Hashtable inner)
                    return Flatten(inner, path);
            }
            throw new InvalidDataException(
                $"'{path}' holds no tensors at its top level and none of the usual wrappers ({string.Join(", ", WrapperKeys)}). " +
                $"Its top-level keys: [{string.Join(", ", table.Keys.Cast<object>().Take(10))}].");
        }
        var result = new Dictionary<string, Tensor>();
        foreach (DictionaryEntry entry in table)
        {
            if (entry.Value is Tensor tensor)
                result[(string)entry.Key] = tensor;
        }
        return result;
    }

    /// <summary>
    /// Copies every tensor of <paramref name="source"/> whose key and shape match into <paramref name="target"/>.
    /// Strict: any missing key, unexpected key (unless <paramref name="allowUnexpected"/>) or shape mismatch throws
    /// before anything is copied. <c>num_batches_tracked</c> counters are optional on both sides.
    /// </summary>
    public static CheckpointLoadResult Apply(nn.Module target, IReadOnlyDictionary<string, Tensor> source, bool strict, bool allowUnexpected, string description)
    {
        var state = target.state_dict();
        var loaded = new List<string>();
        var mismatches = new List<string>();
        foreach (var (key, value) in state)
        {
            if (source.TryGetValue(key, out var tensor))
            {
                if (tensor.shape.SequenceEqual(value.shape))
                    loaded.Add(key);
                else
                    mismatches.Add($"{key}: checkpoint [{string.Join(",", tensor.shape)}] vs network [{string.Join(",", value.shape)}]");
            }
        }
        var missing = state.Keys.Where(k => !source.ContainsKey(k) && !IsCounter(k)).ToList();
        var unexpected = source.Keys.Where(k => !state.ContainsKey(k) && !IsCounter(k)).Order(StringComparer.Ordinal).ToList();

        if (strict && (missing.Count > 0 || mismatches.Count > 0 || (unexpected.Count > 0 && !allowUnexpected)))
        {
            throw new InvalidDataException(
                $"{description} does not fit the network: {Describe("missing", missing)}; {Describe("unexpected", allowUnexpected ? [] : unexpected)}; " +
                $"{Describe("shape mismatches", mismatches)}. Check that backbone and decoder options match the checkpoint, " +
                "or load non-strictly (strict: false) to copy only the tensors that fit.");
        }

        using (torch.no_grad())
        {
            foreach (var key in loaded)
                state[key].copy_(source[key]);
        }
        return new CheckpointLoadResult(loaded, missing, unexpected, mismatches);
    }

    private static bool IsCounter(string key) => key.EndsWith("num_batches_tracked", StringComparison.Ordinal);

    private static string Describe(string what, IReadOnlyCollection<string> keys) =>
        keys.Count == 0 ? $"0 {what}" : $"{keys.Count} {what} ({string.Join("; ", keys.Take(8))}{(keys.Count > 8 ? "; …" : "")})";
}
