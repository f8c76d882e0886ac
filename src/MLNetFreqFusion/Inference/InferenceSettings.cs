namespace MLNetFreqFusion.Inference;

/// <summary>How a trained network is run on whole images: sliding windows, flip test and batching.</summary>
internal sealed record InferenceSettings
{
    /// <summary>Images with a side longer than this are predicted by overlapping windows of this size.</summary>
    public int SlidingWindowSize { get; init; } = SemanticSegmentationTrainer.Defaults.SlidingWindowSize;

    /// <summary>Overlap between neighbouring windows, as a fraction of the window.</summary>
    public double SlidingWindowOverlap { get; init; } = SemanticSegmentationTrainer.Defaults.SlidingWindowOverlap;

    /// <summary>Average the logits of the image and its horizontal mirror.</summary>
    public bool FlipTest { get; init; }

    /// <summary>How many consecutive rows of one image size are predicted at once.</summary>
    public int BatchSize { get; init; } = SemanticSegmentationTrainer.Defaults.InferenceBatchSize;
}
