namespace MLNetFreqFusion.Native;

/// <summary>
/// Runs a young-generation garbage collection once enough pixels have gone through a network since the last one, so
/// that the native scalars TorchSharp leaves to finalizers are freed while they are few.
/// </summary>
/// <remarks>
/// TorchSharp turns every scalar operand into a <c>Scalar</c> that owns a native <c>at::Scalar</c> (a few dozen bytes
/// of C heap), among them the implicit alpha of every tensor addition, and frees it only in its finalizer. A network
/// call makes a few hundred of them and allocates little managed memory besides, so hundreds of calls can pass without
/// a collection. Meanwhile the small blocks stay in the C heap between the large tensor buffers each call frees, glibc
/// cannot merge those buffers into blocks large enough for the next call, and every call takes fresh pages from the
/// kernel: a 512² FreqFusion prediction loop grew by about 100 MB a call to 4 GB of resident memory and page-faulted
/// 25,000 times a call; a 512² batch-2 training loop grew past 4.7 GB (docs/benchmarks.md §17). One gen-0 collection
/// after the call (1–3 ms measured there) stops both. Counting pixels keeps its share small for small images, whose
/// buffers and holes are small too: 2¹⁶ pixels is one 256² image (a 96² batch of 8 is a little more).
/// </remarks>
internal static class FinalizedScalars
{
    /// <summary>Pixels (images × height × width) through the network between two collections.</summary>
    internal const long PixelsPerCollection = 1 << 16;

    static long s_pixels, s_collections;

    /// <summary>Collections run so far by <see cref="AfterNetworkCall(long)"/> in this process.</summary>
    internal static long Collections => Interlocked.Read(ref s_collections);

    /// <summary>Counts the pixels of a finished network call on <paramref name="images"/> [B, C, H, W] (see <see cref="AfterNetworkCall(long)"/>).</summary>
    internal static bool AfterNetworkCall(TorchSharp.torch.Tensor images) =>
        AfterNetworkCall(images.shape[0] * images.shape[2] * images.shape[3]);

    /// <summary>Counts the pixels of a finished network call (forward, or forward and backward) and collects when they reach <see cref="PixelsPerCollection"/>.</summary>
    /// <param name="pixels">Images × height × width of the call's input.</param>
    /// <returns>Whether a collection ran.</returns>
    internal static bool AfterNetworkCall(long pixels)
    {
        if (Interlocked.Add(ref s_pixels, pixels) < PixelsPerCollection)
            return false;
        Interlocked.Exchange(ref s_pixels, 0);
        // Gen 0 is enough (the scalars die young) and costs a fraction of a full collection; it must run here, between
        // native calls, rather than be left to a collection another thread starts in the middle of one
        // (docs/decisions.md, TorchSharp's Scalar lifetime).
        GC.Collect(0, GCCollectionMode.Forced, blocking: true);
        Interlocked.Increment(ref s_collections);
        return true;
    }
}
