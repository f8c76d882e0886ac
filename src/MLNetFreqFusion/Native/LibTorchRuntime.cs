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
/// docs/decisions.md has the measurements.
/// </remarks>
internal static class LibTorchRuntime
{
    static readonly object Gate = new();
    static bool _configured;

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    delegate IntPtr GlobalContext();

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    delegate void SetUserEnabledMkldnn(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool enabled);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    [return: MarshalAs(UnmanagedType.U1)]
    delegate bool UserEnabledMkldnn(IntPtr context);

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
        // TorchSharp has already loaded libtorch_cpu.so; dlopen by its soname returns that same library.
        if (!NativeLibrary.TryLoad("libtorch_cpu.so", out var library))
            throw new InvalidOperationException("libtorch_cpu.so is not loaded; create a TorchSharp tensor or module before building a network.");
        var globalContext = Export<GlobalContext>(library, "_ZN2at13globalContextEv");
        var setEnabled = Export<SetUserEnabledMkldnn>(library, "_ZN2at7Context20setUserEnabledMkldnnEb");
        var isEnabled = Export<UserEnabledMkldnn>(library, "_ZNK2at7Context17userEnabledMkldnnEv");
        var context = globalContext();
        setEnabled(context, false);
        bool enabled = isEnabled(context);
        if (enabled)
            throw new InvalidOperationException("libtorch kept oneDNN convolutions on after they were switched off.");
        return enabled;
    }

    static T Export<T>(IntPtr library, string name) where T : Delegate =>
        NativeLibrary.TryGetExport(library, name, out var address)
            ? Marshal.GetDelegateForFunctionPointer<T>(address)
            : throw new InvalidOperationException(
                $"libtorch_cpu.so does not export {name}, which MLNetFreqFusion uses to switch oneDNN convolutions off. " +
                "Use the libtorch version the MLNetFreqFusion package references (see docs/linux.md).");
}
