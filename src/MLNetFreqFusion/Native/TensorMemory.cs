using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Native;

/// <summary>
/// The address of a tensor's first element, for the few operators that run their own loops over libtorch's memory
/// (<see cref="Operators.CarafeLoops"/>). TorchSharp copies data out (<c>data&lt;T&gt;().ToArray()</c>) but does not
/// hand out the pointer; its native library exports <c>THSTensor_data</c> (<c>at::Tensor::data_ptr</c>) for its own
/// accessors, and the same library is already loaded by the time a tensor exists.
/// </summary>
internal static unsafe class TensorMemory
{
    [DllImport("LibTorchSharp", EntryPoint = "THSTensor_data")]
    static extern IntPtr Data(IntPtr tensor);

    /// <summary>The first element of a contiguous float32 CPU tensor, which must stay alive while the pointer is used.</summary>
    /// <exception cref="ArgumentException">The tensor is not float32, not on the CPU or not contiguous.</exception>
    public static float* Floats(Tensor t) => Elements<float>(t);

    /// <summary>The first element of a contiguous CPU tensor of <typeparamref name="T"/> (float or double), which must stay alive while the pointer is used.</summary>
    /// <exception cref="ArgumentException">The tensor is not of that type, not on the CPU or not contiguous.</exception>
    public static T* Elements<T>(Tensor t) where T : unmanaged
    {
        var expected = typeof(T) == typeof(double) ? ScalarType.Float64 : ScalarType.Float32;
        if ((typeof(T) != typeof(float) && typeof(T) != typeof(double)) || t.dtype != expected || t.device_type != DeviceType.CPU || !t.is_contiguous())
            throw new ArgumentException($"Raw access as {typeof(T).Name} needs a contiguous {expected} CPU tensor; got {t.dtype} on {t.device_type}, contiguous: {t.is_contiguous()}.", nameof(t));
        return (T*)Data(t.Handle);
    }
}
