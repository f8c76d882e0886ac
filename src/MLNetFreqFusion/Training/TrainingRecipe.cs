namespace MLNetFreqFusion;

/// <summary>
/// Where the trainer takes the settings left null in its Options from: learning rate, the head's multiplier, warmup
/// and augmentation. Every one of them set in the Options wins over the recipe.
/// </summary>
public enum TrainingRecipe
{
    /// <summary>
    /// <see cref="ShortRun"/> for runs of fewer than 10 000 optimizer steps, <see cref="MMSegmentation"/> from there on
    /// (the paper's schedules are 40 000 to 160 000 steps). The default.
    /// </summary>
    Auto,

    /// <summary>
    /// For the minutes-to-hours runs of a CPU: a few hundred to a few thousand steps on a few hundred to a few thousand
    /// images. AdamW at 1e-3 on backbone and head alike, 50 warmup steps (at most a tenth of the run), horizontal flips
    /// as the only augmentation. Measured against the paper's recipe and a plain PyTorch loop in docs/benchmarks.md §10.
    /// </summary>
    ShortRun,

    /// <summary>
    /// The paper's SegFormer/SegNeXt + FreqFusion recipe (mmsegmentation): AdamW at 6e-5 with the head at 10×,
    /// 1500 warmup steps (at most a tenth of the run), random 0.5–2× resize, crops redrawn while one class covers more
    /// than 75 % of them, flips and photometric distortion. Built for 40 000–160 000 steps on ADE20K or Cityscapes.
    /// </summary>
    MMSegmentation,
}
