using BenchmarkDotNet.Attributes;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNetFreqFusion.Inference;
using MLNetFreqFusion.Networks;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Benchmarks;

/// <summary>
/// Prediction through <c>Transform</c> over an IDataView: the 64 digits-seg images (84×64, decoded beforehand) with
/// ResNet-18 + FreqFusion (11 classes, random weights), predicted one row per network call (InferenceBatchSize 1,
/// what a row-by-row transformer does) or eight consecutive rows per call. Times are per image
/// (OperationsPerInvoke = 64); Op/s is images per second.
/// </summary>
public class TransformBatchingBenchmarks
{
    const int Images = 64;
    MLContext _ml = null!;
    SemanticSegmentationTransformer _model = null!;
    IDataView _data = null!;
    MLImage[] _images = null!;

    /// <summary>Rows per network call.</summary>
    [Params(1, 8)]
    public int InferenceBatchSize { get; set; }

    /// <summary>One in-memory image.</summary>
    public sealed class Row
    {
        /// <summary>The decoded image.</summary>
        [AnySizeImageType]
        public MLImage Image { get; set; } = null!;
    }

    /// <summary>Decodes the images and builds the model.</summary>
    [GlobalSetup]
    public void Setup()
    {
        manual_seed(9);
        _ml = new MLContext(seed: 9);
        string root = Path.Combine(AppContext.BaseDirectory, "Data", "digits-seg", "images");
        _images = Directory.GetFiles(root, "*.png").Order(StringComparer.Ordinal).Select(MLImage.CreateFromFile).ToArray();
        if (_images.Length != Images)
            throw new InvalidOperationException($"Expected {Images} images under {root}; found {_images.Length}.");
        _data = _ml.Data.LoadFromEnumerable(_images.Select(image => new Row { Image = image }));
        var settings = new SegmentationModelSettings
        {
            Architecture = new SegmentationArchitecture { Backbone = SegmentationBackbone.ResNet18, Decoder = SegmentationDecoder.FreqFusion, NumberOfClasses = 11 },
            IgnoreIndex = 255, ClassNames = Enumerable.Range(0, 11).Select(i => i.ToString()).ToArray(),
            ImageColumnName = "Image", PredictedLabelColumnName = "PredictedLabel",
            Inference = new InferenceSettings { BatchSize = InferenceBatchSize },
        };
        var network = SegmentationNetwork.Create(settings.Architecture, loadPretrainedWeights: false);
        _model = new SemanticSegmentationTransformer((IHostEnvironment)_ml, settings, network);
    }

    /// <summary>Probes the peak memory of one pass, then releases everything.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        Infrastructure.PeakMemory.Probe(this, nameof(Transform), Transform);
        _model.Dispose();
        foreach (var image in _images)
            image.Dispose();
    }

    /// <summary>Transform, then read every predicted mask.</summary>
    [Benchmark(OperationsPerInvoke = Images)]
    public void Transform()
    {
        var scored = _model.Transform(_data);
        using var cursor = scored.GetRowCursor(new[] { scored.Schema["PredictedLabel"] });
        var getMask = cursor.GetGetter<SegmentationMask>(cursor.Schema["PredictedLabel"]);
        SegmentationMask mask = null!;
        int rows = 0;
        while (cursor.MoveNext())
        {
            getMask(ref mask);
            rows++;
        }
        if (rows != Images)
            throw new InvalidOperationException($"{rows} rows predicted, expected {Images}.");
    }
}
