using System.Text;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNetFreqFusion;
using MLNetFreqFusion.Data;

[assembly: LoadableClass(typeof(SegmentationMaskLoadingTransformer), null, typeof(SignatureLoadModel),
    SegmentationMaskLoadingTransformer.UserName, SegmentationMaskLoadingTransformer.LoaderSignature)]
[assembly: LoadableClass(typeof(IRowMapper), typeof(SegmentationMaskLoadingTransformer), null, typeof(SignatureLoadRowMapper),
    SegmentationMaskLoadingTransformer.UserName, SegmentationMaskLoadingTransformer.LoaderSignature)]

namespace MLNetFreqFusion;

/// <summary>
/// Reads segmentation masks from the files named in a text column into <see cref="SegmentationMask"/> columns,
/// keeping class indices exact (palette indices, 16-bit values, colour maps) where <c>LoadImages</c> would turn them
/// into colours or 8-bit values. Created by <c>mlContext.Transforms.LoadSegmentationMasks(...)</c>.
/// </summary>
public sealed class SegmentationMaskLoadingTransformer : OneToOneTransformerBase
{
    internal const string UserName = "Segmentation Mask Loader";
    internal const string LoaderSignature = "FFMSKLDR";

    readonly string? _imageFolder;
    readonly MaskDecodeOptions _options;
    readonly string[]? _classNames;

    internal SegmentationMaskLoadingTransformer(IHostEnvironment env, string? imageFolder, MaskDecodeOptions options,
        IReadOnlyList<string>? classNames, params (string Output, string Input)[] columns)
        : base(Contracts.CheckRef(env, nameof(env)).Register(nameof(SegmentationMaskLoadingTransformer)), columns)
    {
        SegmentationMaskDataViewType.EnsureRegistered();
        if (classNames is not null && SegmentationAnnotations.Problem(classNames, options.IgnoreIndex) is string problem)
            throw Host.ExceptUserArg(nameof(classNames), problem);
        _imageFolder = imageFolder;
        _options = options;
        _classNames = classNames?.ToArray();
    }

    /// <summary>Folder that relative mask paths are resolved against; null when paths are used as they are.</summary>
    public string? ImageFolder => _imageFolder;

    /// <summary>
    /// The class names the mask columns carry (annotation <see cref="SegmentationAnnotations.ClassNames"/>, and each
    /// mask's <see cref="SegmentationMask.ClassNames"/>), index by index; null when none were given.
    /// </summary>
    public IReadOnlyList<string>? ClassNames => _classNames;

    static VersionInfo GetVersionInfo() => new(
        modelSignature: "FFMSKLDR",
        // verWrittenCur: 0x00010001, // Initial
        verWrittenCur: 0x00010002, // Class names
        verReadableCur: 0x00010002,
        verWeCanReadBack: 0x00010001,
        loaderSignature: LoaderSignature,
        loaderAssemblyName: typeof(SegmentationMaskLoadingTransformer).Assembly.FullName);

    /// <summary>ML.NET plumbing (internal in ML.NET; public here only because overrides must match the compile-time signature).</summary>
    [System.ComponentModel.EditorBrowsable(System.ComponentModel.EditorBrowsableState.Never)]
    public override void SaveModel(ModelSaveContext ctx)
    {
        Host.CheckValue(ctx, nameof(ctx));
        ctx.CheckAtModel();
        ctx.SetVersionInfo(GetVersionInfo());

        // *** Binary format ***
        // <base>: the column pairs
        // string or null: image folder
        // int: format, bool: reduce zero label, ushort: ignore index
        // int n, n × (ushort from, ushort to): value map
        // int m, m × (byte r, byte g, byte b, ushort class): colour map
        // int k, k × string: class names, k = 0 for none (format 0x00010002 on)
        SaveColumns(ctx);
        ctx.SaveStringOrNull(_imageFolder);
        var w = ctx.Writer;
        w.Write((int)_options.Format);
        w.Write(_options.ReduceZeroLabel);
        w.Write(_options.IgnoreIndex);
        w.Write(_options.ValueMap?.Count ?? 0);
        foreach (var (from, to) in _options.ValueMap ?? new Dictionary<ushort, ushort>())
        {
            w.Write(from);
            w.Write(to);
        }
        w.Write(_options.ColorMap?.Count ?? 0);
        foreach (var (colour, label) in _options.ColorMap ?? new Dictionary<(byte, byte, byte), ushort>())
        {
            w.Write(colour.R);
            w.Write(colour.G);
            w.Write(colour.B);
            w.Write(label);
        }
        w.Write(_classNames?.Length ?? 0);
        foreach (var name in _classNames ?? [])
            w.Write(name);
    }

    SegmentationMaskLoadingTransformer(IHost host, ModelLoadContext ctx) : base(host, ctx)
    {
        // *** Binary format ***
        // <base>: the column pairs
        // string or null: image folder
        // int: format, bool: reduce zero label, ushort: ignore index
        // int n, n × (ushort from, ushort to): value map
        // int m, m × (byte r, byte g, byte b, ushort class): colour map
        // int k, k × string: class names, k = 0 for none (format 0x00010002 on; older loaders have none)
        _imageFolder = ctx.LoadStringOrNull();
        var r = ctx.Reader;
        var format = (MaskFormat)r.ReadInt32();
        host.CheckDecode(Enum.IsDefined(format), "unknown mask format");
        _options = new MaskDecodeOptions { Format = format, ReduceZeroLabel = r.ReadBoolean(), IgnoreIndex = r.ReadUInt16() };
        int n = r.ReadInt32();
        host.CheckDecode(n >= 0, "value map size");
        if (n > 0)
        {
            var map = new Dictionary<ushort, ushort>();
            for (int i = 0; i < n; i++)
                map[r.ReadUInt16()] = r.ReadUInt16();
            _options.ValueMap = map;
        }
        int m = r.ReadInt32();
        host.CheckDecode(m >= 0, "colour map size");
        if (m > 0)
        {
            var map = new Dictionary<(byte R, byte G, byte B), ushort>();
            for (int i = 0; i < m; i++)
                map[(r.ReadByte(), r.ReadByte(), r.ReadByte())] = r.ReadUInt16();
            _options.ColorMap = map;
        }
        if (ctx.Header.ModelVerWritten >= 0x00010002)
        {
            int k = r.ReadInt32();
            host.CheckDecode(k >= 0, "class name count");
            if (k > 0)
            {
                _classNames = new string[k];
                for (int i = 0; i < k; i++)
                    _classNames[i] = r.ReadString();
                host.CheckDecode(SegmentationAnnotations.Problem(_classNames, _options.IgnoreIndex) is null, "class names");
            }
        }
    }

    static SegmentationMaskLoadingTransformer Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        Contracts.CheckValue(env, nameof(env));
        var host = env.Register(nameof(SegmentationMaskLoadingTransformer));
        host.CheckValue(ctx, nameof(ctx));
        ctx.CheckAtModel(GetVersionInfo());
        SegmentationMaskDataViewType.EnsureRegistered();
        return new SegmentationMaskLoadingTransformer(host, ctx);
    }

    static IRowMapper Create(IHostEnvironment env, ModelLoadContext ctx, DataViewSchema inputSchema)
        => Create(env, ctx).MakeRowMapper(inputSchema);

    /// <summary>ML.NET plumbing (internal in ML.NET; public here only because overrides must match the compile-time signature).</summary>
    [System.ComponentModel.EditorBrowsable(System.ComponentModel.EditorBrowsableState.Never)]
    public override void CheckInputColumn(DataViewSchema inputSchema, int col, int srcCol)
    {
        var type = inputSchema[srcCol].Type;
        if (type is not TextDataViewType)
            throw Host.ExceptSchemaMismatch(nameof(inputSchema), "mask path", ColumnPairs[col].inputColumnName,
                TextDataViewType.Instance.ToString(), type.ToString());
    }

    /// <summary>ML.NET plumbing (internal in ML.NET; public here only because overrides must match the compile-time signature).</summary>
    [System.ComponentModel.EditorBrowsable(System.ComponentModel.EditorBrowsableState.Never)]
    public override IRowMapper MakeRowMapper(DataViewSchema schema) => new Mapper(this, schema);

    sealed class Mapper : OneToOneMapperBase
    {
        readonly SegmentationMaskLoadingTransformer _owner;

        public Mapper(SegmentationMaskLoadingTransformer parent, DataViewSchema inputSchema)
            : base(parent.Host.Register(nameof(Mapper)), parent, inputSchema)
        {
            _owner = parent;
        }

        public override DataViewSchema.DetachedColumn[] GetOutputColumnsCore()
            => _owner.ColumnPairs.Select(p => new DataViewSchema.DetachedColumn(p.outputColumnName, SegmentationMaskDataViewType.Instance,
                SegmentationAnnotations.Of(_owner._classNames))).ToArray();

        public override Delegate MakeGetter(DataViewRow input, int iinfo, Func<int, bool> activeOutput, out Action disposer)
        {
            disposer = () => { };
            var getPath = input.GetGetter<ReadOnlyMemory<char>>(input.Schema[ColMapNewToOld[iinfo]]);
            ReadOnlyMemory<char> path = default;
            return (ValueGetter<SegmentationMask>)((ref SegmentationMask value) =>
            {
                getPath(ref path);
                var relative = path.ToString().Trim();
                if (relative.Length == 0)
                    throw Host.Except($"Row {input.Position}: the mask path in column '{_owner.ColumnPairs[iinfo].inputColumnName}' is empty.");
                var full = _owner._imageFolder is null ? relative : Path.Combine(_owner._imageFolder, relative);
                value = MaskDecoder.Decode(full, _owner._options, _owner._classNames);
            });
        }
    }
}

/// <summary>The estimator of <see cref="SegmentationMaskLoadingTransformer"/>; it needs no training.</summary>
public sealed class SegmentationMaskLoadingEstimator : TrivialEstimator<SegmentationMaskLoadingTransformer>
{
    internal SegmentationMaskLoadingEstimator(IHostEnvironment env, SegmentationMaskLoadingTransformer transformer)
        : base(Contracts.CheckRef(env, nameof(env)).Register(nameof(SegmentationMaskLoadingEstimator)), transformer)
    {
    }

    /// <summary>Checks that every input column is text and adds the mask columns (with their class names, when given).</summary>
    public override SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        Host.CheckValue(inputSchema, nameof(inputSchema));
        var columns = inputSchema.ToDictionary(c => c.Name);
        foreach (var (output, input) in Transformer.ColumnPairs)
        {
            if (!inputSchema.TryFindColumn(input, out var column))
                throw Host.ExceptSchemaMismatch(nameof(inputSchema), "mask path", input);
            if (column.ItemType is not TextDataViewType || column.Kind != SchemaShape.Column.VectorKind.Scalar)
                throw Host.ExceptSchemaMismatch(nameof(inputSchema), "mask path", input, TextDataViewType.Instance.ToString(), column.GetTypeString());
            columns[output] = SegmentationAnnotations.MaskColumnShape(output, Transformer.ClassNames is not null);
        }
        return new SchemaShape(columns.Values);
    }
}
