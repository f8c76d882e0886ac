using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Benchmarks.Infrastructure;

/// <summary>
/// Counts the floating-point operations of the convolutions and linear layers of one forward pass (multiply-add = 2,
/// bias adds ignored) with forward hooks. Element-wise work, normalisation, CARAFE's weighted sums and attention's
/// functional matmuls are not counted, so the resulting GFLOP/s is a lower bound of the work actually done.
/// </summary>
static class FlopCounter
{
    public static double CountForward(nn.Module root, Action forward)
    {
        double flops = 0;
        var removers = new List<Action>();
        foreach (var (_, module) in root.named_modules())
        {
            switch (module)
            {
                case Conv2d conv:
                    var convHook = conv.register_forward_hook((m, input, output) =>
                    {
                        var weight = ((Conv2d)m).weight!;
                        // weight [Cout, Cin/groups, kh, kw]: every output element costs Cin/groups·kh·kw multiply-adds.
                        flops += 2.0 * output.numel() * (weight.numel() / weight.shape[0]);
                        return null!;
                    });
                    removers.Add(convHook.remove);
                    break;
                case Linear linear:
                    var linearHook = linear.register_forward_hook((m, input, output) =>
                    {
                        var weight = ((Linear)m).weight!;
                        flops += 2.0 * output.numel() * weight.shape[1];
                        return null!;
                    });
                    removers.Add(linearHook.remove);
                    break;
            }
        }
        try
        {
            using (no_grad())
                forward();
        }
        finally
        {
            foreach (var remove in removers)
                remove();
        }
        return flops;
    }
}
