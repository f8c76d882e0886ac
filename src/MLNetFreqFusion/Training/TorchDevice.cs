using Microsoft.ML;
using Microsoft.ML.Runtime;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Training;

/// <summary>The device from MLContext.GpuDeviceId and FallbackToCpu, as ML.NET's own TorchSharp trainers choose it.</summary>
internal static class TorchDevice
{
    public static Device Resolve(IHostEnvironment env, IChannel? ch)
    {
        var settings = (IHostEnvironmentInternal)env;
        if (settings.GpuDeviceId is not int id)
            return CPU;
        if (cuda.is_available())
            return device(TorchSharp.DeviceType.CUDA, id);
        if (settings.FallbackToCpu)
        {
            ch?.Warning($"MLContext.GpuDeviceId is {id} but CUDA is not available to TorchSharp; training on the CPU because FallbackToCpu is set.");
            return CPU;
        }
        throw env.Except($"MLContext.GpuDeviceId is {id} but CUDA is not available to TorchSharp. Reference TorchSharp-cuda-windows " +
            "(docs/gpu.md), or set MLContext.FallbackToCpu = true to train on the CPU.");
    }
}
