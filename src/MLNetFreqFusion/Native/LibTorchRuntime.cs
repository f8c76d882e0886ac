using System.Runtime.InteropServices;

namespace MLNetFreqFusion.Native;

/// <summary>
/// Process-wide libtorch settings every network of this library needs: oneDNN convolutions off except in predictions
/// while no training runs, and glibc's allocator tuned for training.
/// </summary>
/// <remarks>
/// libtorch 2.10 routes most CPU convolutions through oneDNN (MKL-DNN) 3.7.1. On AVX-512 hosts (seen on AMD EPYC with
/// avx512f/bw/vl/vbmi) its convolution backward returns non-finite values at random in training — in one step out of a
/// few for the FreqFusion offset generator's 8-channel convolutions — after which <c>grid_sample</c>'s backward reads
/// out of bounds and kills the process. With oneDNN switched off (PyTorch's <c>torch.backends.mkldnn.enabled = False</c>,
/// which TorchSharp does not bind) ATen's own convolutions run instead and the same steps are finite and repeatable.
/// Its forward is correct and several times faster than ATen's for the large convolutions of the decode heads, so
/// predictions switch it on for their duration unless a training run is active anywhere in the process (the switch is
/// one global of libtorch, and a training thread reads it on every convolution). docs/decisions.md has the
/// measurements. NNPACK goes off for good: libtorch asks for it on every convolution while oneDNN is off, and on CPUs
/// it does not support (every AVX-512 host seen) each ask prints "Could not initialize NNPACK" — thirteen thousand
/// lines of stderr in one epoch of the sample — before falling back to the same ATen kernels.
/// </remarks>
internal static class LibTorchRuntime
{
    static readonly object Gate = new();
    static bool _configured;

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    delegate IntPtr GlobalContext();

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    delegate void SetUserEnabled(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool enabled);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    [return: MarshalAs(UnmanagedType.U1)]
    delegate bool UserEnabled(IntPtr context);

    /// <summary>libtorch's oneDNN switch; null until configured, and where it cannot be reached (not Linux x64).</summary>
    static BackendSwitch? s_oneDnn;

    /// <summary>Training runs and predictions in progress; both change only under <see cref="Gate"/>.</summary>
    static int s_trainingRuns, s_predictions;

    /// <summary>
    /// Whether oneDNN convolutions are on in this process now, read from libtorch (null where the switch cannot be
    /// reached: there oneDNN stays on).
    /// </summary>
    internal static bool? OneDnnEnabled => s_oneDnn?.Get();

    /// <summary>Switches libtorch's oneDNN convolutions off, once per process; call after TorchSharp has loaded libtorch.</summary>
    /// <exception cref="InvalidOperationException">libtorch is loaded but does not export the switch (an unexpected libtorch build).</exception>
    internal static void EnsureConfigured()
    {
        if (_configured)
            return;
        lock (Gate)
        {
            if (_configured)
                return;
            // The Itanium C++ names below are libtorch's on Linux; elsewhere (MSVC's names) the switch is not reached
            // and oneDNN stays on: the failure was seen on Linux, and docs/decisions.md says so.
            if (OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64)
            {
                BackendSwitch.Find(NNPackSwitch).Set(false);
                s_oneDnn = BackendSwitch.Find(OneDnnSwitch);
                s_oneDnn.Set(false);
            }
            _configured = true;
        }
    }

    /// <summary>
    /// Marks a training run in progress until disposed: oneDNN goes off at once (also under a prediction already
    /// running on another thread, which finishes on ATen's kernels) and no prediction switches it on before every
    /// training run of the process has ended. Covers the run's validation passes too.
    /// </summary>
    internal static IDisposable BeginTraining()
    {
        EnsureConfigured();
        lock (Gate)
        {
            s_trainingRuns++;
            s_oneDnn?.Set(false);
        }
        return new Scope(EndTraining);
    }

    static void EndTraining()
    {
        lock (Gate)
            s_trainingRuns--;
        // Stays off: the next prediction switches it on.
    }

    /// <summary>
    /// Marks a forward pass without gradients in progress until disposed: oneDNN convolutions are on for it when no
    /// training run is in progress, and off again once the last prediction has ended, so that code outside a
    /// prediction (a backward pass in particular) never sees them.
    /// </summary>
    /// <exception cref="InvalidOperationException">Autograd is recording: oneDNN's backward is the part that fails.</exception>
    internal static IDisposable BeginPrediction()
    {
        if (TorchSharp.torch.is_grad_enabled())
            throw new InvalidOperationException("A prediction must run without autograd (inside torch.no_grad()): oneDNN convolutions are switched on for predictions, and their backward gives wrong gradients on some hosts.");
        EnsureConfigured();
        lock (Gate)
        {
            s_predictions++;
            if (s_trainingRuns == 0)
                s_oneDnn?.Set(true);
        }
        return new Scope(EndPrediction);
    }

    static void EndPrediction()
    {
        lock (Gate)
        {
            if (--s_predictions == 0)
                s_oneDnn?.Set(false);
        }
    }

    sealed class Scope(Action end) : IDisposable
    {
        int _ended;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _ended, 1) == 0)
                end();
        }
    }

    const string OneDnnSwitch = "Mkldnn", NNPackSwitch = "NNPACK";

    /// <summary>
    /// Sets libtorch's oneDNN switch and returns its state read back, outside the training and prediction counts.
    /// Internal so the benchmarks can time and compare oneDNN against ATen's kernels in one process.
    /// </summary>
    internal static bool SetOneDnnForBenchmark(bool enabled)
    {
        EnsureConfigured();
        var oneDnn = s_oneDnn ?? throw new PlatformNotSupportedException("libtorch's oneDNN switch is reached on Linux x64 only.");
        lock (Gate)
            oneDnn.Set(enabled);
        return oneDnn.Get();
    }

    /// <summary>One of libtorch's user switches of a convolution backend, <c>at::Context::setUserEnabled{name}</c>.</summary>
    sealed class BackendSwitch
    {
        readonly IntPtr _context;
        readonly SetUserEnabled _set;
        readonly UserEnabled _get;
        readonly string _name;

        BackendSwitch(IntPtr context, SetUserEnabled set, UserEnabled get, string name) =>
            (_context, _set, _get, _name) = (context, set, get, name);

        public static BackendSwitch Find(string name)
        {
            // TorchSharp has already loaded libtorch_cpu.so; dlopen by its soname returns that same library.
            if (!NativeLibrary.TryLoad("libtorch_cpu.so", out var library))
                throw new InvalidOperationException("libtorch_cpu.so is not loaded; create a TorchSharp tensor or module before building a network.");
            var globalContext = Export<GlobalContext>(library, "_ZN2at13globalContextEv");
            // Itanium mangling: the length-prefixed method name, then "Eb" (bool argument) or "Ev" (const, no argument).
            string setter = $"setUserEnabled{name}", getter = $"userEnabled{name}";
            return new BackendSwitch(globalContext(), Export<SetUserEnabled>(library, $"_ZN2at7Context{setter.Length}{setter}Eb"),
                Export<UserEnabled>(library, $"_ZNK2at7Context{getter.Length}{getter}Ev"), name);
        }

        public bool Get() => _get(_context);

        public void Set(bool enabled)
        {
            _set(_context, enabled);
            if (_get(_context) != enabled)
                throw new InvalidOperationException($"libtorch kept its {_name} switch {(enabled ? "off" : "on")} after it was set {(enabled ? "on" : "off")}.");
        }
    }

    [DllImport("libc", EntryPoint = "mallopt")]
    static extern int MallOpt(int parameter, int value);

    const int M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3;
    static bool _allocatorConfigured;

    /// <summary>
    /// Keeps the memory of freed tensors in the process for the next step instead of returning it to the kernel.
    /// </summary>
    /// <remarks>
    /// A training step frees and reallocates the same few hundred activation, gradient and optimizer buffers every
    /// step. glibc's defaults hand every buffer above a threshold that grows only to the largest freed block back to
    /// the kernel (mmap/munmap, heap trimming), so each step page-faults its memory in again: on the 2-core KVM host of
    /// docs/benchmarks.md that was a fifth of the sample's training time as kernel time (12 s of 56 s in one epoch).
    /// Blocks below 32 MiB (glibc's ceiling for this setting) now come from the heap, and up to 1 GiB of free heap is
    /// kept. Process-wide and permanent, so it is set by training only (a serving process keeps glibc's defaults);
    /// glibc on Linux only — elsewhere, and with another C library, nothing is changed.
    /// </remarks>
    internal static void KeepFreedMemoryForTraining()
    {
        if (_allocatorConfigured || !OperatingSystem.IsLinux())
            return;
        lock (Gate)
        {
            if (_allocatorConfigured)
                return;
            _allocatorConfigured = true;
            try
            {
                // mallopt returns 1 on success; a C library without it (musl) leaves the defaults.
                MallOpt(M_MMAP_THRESHOLD, 32 << 20);
                MallOpt(M_TRIM_THRESHOLD, 1 << 30);
            }
            catch (EntryPointNotFoundException) { }
            catch (DllNotFoundException) { }
        }
    }

    static T Export<T>(IntPtr library, string name) where T : Delegate =>
        NativeLibrary.TryGetExport(library, name, out var address)
            ? Marshal.GetDelegateForFunctionPointer<T>(address)
            : throw new InvalidOperationException(
                $"libtorch_cpu.so does not export {name}, which MLNetFreqFusion uses to switch oneDNN and NNPACK convolutions off. " +
                "Use the libtorch version the MLNetFreqFusion package references (see docs/linux.md).");
}
