using System.Runtime.ExceptionServices;

namespace MLNetFreqFusion.Inference;

/// <summary>
/// One background thread that runs a model's predictions, whichever thread asks for them, so that the network's
/// tensors are always allocated by the same thread.
/// </summary>
/// <remarks>
/// glibc gives each thread that allocates its own memory arena (up to 8 per core) and an arena keeps what is freed in it.
/// A web service's requests arrive on whichever thread-pool thread is free, so each of a dozen threads ended up holding
/// a prediction's working set: the web sample peaked at 6.9 GiB under 160 mixed requests, 16 at a time, on the 2-core
/// host of docs/benchmarks.md §18, and at 1.5–1.7 GiB with the predictions on one thread, below what
/// <c>MALLOC_ARENA_MAX=2</c> in the environment reached (2.6 GiB). That variable has to be set before the process starts;
/// <c>mallopt</c> after start changed nothing there. The predictions ran one at a time before too (TorchSharp modules
/// are not safe to run from several threads), so handing them over costs no throughput.
/// </remarks>
internal sealed class NetworkThread : IDisposable
{
    readonly Queue<Action> _queue = new();
    readonly string _name;
    Thread? _thread;
    bool _disposed;

    public NetworkThread(string name) => _name = name;

    /// <summary>Whether the thread has started and not yet ended.</summary>
    internal bool IsRunning => _thread is { IsAlive: true };

    /// <summary>Work handed over and not yet started.</summary>
    internal int Waiting
    {
        get { lock (_queue) return _queue.Count; }
    }

    /// <summary>Runs <paramref name="work"/> on the thread (started at the first call) and returns its result or rethrows its exception.</summary>
    /// <exception cref="ObjectDisposedException">The thread was stopped with <see cref="Dispose"/>.</exception>
    public T Run<T>(Func<T> work)
    {
        // Only the thread itself can find itself here, and it never clears the field while it runs work.
        if (Thread.CurrentThread == _thread)
            return work();
        T result = default!;
        ExceptionDispatchInfo? failure = null;
        using var done = new ManualResetEventSlim();
        lock (_queue)
        {
            if (_disposed)
                throw new ObjectDisposedException(_name, "The model was disposed, so it cannot predict any more: dispose it only after its last prediction, or load it again (mlContext.Model.Load).");
            _queue.Enqueue(() =>
            {
                try { result = work(); }
                catch (Exception e) { failure = ExceptionDispatchInfo.Capture(e); }
                finally { done.Set(); }
            });
            if (_thread is null)
            {
                _thread = new Thread(Loop) { IsBackground = true, Name = _name };
                _thread.Start();
            }
            Monitor.Pulse(_queue);
        }
        done.Wait();
        failure?.Throw();
        return result;
    }

    void Loop()
    {
        while (RunNext()) { }
    }

    /// <summary>Runs the next piece of work, waiting for one; false once disposed with nothing left. The work is
    /// referenced from this frame only, so an abandoned model's last prediction does not keep it alive.</summary>
    bool RunNext()
    {
        Action work;
        lock (_queue)
        {
            while (_queue.Count == 0)
            {
                if (_disposed)
                    return false;
                Monitor.Wait(_queue);
            }
            work = _queue.Dequeue();
        }
        work();
        return true;
    }

    /// <summary>Lets the thread finish the predictions already handed over, then end; later calls throw.</summary>
    public void Dispose()
    {
        lock (_queue)
        {
            _disposed = true;
            Monitor.PulseAll(_queue);
        }
    }
}
