using System.Runtime.InteropServices;

namespace MLNetFreqFusion.Native;

/// <summary>
/// Process-wide libtorch settings every network of this library needs, applied once before the first network runs.
/// </summary>
/// <remarks>
/// libtorch 2.10 routes most CPU convolutions through oneDNN (MKL-DNN) 3.7.1. On AVX-512 hosts (seen on AMD EPYC with
/// avx512f/bw/vl/vbmi) its convolution kernels return non-finite values at random in training — in one step out of a
/// few for the FreqFusion offset generator's 8-channel convolutions — after which <c>grid_sample</c>'s backward reads
/// out of bounds and kills the process. With oneDNN switched off (PyTorch's <c>torch.backends.mkldnn.enabled = False</c>,
/// which TorchSharp does not bind) ATen's own convolutions run instead and the same steps are finite and repeatable.
/// docs/decisions.md has the measurements. NNPACK goes off too: libtorch asks for it on every convolution once oneDNN is
/// off, and on CPUs it does not support (every AVX-512 host seen) each ask prints "Could not initialize NNPACK" —
/// thirteen thousand lines of stderr in one epoch of the sample — before falling back to the same ATen kernels.
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

    /// <summary>Whether oneDNN convolutions are on in this process (null where the switch cannot be reached).</summary>
    internal static bool? OneDnnEnabled { get; private set; }

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
                OneDnnEnabled = SwitchOffOneDnn();
            _configured = true;
        }
    }

    static bool SwitchOffOneDnn()
    {
        SetBackend(NNPackSwitch, enabled: false);
        return SetBackend(OneDnnSwitch, enabled: false);
    }

    const string OneDnnSwitch = "Mkldnn", NNPackSwitch = "NNPACK";

    /// <summary>
    /// Sets libtorch's user switch of one convolution backend (<c>at::Context::setUserEnabled{name}</c>) and returns
    /// its state read back. Internal so the benchmarks can time oneDNN against ATen's kernels in one process.
    /// </summary>
    internal static bool SetOneDnnForBenchmark(bool enabled) => SetBackend(OneDnnSwitch, enabled);

    static bool SetBackend(string name, bool enabled)
    {
        // TorchSharp has already loaded libtorch_cpu.so; dlopen by its soname returns that same library.
        if (!NativeLibrary.TryLoad("libtorch_cpu.so", out var library))
            throw new InvalidOperationException("libtorch_cpu.so is not loaded; create a TorchSharp tensor or module before building a network.");
        var globalContext = Export<GlobalContext>(library, "_ZN2at13globalContextEv");
        // Itanium mangling: the length-prefixed method name, then "Eb" (bool argument) or "Ev" (const, no argument).
        string setter = $"setUserEnabled{name}", getter = $"userEnabled{name}";
        var set = Export<SetUserEnabled>(library, $"_ZN2at7Context{setter.Length}{setter}Eb");
        var get = Export<UserEnabled>(library, $"_ZNK2at7Context{getter.Length}{getter}Ev");
        var context = globalContext();
        set(context, enabled);
        bool now = get(context);
        if (now != enabled)
            throw new InvalidOperationException($"libtorch kept its {name} switch {(now ? "on" : "off")} after it was set {(enabled ? "on" : "off")}.");
        return now;
    }

    [DllImport("libc", EntryPoint = "mallopt")]
    static extern int MallOpt(int parameter, int value);

    const int M_TRIM_THRESHOLD = -1, M_MMAP_MAX = -4;
    static bool _allocatorConfigured;

    /// <summary>
    /// Keeps the memory of freed tensors in the process for the next step instead of returning it to the kernel.
    /// </summary>
    /// <remarks>
    /// A training step frees and reallocates the same few hundred activation, gradient and optimizer buffers every
    /// step. glibc's defaults hand every buffer above a threshold that grows only to the largest freed block back to
    /// the kernel (mmap/munmap, heap trimming), so each step page-faults its memory in again: on the 2-core KVM host of
    /// docs/benchmarks.md that was a fifth of the sample's training time as kernel time (12 s of 56 s in one epoch).
    /// Every block now comes from the heap (no mmap at all: a 32 MiB threshold, glibc's ceiling for it, still mapped and
    /// faulted the 33–100 MB tensors of 512² batches afresh each step, 120–450 thousand faults a FreqFusion step;
    /// docs/benchmarks.md §12), and up to 1 GiB of free heap is kept. The price measured there is about 5 % more peak
    /// resident memory. Process-wide and permanent, so it is set by training only (a serving process keeps glibc's
    /// defaults; the concat head's large-image inference still pays page faults there, which a service can turn off
    /// through GLIBC_TUNABLES, docs/benchmarks.md §13 and the web sample's README); glibc on Linux only — elsewhere,
    /// and with another C library, nothing is changed.
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
                MallOpt(M_MMAP_MAX, 0);
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
