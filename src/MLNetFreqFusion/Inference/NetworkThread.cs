using System.Collections.Concurrent;
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
    readonly BlockingCollection<Action> _work = new();
    readonly string _name;
    Thread? _thread;

    public NetworkThread(string name) => _name = name;

    /// <summary>Runs <paramref name="work"/> on the thread (started at the first call) and returns its result or rethrows its exception.</summary>
    /// <exception cref="ObjectDisposedException">The thread was stopped with <see cref="Dispose"/>.</exception>
    public T Run<T>(Func<T> work)
    {
        var thread = Start();
        if (Thread.CurrentThread == thread)
            return work();
        T result = default!;
        ExceptionDispatchInfo? failure = null;
        using var done = new ManualResetEventSlim();
        try
        {
            _work.Add(() =>
            {
                try { result = work(); }
                catch (Exception e) { failure = ExceptionDispatchInfo.Capture(e); }
                finally { done.Set(); }
            });
        }
        catch (InvalidOperationException)
        {
            throw new ObjectDisposedException(_name, "The model was disposed; it cannot predict any more.");
        }
        done.Wait();
        failure?.Throw();
        return result;
    }

    Thread Start()
    {
        if (_thread is { } running)
            return running;
        lock (_work)
        {
            if (_thread is null)
            {
                var thread = new Thread(() =>
                {
                    foreach (var work in _work.GetConsumingEnumerable())
                        work();
                }) { IsBackground = true, Name = _name };
                thread.Start();
                _thread = thread;
            }
            return _thread;
        }
    }

    /// <summary>Lets the thread finish the predictions already handed over, then end; later calls throw.</summary>
    public void Dispose() => _work.CompleteAdding();
}
