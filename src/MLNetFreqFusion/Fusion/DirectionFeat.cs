namespace MLNetFreqFusion.Fusion;

/// <summary>
/// Which features the offset generator (paper: "offset generator", the reference's <c>LocalSimGuidedSampler</c>)
/// turns into sampling offsets. The choice changes the input width of its convolutions, so it must match a checkpoint.
/// </summary>
public enum DirectionFeat
{
    /// <summary>
    /// Offsets and their scopes are predicted from the group-normalised compressed feature concatenated with its
    /// 8 local cosine similarities. The reference's top-level module uses this; it is the default.
    /// </summary>
    SimConcat,

    /// <summary>
    /// Offsets are predicted from the 8 local cosine similarities alone and their scopes from the normalised feature,
    /// as in the copies of the module in the authors' SegNeXt, mmdetection and Mask2Former trees. With
    /// <see cref="CarafePadding.Zeros"/> this is the variant behind the authors' published checkpoints.
    /// </summary>
    Sim,
}
