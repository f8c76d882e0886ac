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
    /// The epoch's batches, made on a second thread while the network trains on the previous ones: decoding,
    /// augmenting and stacking would otherwise take about a third of each step of a small network on the training
    /// thread. At most <see cref="PrefetchedBatches"/> wait; an exception of the producer (a bad row) is rethrown here
    /// unchanged, and leaving the loop early (cancellation, divergence) stops the producer and frees what it made.
    /// </summary>
    IEnumerable<Batch> Prefetched(IDataView input, int epoch)
    {
        using var queue = new System.Collections.Concurrent.BlockingCollection<Batch>(PrefetchedBatches);
        using var stop = new CancellationTokenSource();
        System.Runtime.ExceptionServices.ExceptionDispatchInfo? failure = null;
        var producer = new Thread(() =>
        {
            try
            {
                foreach (var batch in Batches(input, epoch))
                {
                    try { queue.Add(batch, stop.Token); }
                    catch (OperationCanceledException) { batch.Dispose(); return; }
                }
            }
            catch (Exception e) { failure = System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e); }
            finally { queue.CompleteAdding(); }
        })
        { IsBackground = true, Name = "MLNetFreqFusion batches" };
        producer.Start();
        try
        {
            foreach (var batch in queue.GetConsumingEnumerable())
                yield return batch;
            producer.Join();
            failure?.Throw();
        }
        finally
        {
            stop.Cancel();
            producer.Join();
            while (queue.TryTake(out var left))
                left.Dispose();
        }
    }

    const int PrefetchedBatches = 2;

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
