namespace MLNetFreqFusion.Training;

/// <summary>
/// SegFormer's schedule: linear warmup from <c>warmupRatio × lr</c> to lr over the warmup steps, then polynomial
/// decay <c>(1 − step/total)^power</c> towards <c>minLearningRateRatio × lr</c> (mmcv's PolyLrUpdaterHook with
/// linear warmup, as in the FreqFusion SegFormer/SegNeXt configurations).
/// </summary>
internal sealed class LearningRateSchedule
{
    readonly int _totalSteps, _warmupSteps;
    readonly double _power, _warmupRatio, _minRatio;

    public LearningRateSchedule(int totalSteps, int warmupSteps, double power, double warmupRatio = 1e-6, double minRatio = 0)
    {
        _totalSteps = Math.Max(1, totalSteps);
        _warmupSteps = Math.Clamp(warmupSteps, 0, _totalSteps);
        _power = power;
        _warmupRatio = warmupRatio;
        _minRatio = minRatio;
    }

    /// <summary>The multiplier of the base learning rate at a 0-based step.</summary>
    public double Factor(int step)
    {
        double poly = Math.Pow(1.0 - Math.Min(step, _totalSteps) / (double)_totalSteps, _power) * (1 - _minRatio) + _minRatio;
        if (step >= _warmupSteps)
            return poly;
        // mmcv's linear warmup scales the regular factor down: k = (1 - step/warmup)(1 - ratio).
        double k = (1 - step / (double)_warmupSteps) * (1 - _warmupRatio);
        return poly * (1 - k);
    }
}
