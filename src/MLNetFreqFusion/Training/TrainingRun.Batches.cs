using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetFreqFusion.Data;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Training;

// The training data as shuffled, augmented batches on the training device.
internal sealed partial class TrainingRun
{
    sealed class Batch : IDisposable
    {
        public required Tensor Images { get; init; }
        public required Tensor Labels { get; init; }
        public required int Count { get; init; }
        public void Dispose() { Images.Dispose(); Labels.Dispose(); }
    }

    /// <summary>
    /// The epoch's batches, made on the training thread. A second thread that decoded and augmented the next batch
    /// while the network trained saved about 6 % of an epoch, but it allocates while the training thread is inside
    /// libtorch, and TorchSharp 0.107 lets the garbage collector finalise the temporary Scalars of an operation that
    /// is still reading them: two training runs of twelve died in libtorch (docs/decisions.md).
    /// </summary>
    IEnumerable<Batch> Batches(IDataView input, int epoch)
    {
        var images = new List<Tensor>(_o.BatchSize);
        var labels = new List<Tensor>(_o.BatchSize);
        foreach (var (image, mask) in Shuffled(input, new Random(unchecked(_seed + epoch))))
        {
            using (image)
            using (var scope = NewDisposeScope())
            {
                var (augmentedImage, augmentedMask) = SegmentationAugmenter.Apply(ImageTensorConverter.ToTensor(image), ImageTensorConverter.ToTensor(mask), _o.Augmentation, _o.IgnoreIndex, _random);
                images.Add(augmentedImage.MoveToOuterDisposeScope());
                labels.Add(augmentedMask.MoveToOuterDisposeScope());
            }
            if (images.Count == _o.BatchSize)
                yield return Collate(images, labels);
        }
        if (images.Count > 0)
            yield return Collate(images, labels);
    }

    Batch Collate(List<Tensor> images, List<Tensor> labels)
    {
        Batch batch;
        // The scope also frees the stacked CPU tensors when moving to another device makes copies of them.
        using (var scope = NewDisposeScope())
        {
            batch = new Batch
            {
                Images = stack(images).to(_device).MoveToOuterDisposeScope(),
                Labels = stack(labels).to(_device).MoveToOuterDisposeScope(),
                Count = images.Count,
            };
        }
        foreach (var t in images.Concat(labels)) t.Dispose();
        images.Clear();
        labels.Clear();
        return batch;
    }

    /// <summary>
    /// The rows in a seeded random order through a pool of <see cref="ShufflePoolSize"/> rows, as ML.NET's own
    /// shuffling does; ML.NET's RowShufflingTransformer itself cannot be used because it drops image columns.
    /// Images are decoded lazily by the cursor, so memory holds at most the pool.
    /// </summary>
    IEnumerable<(MLImage Image, SegmentationMask Mask)> Shuffled(IDataView input, Random random)
    {
        var pool = new List<(MLImage, SegmentationMask)>(ShufflePoolSize);
        foreach (var (_, rowImage, mask) in SegmentationRows.ImagesAndMasks(_host, input, _o.ImageColumnName, _o.LabelColumnName, _imageCheck))
        {
            // The pool outlives the cursor row the image came from; an image column's getter may dispose or reuse
            // its MLImage when the cursor moves, so the pool keeps its own copy of the pixels.
            var image = MLImage.CreateFromPixels(rowImage.Width, rowImage.Height, rowImage.PixelFormat, rowImage.Pixels);
            if (pool.Count < ShufflePoolSize)
            {
                pool.Add((image, mask));
                continue;
            }
            int pick = random.Next(pool.Count);
            var chosen = pool[pick];
            pool[pick] = (image, mask);
            yield return chosen;
        }
        while (pool.Count > 0)
        {
            int pick = random.Next(pool.Count);
            var chosen = pool[pick];
            pool[pick] = pool[^1];
            pool.RemoveAt(pool.Count - 1);
            yield return chosen;
        }
    }

    const int ShufflePoolSize = 1000;
}
