using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Decoders;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNetFreqFusion;
using MLNetFreqFusion.Data;
using MLNetFreqFusion.Inference;
using MLNetFreqFusion.Networks;
using MLNetFreqFusion.Training;
using TorchSharp;
using static TorchSharp.torch;

[assembly: LoadableClass(typeof(SemanticSegmentationTransformer), null, typeof(SignatureLoadModel),
    SemanticSegmentationTransformer.UserName, SemanticSegmentationTransformer.LoaderSignature)]
[assembly: LoadableClass(typeof(IRowMapper), typeof(SemanticSegmentationTransformer), null, typeof(SignatureLoadRowMapper),
    SemanticSegmentationTransformer.UserName, SemanticSegmentationTransformer.LoaderSignature)]

namespace MLNetFreqFusion;

/// <summary>
/// A trained segmentation model in an ML.NET pipeline: adds a <see cref="SegmentationMask"/> column (by default
/// "PredictedLabel") with the predicted class of every pixel, at the input image's size, and optionally per-class
/// probabilities. Saved and loaded with <c>mlContext.Model.Save</c>/<c>Load</c>, weights included.
/// </summary>
// ITransformer is declared again so that its Transform maps to the batching one below: the base class's
// Transform is sealed and predicts row by row.
public sealed class SemanticSegmentationTransformer : RowToRowTransformerBase, ITransformer, IDisposable
{
    internal const string UserName = "FreqFusion Semantic Segmentation";
    internal const string LoaderSignature = "FFSEGMNT";
    const string WeightsStream = "TSModel";

    readonly SegmentationModelSettings _settings;
    readonly SegmentationNetwork _network;
    readonly Device _device;
    readonly SegmentationPredictor _predictor;
    readonly object _gate = new();

    internal SemanticSegmentationTransformer(IHostEnvironment env, SegmentationModelSettings settings, SegmentationNetwork network)
        : base(Contracts.CheckRef(env, nameof(env)).Register(nameof(SemanticSegmentationTransformer)))
    {
        SegmentationMaskDataViewType.EnsureRegistered();
        _settings = settings;
        _network = network;
        _device = TorchDevice.Resolve(env, null);
        _network.to(_device);
        _network.eval();
        _predictor = new SegmentationPredictor(_network, _settings, _device);
    }

    /// <summary>Number of classes the model predicts.</summary>
    public int NumberOfClasses => _settings.NumberOfClasses;

    /// <summary>Class names, index by index.</summary>
    public IReadOnlyList<string> ClassNames => _settings.ClassNames;

    /// <summary>The network's encoder.</summary>
    public SegmentationBackbone Backbone => _settings.Backbone;

    /// <summary>The network's decode head.</summary>
    public SegmentationDecoder Decoder => _settings.Decoder;

    internal SegmentationNetwork Network => _network;

    internal SegmentationModelSettings Settings => _settings;

    static VersionInfo GetVersionInfo() => new(
        modelSignature: "FFSEGMNT",
        // verWrittenCur: 0x00010001, // Initial
        verWrittenCur: 0x00010002, // Inference batch size
        verReadableCur: 0x00010002,
        verWeCanReadBack: 0x00010001,
        loaderSignature: LoaderSignature,
        loaderAssemblyName: typeof(SemanticSegmentationTransformer).Assembly.FullName);

    internal static SchemaShape.Column[] OutputColumns(string predictedLabel, string? probabilities)
    {
        var columns = new List<SchemaShape.Column>
        {
            new(predictedLabel, SchemaShape.Column.VectorKind.Scalar, SegmentationMaskDataViewType.Instance, false),
        };
        if (probabilities is not null)
            columns.Add(new(probabilities, SchemaShape.Column.VectorKind.VariableVector, NumberDataViewType.Single, false));
        return columns.ToArray();
    }

    /// <summary>ML.NET plumbing (internal in ML.NET; public here only because overrides must match the compile-time signature).</summary>
    [System.ComponentModel.EditorBrowsable(System.ComponentModel.EditorBrowsableState.Never)]
    public override void SaveModel(ModelSaveContext ctx)
    {
        Host.CheckValue(ctx, nameof(ctx));
        ctx.CheckAtModel();
        ctx.SetVersionInfo(GetVersionInfo());

        // *** Binary format ***
        // SegmentationModelSettings (see its Write)
        // stream "TSModel": the network's TorchSharp state dict
        _settings.Write(ctx.Writer);
        ctx.SaveBinaryStream(WeightsStream, w =>
        {
            lock (_gate)
                _network.save(w);
        });
    }

    static SemanticSegmentationTransformer Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        Contracts.CheckValue(env, nameof(env));
        var host = env.Register(nameof(SemanticSegmentationTransformer));
        host.CheckValue(ctx, nameof(ctx));
        if (ctx.Header.ModelVerReadable > GetVersionInfo().VerWrittenCur)
            throw host.Except($"This model was saved by a newer MLNetFreqFusion (format 0x{ctx.Header.ModelVerReadable:X8}); this one reads " +
                $"up to 0x{GetVersionInfo().VerWrittenCur:X8}. Update the MLNetFreqFusion package to load it.");
        ctx.CheckAtModel(GetVersionInfo());

        // *** Binary format ***
        // SegmentationModelSettings (see its Write)
        // stream "TSModel": the network's TorchSharp state dict
        var settings = SegmentationModelSettings.Read(ctx.Reader, host, hasInferenceBatchSize: ctx.Header.ModelVerWritten >= 0x00010002);
        var network = SegmentationNetwork.Create(settings.ToNetworkOptions(pretrainedWeightsPath: null, freezeBatchNorm: false), loadPretrainedWeights: false);
        bool loaded = ctx.TryLoadBinaryStream(WeightsStream, r => network.load(r, strict: true));
        host.CheckDecode(loaded, "the model has no network weights (stream TSModel)");
        return new SemanticSegmentationTransformer(env, settings, network);
    }

    static IRowMapper Create(IHostEnvironment env, ModelLoadContext ctx, DataViewSchema inputSchema)
        => Create(env, ctx).MakeRowMapper(inputSchema);

    /// <summary>
    /// Adds the predicted-mask column (and the probabilities column when the model has one) to <paramref name="input"/>.
    /// Lazy, as every ML.NET transform: rows are predicted while a cursor reads them, consecutive rows of one image
    /// size together in batches of the model's InferenceBatchSize, each row once however many output columns are read.
    /// </summary>
    /// <param name="input">Rows with the model's image column (an <see cref="MLImage"/> of any size).</param>
    public new IDataView Transform(IDataView input)
    {
        Host.CheckValue(input, nameof(input));
        return new BatchedSegmentationDataView(Host, input, MakeDataTransform(input), _settings, Predict);
    }

    /// <summary>Predicts a batch of images of one size; one network serves every cursor and engine of this model.</summary>
    internal SegmentationPrediction[] Predict(Tensor rgb, bool withProbabilities)
    {
        // TorchSharp modules are not safe to run from several threads at once, so predictions are serialised here.
        lock (_gate)
            return _predictor.Predict(rgb, withProbabilities);
    }

    /// <summary>ML.NET plumbing (internal in ML.NET; public here only because overrides must match the compile-time signature).</summary>
    [System.ComponentModel.EditorBrowsable(System.ComponentModel.EditorBrowsableState.Never)]
    public override IRowMapper MakeRowMapper(DataViewSchema schema) => new Mapper(this, schema);

    /// <summary>
    /// The paper's feature-consistency analysis on this model: the decoder's fused features (before the classifier,
    /// at 1/4 scale) of every image, labels resized to that scale by nearest neighbour, per-class centres over the
    /// whole data, then the mean cosine similarity of each pixel to its class centre (intra-class similarity), the mean
    /// margin to the most similar other class, and both restricted to boundary pixels. FreqFusion is meant to raise
    /// both; compare a FreqFusion model with a bilinear one on the same data.
    /// </summary>
    /// <param name="data">Rows with the model's image column and a label column of <see cref="SegmentationMask"/>.</param>
    /// <param name="labelColumnName">The label column.</param>
    /// <returns>The report; similarities are in [-1, 1].</returns>
    public FeatureConsistencyReport AnalyzeFeatureConsistency(IDataView data, string labelColumnName = "Label")
    {
        Host.CheckValue(data, nameof(data));
        var shape = SchemaShape.Create(data.Schema);
        SchemaChecks.CheckImageColumn(Host, shape, _settings.ImageColumnName);
        SchemaChecks.CheckMaskColumn(Host, shape, labelColumnName, "label");
        var analyzer = new FeatureConsistencyAnalyzer(_settings.NumberOfClasses, _settings.IgnoreIndex);
        // Class centres need every image before any similarity, so the images pass through the network twice
        // rather than keeping all feature maps in memory.
        ForEachFeatureMap(data, labelColumnName, analyzer.AddToClassCentres);
        ForEachFeatureMap(data, labelColumnName, analyzer.AddToSimilarities);
        return analyzer.Compute();
    }

    void ForEachFeatureMap(IDataView data, string labelColumnName, Action<Tensor, IReadOnlyList<SegmentationMask>> action)
    {
        var imageColumn = data.Schema[_settings.ImageColumnName];
        var labelColumn = data.Schema[labelColumnName];
        using var cursor = data.GetRowCursor(new[] { imageColumn, labelColumn });
        var getImage = cursor.GetGetter<MLImage>(imageColumn);
        var getLabel = cursor.GetGetter<SegmentationMask>(labelColumn);
        MLImage image = null!;
        SegmentationMask label = null!;
        while (cursor.MoveNext())
        {
            Host.CheckAlive();
            getImage(ref image);
            getLabel(ref label);
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            Tensor features;
            lock (_gate)
            {
                _network.eval();
                features = _network.DecoderFeatures(ImageTensorConverter.ToTensor(image).unsqueeze(0).to(_device)).cpu();
            }
            action(features, new[] { label });
        }
    }

    /// <summary>Releases the network's native memory.</summary>
    public void Dispose() => _network.Dispose();

    sealed class Mapper : MapperBase
    {
        readonly SemanticSegmentationTransformer _owner;
        readonly int _imageColumn;

        public Mapper(SemanticSegmentationTransformer parent, DataViewSchema inputSchema)
            : base(parent.Host.Register(nameof(Mapper)), inputSchema, parent)
        {
            _owner = parent;
            var name = parent._settings.ImageColumnName;
            SchemaChecks.CheckImageColumn(Host, SchemaShape.Create(inputSchema), name);
            _imageColumn = inputSchema[name].Index;
        }

        public override DataViewSchema.DetachedColumn[] GetOutputColumnsCore()
        {
            var s = _owner._settings;
            var columns = new List<DataViewSchema.DetachedColumn> { new(s.PredictedLabelColumnName, SegmentationMaskDataViewType.Instance) };
            if (s.ProbabilitiesColumnName is not null)
                columns.Add(new(s.ProbabilitiesColumnName, new VectorDataViewType(NumberDataViewType.Single)));
            return columns.ToArray();
        }

        public override Func<int, bool> GetDependenciesCore(Func<int, bool> activeOutput)
            => column => column == _imageColumn && (activeOutput(0) || (_owner._settings.ProbabilitiesColumnName is not null && activeOutput(1)));

        public override void SaveModel(ModelSaveContext ctx) => _owner.SaveModel(ctx);

        /// <summary>Both output columns come from one prediction per row, so the getters share it.</summary>
        public override Delegate[] CreateGetters(DataViewRow input, Func<int, bool> activeOutput, out Action disposer)
        {
            disposer = () => { };
            var getters = new Delegate[OutputColumnCount];
            bool wantMask = activeOutput(0), wantProbabilities = OutputColumnCount > 1 && activeOutput(1);
            if (!wantMask && !wantProbabilities)
                return getters;
            var getImage = input.GetGetter<MLImage>(input.Schema[_imageColumn]);
            MLImage image = null!;
            long cachedPosition = -1;
            SegmentationPrediction cached = default;

            SegmentationPrediction Current()
            {
                if (cachedPosition != input.Position)
                {
                    getImage(ref image);
                    if (image is null)
                        throw Host.Except($"Row {input.Position}: the image column '{_owner._settings.ImageColumnName}' holds no image.");
                    using var scope = NewDisposeScope();
                    cached = _owner.Predict(ImageTensorConverter.ToTensor(image).unsqueeze(0), wantProbabilities)[0];
                    cachedPosition = input.Position;
                }
                return cached;
            }

            if (wantMask)
                getters[0] = (ValueGetter<SegmentationMask>)((ref SegmentationMask value) => value = Current().Mask);
            if (wantProbabilities)
                getters[1] = (ValueGetter<VBuffer<float>>)((ref VBuffer<float> value) => BatchedSegmentationDataView.CopyProbabilities(Current(), ref value));
            return getters;
        }

        int OutputColumnCount => _owner._settings.ProbabilitiesColumnName is null ? 1 : 2;

        public override Delegate MakeGetter(DataViewRow input, int iinfo, Func<int, bool> activeOutput, out Action disposer)
            => throw Contracts.ExceptNotSupp("CreateGetters makes every getter of this mapper.");
    }

    /// <summary>
    /// Writes the model as one self-contained ONNX file (opset 17, weights included) that runs in ONNX Runtime or
    /// ML.NET's ApplyOnnxModel without TorchSharp. Input <c>image</c>: float32 [N, 3, H, W], RGB, raw 0–255, any
    /// N, H and W; the graph normalises, mirror-pads to the network stride and crops back as the TorchSharp forward
    /// does. Outputs: <c>logits</c> float32 [N, K, H, W] (before softmax) and <c>labels</c> int64 [N, H, W] (argmax).
    /// Batch norm is folded into the convolutions (eval mode). Flip-test and sliding-window inference are not in the
    /// graph: they stay TorchSharp features of this transformer, so with them on the ONNX model predicts the plain
    /// whole-image forward. Class names are stored in the metadata entry <c>class_names</c> (a JSON array).
    /// </summary>
    /// <param name="destination">An open, writable stream; the model is written at its current position.</param>
    /// <exception cref="ArgumentException">The stream is closed or read-only.</exception>
    public void ExportToOnnx(Stream destination)
    {
        lock (_gate)
            Onnx.OnnxExport.ToStream(_network, _settings.ClassNames, destination);
    }

    /// <summary>
    /// Writes the model as an ONNX file at <paramref name="path"/> (see <see cref="ExportToOnnx(Stream)"/>). The file
    /// is written under a temporary name and moved into place, so a failed export leaves no partial file.
    /// </summary>
    /// <param name="path">The .onnx file to create or replace; its folder must exist.</param>
    /// <exception cref="IOException">The folder is missing or not writable.</exception>
    public void ExportToOnnx(string path)
    {
        lock (_gate)
            Onnx.OnnxExport.ToFile(_network, _settings.ClassNames, path);
    }
}
