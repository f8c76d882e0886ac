using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Fusion;

/// <summary>
/// Minimal reader of the float32 safetensors files the golden fixtures use: an 8-byte little-endian header length,
/// a JSON header (dtype, shape, data_offsets per tensor, plus __metadata__), then the raw little-endian data.
/// </summary>
internal sealed class SafeTensorsFile
{
    readonly Dictionary<string, (long[] Shape, float[] Data)> _tensors;

    SafeTensorsFile(Dictionary<string, string> metadata, Dictionary<string, (long[] Shape, float[] Data)> tensors)
    {
        Metadata = metadata;
        _tensors = tensors;
    }

    public IReadOnlyDictionary<string, string> Metadata { get; }

    public IEnumerable<string> Names => _tensors.Keys;

    public static string FixtureDirectory => Path.Combine(AppContext.BaseDirectory, "Fixtures", "freqfusion");

    public static SafeTensorsFile Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 8)
            throw new InvalidDataException($"{path} is too short to be a safetensors file.");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (headerLength > (ulong)(bytes.Length - 8))
            throw new InvalidDataException($"{path}: header length {headerLength} exceeds the file.");
        int dataStart = 8 + (int)headerLength;
        using var header = JsonDocument.Parse(bytes.AsMemory(8, (int)headerLength));
        var metadata = new Dictionary<string, string>();
        var tensors = new Dictionary<string, (long[], float[])>();
        foreach (var entry in header.RootElement.EnumerateObject())
        {
            if (entry.Name == "__metadata__")
            {
                foreach (var item in entry.Value.EnumerateObject())
                    metadata[item.Name] = item.Value.GetString()!;
                continue;
            }
            var dtype = entry.Value.GetProperty("dtype").GetString();
            if (dtype != "F32")
                throw new InvalidDataException($"{path}: tensor {entry.Name} is {dtype}; only F32 is supported.");
            var shape = entry.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
            var offsets = entry.Value.GetProperty("data_offsets").EnumerateArray().Select(d => d.GetInt64()).ToArray();
            long count = shape.Aggregate(1L, (a, d) => a * d);
            if (offsets[1] - offsets[0] != count * sizeof(float) || dataStart + offsets[1] > bytes.Length)
                throw new InvalidDataException($"{path}: tensor {entry.Name} has offsets [{offsets[0]}, {offsets[1]}] that do not fit shape [{string.Join(", ", shape)}].");
            var raw = bytes.AsSpan(dataStart + (int)offsets[0], (int)(count * sizeof(float)));
            var values = new float[count];
            if (BitConverter.IsLittleEndian)
                MemoryMarshal.Cast<byte, float>(raw).CopyTo(values);
            else
                for (int i = 0; i < count; i++)
                    values[i] = BinaryPrimitives.ReadSingleLittleEndian(raw.Slice(i * sizeof(float)));
            tensors[entry.Name] = (shape, values);
        }
        return new SafeTensorsFile(metadata, tensors);
    }

    public long[] Shape(string name) => Get(name).Shape;

    public Tensor Tensor(string name)
    {
        var (shape, data) = Get(name);
        return tensor(data, shape, ScalarType.Float32);
    }

    (long[] Shape, float[] Data) Get(string name) =>
        _tensors.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"The fixture has no tensor '{name}'.");
}
