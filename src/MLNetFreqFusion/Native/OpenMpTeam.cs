using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;

namespace MLNetFreqFusion.Native;

/// <summary>
/// Runs a loop of ours on libtorch's own OpenMP threads, the way ATen runs its operators (<c>#pragma omp parallel</c>
/// compiles to <c>GOMP_parallel</c>). On a 2-core host a second pool of threads next to libtorch's loses more than it
/// gains: libgomp's workers spin for a while after every ATen operator and .NET's workers after every parallel loop, so
/// each side's next parallel region waits for a thread the other side keeps busy (docs/benchmarks.md §14).
/// </summary>
internal static unsafe class OpenMpTeam
{
    static readonly delegate* unmanaged<delegate* unmanaged<IntPtr, void>, IntPtr, uint, uint, void> s_parallel;

    /// <summary>The libgomp libtorch loaded, or null where there is none (libtorch on Windows or macOS, or not loaded yet).</summary>
    public static string? Library { get; }

    static OpenMpTeam()
    {
        // libtorch ships its own libgomp under a hashed name; the one to use is whichever this process has mapped.
        Library = LoadedLibGomp();
        if (Library is null || !NativeLibrary.TryLoad(Library, out var handle)
            || !NativeLibrary.TryGetExport(handle, "GOMP_parallel", out var parallel))
        {
            Library = null;
            return;
        }
        s_parallel = (delegate* unmanaged<delegate* unmanaged<IntPtr, void>, IntPtr, uint, uint, void>)parallel;
    }

    static string? LoadedLibGomp()
    {
        if (!OperatingSystem.IsLinux())
            return null;
        try
        {
            foreach (var line in File.ReadLines("/proc/self/maps"))
            {
                int slash = line.IndexOf('/');
                if (slash >= 0 && Path.GetFileName(line.AsSpan(slash)).StartsWith("libgomp", StringComparison.Ordinal))
                    return line[slash..];
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }

    sealed class Loop(int count, Action<int> body)
    {
        public readonly int Count = count;
        public readonly Action<int> Body = body;
        public int Next;
        public ExceptionDispatchInfo? Error;
    }

    /// <summary>
    /// Calls <paramref name="body"/> once for each of 0..<paramref name="count"/> − 1, handed out one at a time to
    /// <paramref name="threads"/> threads: libtorch's OpenMP team where this process has one, otherwise .NET's thread
    /// pool. The first exception is rethrown on the calling thread once every thread has stopped.
    /// </summary>
    public static void For(int count, int threads, Action<int> body)
    {
        if (threads <= 1 || count <= 1)
        {
            for (int i = 0; i < count; i++)
                body(i);
            return;
        }
        if (Library is null)
        {
            Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = threads }, body);
            return;
        }
        var loop = new Loop(count, body);
        var handle = GCHandle.Alloc(loop);
        try
        {
            s_parallel(&Work, GCHandle.ToIntPtr(handle), (uint)threads, 0);
        }
        finally
        {
            handle.Free();
        }
        loop.Error?.Throw();
    }

    /// <summary>
    /// Calls <paramref name="rows"/>(image, first row, end row) for bands of <paramref name="rowsPerBand"/> rows of each
    /// of <paramref name="images"/> images <paramref name="height"/> rows high, on libtorch's intra-op thread count (the
    /// trainer's): the task split of the row-wise loops (CARAFE, local similarity).
    /// </summary>
    public static void ForRowBands(int images, int height, int rowsPerBand, Action<int, int, int> rows)
    {
        int bands = (height + rowsPerBand - 1) / rowsPerBand;
        For(images * bands, TorchSharp.torch.get_num_threads(), task =>
        {
            int y0 = task % bands * rowsPerBand;
            rows(task / bands, y0, Math.Min(height, y0 + rowsPerBand));
        });
    }

    /// <summary>Elements a thread is given at least: below this a parallel region costs more than it saves (ATen's grain size).</summary>
    public const long GrainSize = 32768;

    /// <summary>
    /// Calls <paramref name="run"/>(first, end) for contiguous runs of <paramref name="count"/> items of
    /// <paramref name="itemElements"/> elements each: one run per thread, and one run in all below
    /// <see cref="GrainSize"/> elements a thread. The split of single passes (the tap sums), where tasks of a
    /// few rows cost more than they save at the networks' sizes (docs/benchmarks.md §20).
    /// </summary>
    public static void ForRuns(long count, long itemElements, Action<long, long> run)
    {
        int runs = (int)Math.Clamp(count * itemElements / GrainSize, 1, TorchSharp.torch.get_num_threads());
        For(runs, runs, r => run(count * r / runs, count * (r + 1) / runs));
    }

    [UnmanagedCallersOnly]
    static void Work(IntPtr state)
    {
        var loop = (Loop)GCHandle.FromIntPtr(state).Target!;
        try
        {
            for (int i = Interlocked.Increment(ref loop.Next) - 1; i < loop.Count; i = Interlocked.Increment(ref loop.Next) - 1)
                loop.Body(i);
        }
        catch (Exception e)
        {
            // An exception must not unwind into libgomp; the others stop taking work and the caller rethrows.
            Interlocked.CompareExchange(ref loop.Error, ExceptionDispatchInfo.Capture(e), null);
            Volatile.Write(ref loop.Next, loop.Count);
        }
    }
}
