using BenchmarkDotNet.Attributes;
using Microsoft.ML.Data;
using MLNetFreqFusion.Benchmarks.Infrastructure;
using MLNetFreqFusion.Data;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Benchmarks;

/// <summary>
/// Issue 9, item 4: the data path alone — PNG decode of image and mask, mmseg's training augmentation
/// (<see cref="SegmentationAugmenter"/>: ratio resize 0.5–2, crop with cat_max_ratio 0.75, flip, photometric
/// distortion, pad), then tensors batched 8 at a time — on 64 digits-seg training pairs (64×84), single-threaded
/// .NET code around libtorch ops. Times are per image (OperationsPerInvoke = 64); Op/s is images per second. Three
/// variants: no augmentation; augmentation to a 64×64 crop (the images' own scale); augmentation as for ADE20K at
/// 512×512 (base scale 2048×512, so every image is first resized to 512 pixels on its short side, then cropped).
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

    /// <summary>Probes the peak memory of one pass over the 64 pairs.</summary>
    [GlobalCleanup(Target = nameof(DecodeAugmentAndBatch64))]
    public void CleanupDecodeAugmentAndBatch64() => PeakMemory.Probe(this, nameof(DecodeAugmentAndBatch64), DecodeAugmentAndBatch64);

    /// <summary>Probes the peak memory of one pass over the 64 pairs.</summary>
    [GlobalCleanup(Target = nameof(DecodeAugmentAndBatch512))]
    public void CleanupDecodeAugmentAndBatch512() => PeakMemory.Probe(this, nameof(DecodeAugmentAndBatch512), DecodeAugmentAndBatch512);

    /// <summary>Decode, augment to a 64×64 crop, batch.</summary>
    [Benchmark(OperationsPerInvoke = Images)]
    public void DecodeAugmentAndBatch64() => DecodeAugmentAndBatch(new AugmentationOptions { CropHeight = 64, CropWidth = 64 });

    /// <summary>Decode, augment as for ADE20K (base scale 2048×512) to a 512×512 crop, batch.</summary>
    [Benchmark(OperationsPerInvoke = Images)]
    public void DecodeAugmentAndBatch512() =>
        DecodeAugmentAndBatch(new AugmentationOptions { BaseScale = (2048, 512), CropHeight = 512, CropWidth = 512 });

    void DecodeAugmentAndBatch(AugmentationOptions options)
    {
        var random = new Random(9);
        for (int start = 0; start < Images; start += BatchSize)
        {
            using var scope = NewDisposeScope();
            var images = new Tensor[BatchSize];
            var masks = new Tensor[BatchSize];
            for (int i = 0; i < BatchSize; i++)
            {
                var (imagePath, maskPath) = _pairs[start + i];
                using (var image = MLImage.CreateFromFile(imagePath))
                {
                    (images[i], masks[i]) = SegmentationAugmenter.Apply(
                        ImageTensorConverter.ToTensor(image), ImageTensorConverter.ToTensor(MaskDecoder.Decode(maskPath)), options, 255, random);
                }
            }
            _ = stack(images);
            _ = stack(masks);
        }
    }

    /// <summary>
    /// Decode image and mask, convert, stack into [8, 3, H, W] float32 and [8, H, W] int64 — the training batches'
    /// conversion and collation with the augmentation left out.
    /// </summary>
    [Benchmark(OperationsPerInvoke = Images)]
    public void DecodeAndBatch()
    {
        for (int start = 0; start < Images; start += BatchSize)
        {
            using var scope = NewDisposeScope();
            var images = new Tensor[BatchSize];
            var masks = new Tensor[BatchSize];
            for (int i = 0; i < BatchSize; i++)
            {
                var (imagePath, maskPath) = _pairs[start + i];
                using (var image = MLImage.CreateFromFile(imagePath))
                    images[i] = ImageTensorConverter.ToTensor(image);
                masks[i] = ImageTensorConverter.ToTensor(MaskDecoder.Decode(maskPath));
            }
            _ = stack(images);
            _ = stack(masks);
        }
    }
}
