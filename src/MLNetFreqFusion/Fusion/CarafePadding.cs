namespace MLNetFreqFusion.Fusion;

/// <summary>
/// What CARAFE reads outside the feature map when a reassembly window crosses the border.
/// </summary>
public enum CarafePadding
{
    /// <summary>
    /// Mirror the map at its border (without repeating the edge pixel), as the reference FreqFusion's pure-PyTorch CARAFE does.
    /// The default; matches models trained with the reference code without mmcv.
    /// </summary>
    Reflect,

    /// <summary>
    /// Samples outside the map count as zero, as in mmcv's CUDA CARAFE. Checkpoints trained with mmcv
    /// (among them the authors' published ones) expect this.
    /// </summary>
    Zeros,
}
