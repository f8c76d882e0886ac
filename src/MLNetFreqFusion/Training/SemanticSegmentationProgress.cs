namespace MLNetFreqFusion;

/// <summary>
/// A training progress report, given to <c>SemanticSegmentationTrainer.Options.Progress</c> after every step and
/// after every validation, and written to the ML.NET log.
/// </summary>
public sealed record SemanticSegmentationProgress
{
    /// <summary>1-based epoch.</summary>
    public int Epoch { get; init; }

    /// <summary>Number of epochs training will run at most.</summary>
    public int MaxEpochs { get; init; }

    /// <summary>Optimizer steps done so far, over all epochs.</summary>
    public int Step { get; init; }

    /// <summary>Steps that all epochs together will take (known after the first epoch; until then an estimate).</summary>
    public int TotalSteps { get; init; }

    /// <summary>Loss of the last step.</summary>
    public double Loss { get; init; }

    /// <summary>Learning rate of the backbone parameters at the last step (the head's is a multiple of it).</summary>
    public double LearningRate { get; init; }

    /// <summary>Training throughput of the current epoch, in images per second.</summary>
    public double ImagesPerSecond { get; init; }

    /// <summary>Validation mean IoU after the epoch, as a fraction; null when no validation ran in this report.</summary>
    public double? ValidationMeanIoU { get; init; }

    /// <summary>Estimated time until training finishes.</summary>
    public TimeSpan EstimatedTimeRemaining { get; init; }
}
