using BenchmarkDotNet.Attributes;
using Microsoft.ML.Data;
using MLNetFreqFusion.Benchmarks.Infrastructure;
using MLNetFreqFusion.Data;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Benchmarks;

/// <summary>
/// Issue 9, item 4: the data path alone — PNG decode of image and mask, then tensors batched 8 at a time — on 64
/// digits-seg training pairs (64×84). Times are per image (OperationsPerInvoke = 64); Op/s is images per second.
/// </summary>
public class DataPathBenchmarks
{
    const int Images = 64, BatchSize = 8;
    (string Image, string Mask)[] _pairs = null!;

    /// <summary>Lists the sample pairs copied next to the benchmark binary.</summary>
    [GlobalSetup]
    public void Setup()
    {
        string root = Path.Combine(AppContext.BaseDirectory, "Data", "digits-seg");
        _pairs = Directory.GetFiles(Path.Combine(root, "images"), "*.png").Order(StringComparer.Ordinal)
            .Select(image => (image, Path.Combine(root, "masks", Path.GetFileName(image))))
            .ToArray();
        if (_pairs.Length != Images || _pairs.Any(p => !File.Exists(p.Mask)))
            throw new InvalidOperationException($"Expected {Images} image/mask pairs under {root}; found {_pairs.Length}.");
    }

    /// <summary>Probes the peak memory of one pass over the 64 pairs.</summary>
    [GlobalCleanup(Target = nameof(DecodeAndBatch))]
    public void CleanupDecodeAndBatch() => PeakMemory.Probe(this, nameof(DecodeAndBatch), DecodeAndBatch);

    /// <summary>Decode image and mask, convert, stack into [8, 3, H, W] float32 and [8, H, W] int64.</summary>
    [Benchmark(OperationsPerInvoke = Images)]
    public void DecodeAndBatch()
    {
        for (int start = 0; start < Images; start += BatchSize)
        {
            using var scope = NewDisposeScope();
            var images = new List<MLImage>(BatchSize);
            var masks = new List<SegmentationMask>(BatchSize);
            try
            {
                for (int i = start; i < start + BatchSize; i++)
                {
                    images.Add(MLImage.CreateFromFile(_pairs[i].Image));
                    masks.Add(MaskDecoder.Decode(_pairs[i].Mask));
                }
                _ = ImageTensorConverter.ToBatch(images);
                _ = ImageTensorConverter.ToBatch(masks);
            }
            finally
            {
                foreach (var image in images)
                    image.Dispose();
            }
        }
    }
}
