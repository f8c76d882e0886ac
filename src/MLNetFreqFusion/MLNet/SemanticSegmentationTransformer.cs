using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Decoders;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNetFreqFusion;
using MLNetFreqFusion.Data;
using MLNetFreqFusion.Evaluation;
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
public sealed partial class SemanticSegmentationTransformer : RowToRowTransformerBase, ITransformer, IDisposable
{
    internal const string UserName = "FreqFusion Semantic Segmentation";
    internal const string LoaderSignature = "FFSEGMNT";
    const string WeightsStream = "TSModel";

    readonly SegmentationModelSettings _settings;
    readonly SegmentationNetwork _network;
    readonly SegmentationPredictor _predictor;

    /// <summary>What runs the network for this model's predictions.</summary>
    internal SegmentationPredictor Predictor => _predictor;

    internal SemanticSegmentationTransformer(IHostEnvironment env, SegmentationModelSettings settings, SegmentationNetwork network)
        : base(Contracts.CheckRef(env, nameof(env)).Register(nameof(SemanticSegmentationTransformer)))
    {
        SegmentationMaskDataViewType.EnsureRegistered();
        _settings = settings;
        _network = network;
        var device = TorchDevice.Resolve(env, null);
        _network.to(device);
        _network.eval();
        _predictor = new SegmentationPredictor(_network, _settings.Inference, _settings.ClassNames, device, ownThread: true);
    }

    /// <summary>Number of classes the model predicts.</summary>
    public int NumberOfClasses => _settings.NumberOfClasses;

    /// <summary>Class names, index by index.</summary>
    public IReadOnlyList<string> ClassNames => _settings.ClassNames;

    /// <summary>The network's encoder.</summary>
    public SegmentationBackbone Backbone => _settings.Architecture.Backbone;

    /// <summary>The network's decode head.</summary>
    public SegmentationDecoder Decoder => _settings.Architecture.Decoder;

    /// <summary>
    /// What the model's network is made of: backbone, decoder, classes and widths, as the model file stores them.
    /// <see cref="SegmentationNetwork.Create"/> rebuilds the same architecture.
    /// </summary>
    public SegmentationArchitecture Architecture => _settings.Architecture;

    /// <summary>
    /// A copy of the trained network, on the CPU and in evaluation mode, for work outside the pipeline: observing its
    /// modules (forward hooks, figures), saving a PyTorch checkpoint with <see cref="SegmentationNetwork.SaveCheckpoint"/>,
    /// exporting it. The copy has its own weights, so changing or hooking it leaves the model's predictions alone;
    /// dispose it when done.
    /// </summary>
    /// <returns>A new network with this model's weights.</returns>
    public SegmentationNetwork CopyNetwork()
    {
        var copy = SegmentationNetwork.Create(_settings.Architecture, loadPretrainedWeights: false);
        using var weights = new MemoryStream();
        _predictor.WithNetwork(network => network.save(new BinaryWriter(weights)));
        weights.Position = 0;
        copy.load(new BinaryReader(weights), strict: true);
        copy.eval();
        return copy;
    }

    internal SegmentationNetwork Network => _network;

    internal SegmentationModelSettings Settings => _settings;

    /// <summary>
    /// Adds the predicted-mask column (and the probabilities column when the model has one) to <paramref name="input"/>.
    /// Lazy, as every ML.NET transform: rows are predicted while a cursor reads them, consecutive rows of one image
    /// size together in batches of the model's InferenceBatchSize, each row once however many output columns are read.
    /// </summary>
    /// <param name="input">Rows with the model's image column (an <see cref="MLImage"/> of any size).</param>
    public new IDataView Transform(IDataView input)
    {
        Host.CheckValue(input, nameof(input));
        return new BatchedSegmentationDataView(Host, input, MakeDataTransform(input), _settings.ImageColumnName, _predictor);
    }

    /// <summary>
    /// The predicted mask of one image, as <see cref="Transform"/> and a <c>PredictionEngine</c> predict it, for a caller
    /// that must be able to stop a prediction: a web request whose client disconnected passes its
    /// <c>HttpContext.RequestAborted</c>. Cancellation is checked before the network runs and between sliding windows
    /// (an image larger than the model's SlidingWindowSize), so it takes effect within one window. Safe to call from
    /// several threads at once; the calls run one after another on the model's network.
    /// </summary>
    /// <param name="image">The image, of any size; the model's image column name plays no part.</param>
    /// <param name="cancellationToken">Stops the prediction at its next check.</param>
    /// <returns>The class of every pixel, at the image's size.</returns>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired, or the <c>MLContext</c> the
    /// model was trained or loaded through was cancelled with <c>CancelExecution</c>.</exception>
    public SegmentationMask Predict(MLImage image, CancellationToken cancellationToken = default)
    {
        Host.CheckValue(image, nameof(image));
        return _predictor.Predict(image, () =>
        {
            Host.CheckAlive();
            cancellationToken.ThrowIfCancellationRequested();
        });
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
        return SegmentationEvaluation.AnalyzeFeatureConsistency(Host, data, _settings.ImageColumnName, labelColumnName,
            _settings.NumberOfClasses, _settings.IgnoreIndex, image =>
            {
                var rgb = ImageTensorConverter.ToTensor(image).unsqueeze(0).to(_predictor.Device);
                return _predictor.WithNetwork(network =>
                {
                    network.eval();
                    return network.DecoderFeatures(rgb).cpu();
                });
            });
    }

    /// <summary>Releases the network's native memory.</summary>
    public void Dispose()
    {
        _predictor.Dispose();
        _network.Dispose();
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
        _predictor.WithNetwork(network =>
        {
            Onnx.OnnxExport.ToStream(network, _settings.ClassNames, destination);
            return true;
        });
    }

    /// <summary>
    /// Writes the model as an ONNX file at <paramref name="path"/> (see <see cref="ExportToOnnx(Stream)"/>). The file
    /// is written under a temporary name and moved into place, so a failed export leaves no partial file.
    /// </summary>
    /// <param name="path">The .onnx file to create or replace; its folder must exist.</param>
    /// <exception cref="IOException">The folder is missing or not writable.</exception>
    public void ExportToOnnx(string path)
    {
        _predictor.WithNetwork(network =>
        {
            Onnx.OnnxExport.ToFile(network, _settings.ClassNames, path);
            return true;
        });
    }
}
