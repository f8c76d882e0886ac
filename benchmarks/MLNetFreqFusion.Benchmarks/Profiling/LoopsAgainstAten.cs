using System.Diagnostics;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Benchmarks.Profiling;

/// <summary>
/// An operator timed with its loops (A) and with the ATen formulation the library keeps for other cases (B), call by
/// call in alternation, so that a drifting machine moves both: medians of N pairs after two warm-up pairs, in ms, and
/// the median of B / A.
/// </summary>
static class LoopsAgainstAten
{
    /// <param name="steps">Measured pairs.</param>
    /// <param name="useLoops">Switches the operator's loops on (true) or off.</param>
    /// <param name="call">One call of the operator; each runs in a dispose scope of its own.</param>
    public static (double A, double B, double Ratio) Alternate(int steps, Action<bool> useLoops, Action call)
    {
        var (a, b, ratios) = (new List<double>(), new List<double>(), new List<double>());
        try
        {
            for (int i = -2; i < steps; i++)
            {
                double timeA = Time(true, useLoops, call), timeB = Time(false, useLoops, call);
                if (i < 0)
                    continue;
                a.Add(timeA);
                b.Add(timeB);
                ratios.Add(timeB / timeA);
            }
        }
        finally
        {
            useLoops(true);
        }
        return (StepProfile.Median(a), StepProfile.Median(b), StepProfile.Median(ratios));
    }

    static double Time(bool loops, Action<bool> useLoops, Action call)
    {
        useLoops(loops);
        using var scope = NewDisposeScope();
        long start = Stopwatch.GetTimestamp();
        call();
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }
}
