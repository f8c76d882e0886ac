using Google.Protobuf;
using Onnx;

namespace MLNetFreqFusion.Onnx;

/// <summary>
/// Appends nodes and initializers to an ONNX graph (default domain, one opset) and hands out unique value names.
/// Helpers cover the operators the emitters use; every helper returns the name of its output.
/// </summary>
internal sealed class OnnxGraphBuilder
{
    public const int Opset = 17;

    // IR version 8 is the one that introduced opset 17, so the file loads in every runtime that knows the opset.
    const long IrVersion = 8;

    readonly GraphProto _graph = new() { Name = "segmentation" };
    readonly Dictionary<string, string> _int64Constants = new();
    readonly Dictionary<float, string> _floatConstants = new();
    readonly HashSet<string> _names = new();
    string? _nearestScales;
    int _counter;

    /// <summary>A fresh value name that starts with <paramref name="hint"/>.</summary>
    public string Unique(string hint)
    {
        var name = hint;
        while (!_names.Add(name))
            name = $"{hint}_{_counter++}";
        return name;
    }

    public void AddInput(string name, int channels, string dimension) =>
        _graph.Input.Add(TensorInfo(name, TensorProto.Types.DataType.Float, ["N", channels, "H", "W"], dimension));

    public void AddOutput(string name, TensorProto.Types.DataType type, object[] dims, string doc) =>
        _graph.Output.Add(TensorInfo(name, type, dims, doc));

    static ValueInfoProto TensorInfo(string name, TensorProto.Types.DataType type, object[] dims, string doc)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d is string p ? new TensorShapeProto.Types.Dimension { DimParam = p } : new TensorShapeProto.Types.Dimension { DimValue = Convert.ToInt64(d) });
        return new ValueInfoProto
        {
            Name = name,
            DocString = doc,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }

    /// <summary>A float32 initializer (weights), stored as raw little-endian bytes.</summary>
    public string Weights(string hint, ReadOnlySpan<float> values, params long[] dims)
    {
        var tensor = new TensorProto { Name = Unique(hint), DataType = (int)TensorProto.Types.DataType.Float };
        tensor.Dims.AddRange(dims);
        tensor.RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values));
        _graph.Initializer.Add(tensor);
        return tensor.Name;
    }

    /// <summary>A 1-D int64 constant (shapes, axes, indices, slice bounds); equal constants are shared.</summary>
    public string Int64s(params long[] values) => Int64Constant(values, scalar: false);

    /// <summary>A 0-D int64 constant (Range bounds, Gather of one dimension).</summary>
    public string Int64Scalar(long value) => Int64Constant([value], scalar: true);

    string Int64Constant(long[] values, bool scalar)
    {
        var key = (scalar ? "s" : "") + string.Join(",", values);
        if (_int64Constants.TryGetValue(key, out var existing))
            return existing;
        var tensor = new TensorProto { Name = Unique("const_i64"), DataType = (int)TensorProto.Types.DataType.Int64 };
        if (!scalar)
            tensor.Dims.Add(values.Length);
        tensor.Int64Data.AddRange(values);
        _graph.Initializer.Add(tensor);
        return _int64Constants[key] = tensor.Name;
    }

    /// <summary>A 0-D float32 constant; broadcasts against any tensor.</summary>
    public string Scalar(float value)
    {
        if (_floatConstants.TryGetValue(value, out var existing))
            return existing;
        var tensor = new TensorProto { Name = Unique("const_f32"), DataType = (int)TensorProto.Types.DataType.Float };
        tensor.FloatData.Add(value);
        _graph.Initializer.Add(tensor);
        return _floatConstants[value] = tensor.Name;
    }

    /// <summary>Adds a node with one output.</summary>
    public string Node(string op, string[] inputs, params (string Name, object Value)[] attributes) =>
        NodeWithOutputs(op, inputs, 1, attributes)[0];

    public string[] NodeWithOutputs(string op, string[] inputs, int outputs, params (string Name, object Value)[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = Unique(op + "_node") };
        node.Input.AddRange(inputs);
        var names = Enumerable.Range(0, outputs).Select(_ => Unique(op.ToLowerInvariant())).ToArray();
        node.Output.AddRange(names);
        foreach (var (name, value) in attributes)
            node.Attribute.Add(Attribute(name, value));
        _graph.Node.Add(node);
        return names;
    }

    /// <summary>Renames the output of the last node that produced <paramref name="value"/> (graph outputs need fixed names).</summary>
    public void Rename(string value, string name)
    {
        var node = _graph.Node.Last(n => n.Output.Contains(value));
        node.Output[node.Output.IndexOf(value)] = name;
        _names.Add(name);
    }

    static AttributeProto Attribute(string name, object value)
    {
        var attribute = new AttributeProto { Name = name };
        switch (value)
        {
            case int or long:
                attribute.Type = AttributeProto.Types.AttributeType.Int;
                attribute.I = Convert.ToInt64(value);
                break;
            case float f:
                attribute.Type = AttributeProto.Types.AttributeType.Float;
                attribute.F = f;
                break;
            case string s:
                attribute.Type = AttributeProto.Types.AttributeType.String;
                attribute.S = ByteString.CopyFromUtf8(s);
                break;
            case long[] ints:
                attribute.Type = AttributeProto.Types.AttributeType.Ints;
                attribute.Ints.AddRange(ints);
                break;
            default:
                throw new ArgumentException($"Attribute '{name}' has unsupported type {value.GetType().Name}.", nameof(value));
        }
        return attribute;
    }

    public ModelProto ToModel(string docString, IEnumerable<KeyValuePair<string, string>> metadata)
    {
        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "MLNetFreqFusion",
            ProducerVersion = typeof(OnnxGraphBuilder).Assembly.GetName().Version?.ToString() ?? "",
            DocString = docString,
            Graph = _graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        foreach (var (key, value) in metadata)
            model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        return model;
    }

    // ---- Operators ----

    public string Add(string a, string b) => Node("Add", [a, b]);
    public string Sub(string a, string b) => Node("Sub", [a, b]);
    public string Mul(string a, string b) => Node("Mul", [a, b]);
    public string Div(string a, string b) => Node("Div", [a, b]);
    public string Relu(string x) => Node("Relu", [x]);
    public string Sigmoid(string x) => Node("Sigmoid", [x]);
    public string Shape(string x) => Node("Shape", [x]);
    public string Concat(int axis, params string[] inputs) => Node("Concat", inputs, ("axis", axis));
    public string Transpose(string x, params long[] perm) => Node("Transpose", [x], ("perm", perm));
    public string Reshape(string x, string shape) => Node("Reshape", [x, shape]);
    public string Reshape(string x, params long[] shape) => Reshape(x, Int64s(shape));
    public string Softmax(string x, int axis) => Node("Softmax", [x], ("axis", axis));
    public string ReduceSum(string x, int axis) => Node("ReduceSum", [x, Int64s(axis)], ("keepdims", 1));
    public string Gather(string x, string indices, int axis) => Node("Gather", [x, indices], ("axis", axis));

    /// <summary>Slice with constant bounds; <see cref="long.MaxValue"/> as an end means "to the end".</summary>
    public string Slice(string x, long[] starts, long[] ends, long[] axes) =>
        Node("Slice", [x, Int64s(starts), Int64s(ends), Int64s(axes)]);

    /// <summary>Channels [start, end) of an NCHW tensor.</summary>
    public string Channels(string x, long start, long end) => Slice(x, [start], [end], [1]);

    /// <summary>Dimensions [start, end) of the shape of <paramref name="x"/>, a 1-D int64 tensor.</summary>
    public string Dims(string x, long start, long end) => Slice(Shape(x), [start], [end], [0]);

    public string Conv(string x, string weight, string? bias, long[] kernel, long[] strides, long[] pads, long[] dilations, long group)
    {
        string[] inputs = bias is null ? [x, weight] : [x, weight, bias];
        return Node("Conv", inputs,
            ("kernel_shape", kernel), ("strides", strides), ("pads", pads), ("dilations", dilations), ("group", group));
    }

    /// <summary>Resizes the last two axes of <paramref name="x"/> to <paramref name="size"/> (a 1-D [H, W] tensor) as torch's bilinear, align_corners = false.</summary>
    public string ResizeBilinear(string x, string size)
    {
        var sizes = Concat(0, Dims(x, 0, 2), size);
        return Node("Resize", [x, "", "", sizes],
            ("mode", "linear"), ("coordinate_transformation_mode", "half_pixel"));
    }

    /// <summary>Nearest 2× up-sampling as torch's nearest interpolate: out[y] = in[⌊y/2⌋].</summary>
    public string Nearest2x(string x)
    {
        if (_nearestScales is null)
        {
            var tensor = new TensorProto { Name = Unique("scales_2x"), DataType = (int)TensorProto.Types.DataType.Float };
            tensor.Dims.Add(4);
            tensor.FloatData.AddRange([1f, 1f, 2f, 2f]);
            _graph.Initializer.Add(tensor);
            _nearestScales = tensor.Name;
        }
        return Node("Resize", [x, "", _nearestScales],
            ("mode", "nearest"), ("coordinate_transformation_mode", "asymmetric"), ("nearest_mode", "floor"));
    }
}
