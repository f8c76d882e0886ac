using System.Reflection;
using Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Backbones;

/// <summary>
/// Fills a ResNet with stage depths [2,2,2,3] from ResNet18.onnx of Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1,
/// through the embedded map from torchvision-style names to the graph's opaque initializer names.
/// </summary>
internal static class ResNet18OnnxWeights
{
    /// <summary>Stage depths of the ONNX graph: its last stage has three basic blocks.</summary>
    public static readonly int[] Depths = [2, 2, 2, 3];

    /// <summary>
    /// Per-channel averages (B, G, R) of the 224×224 mean image that ResNetPreprocess.onnx subtracts. The network
    /// accepts any image size, so it subtracts these averages instead of the image (which varies by at most ±10).
    /// </summary>
    public static readonly double[] BgrMean = [103.06262401521815, 115.90288236463556, 123.1516307762691];

    private const string MapResource = "MLNetFreqFusion.Backbones.resnet18_torchvision_map.tsv";

    /// <summary>torchvision-style name → (initializer name, shape), in the order of the embedded map.</summary>
    public static IReadOnlyList<(string Name, string Initializer, long[] Shape)> ReadMap()
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(MapResource)
            ?? throw new InvalidOperationException($"The embedded resource '{MapResource}' is missing from the assembly.");
        using var reader = new StreamReader(stream);
        var map = new List<(string, string, long[])>();
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            if (line.Length == 0)
                continue;
            var parts = line.Split('\t');
            map.Add((parts[0], parts[1], parts[2].Split('x').Select(long.Parse).ToArray()));
        }
        return map;
    }

    /// <summary>Copies the ONNX weights into <paramref name="resnet"/> (which must have depths [2,2,2,3] and width 64).</summary>
    public static void Load(ResNet resnet, string onnxPath)
    {
        if (!File.Exists(onnxPath))
            throw new FileNotFoundException(
                $"The pretrained ResNet-18 ONNX file '{onnxPath}' does not exist. Reference the NuGet package " +
                "Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1 (it copies DnnImageModels/ResNet18Onnx/ResNet18.onnx into the build output) " +
                "or pass the path of that file.", onnxPath);

        ModelProto model;
        using (var file = File.OpenRead(onnxPath))
            model = ModelProto.Parser.ParseFrom(file);
        var initializers = model.Graph.Initializer.ToDictionary(t => t.Name);

        var state = resnet.state_dict();
        var map = ReadMap();
        var expected = state.Keys.Where(k => !k.EndsWith("num_batches_tracked", StringComparison.Ordinal)).ToHashSet();
        var mapped = map.Select(m => m.Name).ToHashSet();
        var notInMap = expected.Except(mapped).ToList();
        var notInNetwork = mapped.Except(expected).ToList();
        if (notInMap.Count > 0 || notInNetwork.Count > 0)
            throw new InvalidOperationException(
                "The ResNet does not have the layout of the ML.NET ResNet-18 (depths [2,2,2,3], width 64). " +
                $"Not in the ONNX map: [{string.Join(", ", notInMap.Take(5))}]; not in the network: [{string.Join(", ", notInNetwork.Take(5))}].");

        using var noGrad = torch.no_grad();
        foreach (var (name, initializerName, shape) in map)
        {
            if (!initializers.TryGetValue(initializerName, out var initializer))
                throw new InvalidDataException($"'{onnxPath}' has no initializer '{initializerName}' (for {name}); it is not ResNet18.onnx of Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1.");
            var dims = initializer.Dims.ToArray();
            if (!dims.SequenceEqual(shape))
                throw new InvalidDataException($"Initializer '{initializerName}' ({name}) of '{onnxPath}' has shape [{string.Join(",", dims)}], expected [{string.Join(",", shape)}].");
            float[] values = ReadFloats(initializer, onnxPath);
            var target = state[name];
            if (!target.shape.SequenceEqual(shape))
                throw new InvalidOperationException($"{name} has shape [{string.Join(",", target.shape)}] in the network, [{string.Join(",", shape)}] in the ONNX file.");
            using var source = torch.tensor(values, shape);
            target.copy_(source);
        }
    }

    private static float[] ReadFloats(TensorProto initializer, string onnxPath)
    {
        if (initializer.DataType != (int)TensorProto.Types.DataType.Float)
            throw new InvalidDataException($"Initializer '{initializer.Name}' of '{onnxPath}' is not float32 (data type {initializer.DataType}).");
        long count = initializer.Dims.Aggregate(1L, (a, b) => a * b);
        if (initializer.FloatData.Count == count)
            return initializer.FloatData.ToArray();
        if (initializer.RawData.Length == count * sizeof(float))
        {
            var values = new float[count];
            Buffer.BlockCopy(initializer.RawData.ToByteArray(), 0, values, 0, (int)(count * sizeof(float)));
            return values;
        }
        throw new InvalidDataException($"Initializer '{initializer.Name}' of '{onnxPath}' holds {initializer.FloatData.Count} floats and {initializer.RawData.Length} raw bytes; expected {count} values.");
    }
}
