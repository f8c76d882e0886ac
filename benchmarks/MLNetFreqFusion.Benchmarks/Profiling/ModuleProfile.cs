using System.Diagnostics;
using MLNetFreqFusion.Fusion;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Benchmarks.Profiling;

/// <summary>
/// <c>profile module-ab --experiment E [--steps N]</c>: the FreqFusion module alone at <see cref="FreqFusionStageBenchmarks"/>'s
/// stages (the module goal), its forward without autograd and its forward + backward, with the current
/// formulation (A) and the experiment's (B) in alternation: N rounds of 9 calls each way, the median call of each round.
/// </summary>
static class ModuleProfile
{
    public static void Alternate(Action<bool>[] toggles, int rounds)
    {
        Action<bool> toggle = on => Array.ForEach(toggles, t => t(on));
        Console.WriteLine("| stage | pass | A ms | B ms | B/A median (min, max; mean ± s.e.) |");
        Console.WriteLine("|---|---|---:|---:|---:|");
        foreach (var stage in FreqFusionStageBenchmarks.Stages)
        {
            manual_seed(9);
            using var module = new FreqFusion(new FreqFusionOptions
            {
                HrChannels = stage.HrChannels,
                LrChannels = stage.LrChannels,
                CompressedChannels = stage.CompressedChannels,
                FeatureResample = true,
            });
            using var hr = randn(1, stage.HrChannels, stage.HrSize, stage.HrSize);
            using var lr = randn(1, stage.LrChannels, stage.HrSize / 2, stage.HrSize / 2);
            using var hrGrad = randn(1, stage.HrChannels, stage.HrSize, stage.HrSize);
            using var lrGrad = randn(1, stage.LrChannels, stage.HrSize, stage.HrSize);
            Action forward = () =>
            {
                module.eval();
                using var noGrad = no_grad();
                _ = module.call(hr, lr);
            };
            Action forwardBackward = () =>
            {
                module.train();
                var (_, hrOut, lrOut) = module.call(hr.detach().requires_grad_(), lr.detach().requires_grad_());
                autograd.backward([hrOut, lrOut], [hrGrad, lrGrad]);
                module.zero_grad();
            };
            foreach (var (pass, call) in new[] { ("forward", forward), ("forward + backward", forwardBackward) })
            {
                var (a, b, ratios) = (new List<double>(), new List<double>(), new List<double>());
                for (int round = 0; round <= rounds; round++)
                {
                    toggle(false);
                    double ta = MedianCall(call);
                    toggle(true);
                    double tb = MedianCall(call);
                    toggle(false);
                    if (round == 0)
                        continue;
                    (a, b, ratios) = ([.. a, ta], [.. b, tb], [.. ratios, tb / ta]);
                }
                double mean = ratios.Average(), se = Math.Sqrt(ratios.Sum(r => (r - mean) * (r - mean)) / Math.Max(1, ratios.Count - 1) / ratios.Count);
                Console.WriteLine($"| {stage} | {pass} | {StepProfile.Median(a):F2} | {StepProfile.Median(b):F2} | " +
                    $"**{StepProfile.Median(ratios):F3}** ({ratios.Min():F3}, {ratios.Max():F3}; {mean:F3} ± {se:F3}) |");
            }
        }
    }

    static double MedianCall(Action call)
    {
        var times = new double[9];
        for (int i = 0; i < times.Length; i++)
        {
            var clock = Stopwatch.StartNew();
            using (NewDisposeScope())
                call();
            times[i] = clock.Elapsed.TotalMilliseconds;
            Native.FinalizedScalars.AfterNetworkCall(2L * 65536);
        }
        Array.Sort(times);
        return times[times.Length / 2];
    }
}
