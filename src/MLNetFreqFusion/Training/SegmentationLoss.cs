using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Training;

/// <summary>
/// Pixel-wise cross-entropy averaged over the pixels whose label is not the ignore index (mmsegmentation's
/// CrossEntropyLoss with avg_non_ignore), optionally class-weighted, plus an optional soft Dice term.
/// </summary>
internal sealed class SegmentationLoss
{
    readonly int _ignoreIndex;
    readonly float[]? _classWeights;
    readonly double _diceWeight;

    public SegmentationLoss(int ignoreIndex, float[]? classWeights, double diceWeight)
    {
        _ignoreIndex = ignoreIndex;
        _classWeights = classWeights;
        _diceWeight = diceWeight;
    }

    /// <param name="logits">[B, K, H, W].</param>
    /// <param name="labels">[B, H, W] int64 class indices, ignore index allowed.</param>
    public Tensor Compute(Tensor logits, Tensor labels)
    {
        var weight = _classWeights is null ? null : tensor(_classWeights, device: logits.device);
        var valid = labels.ne(_ignoreIndex);
        // With class weights PyTorch's "mean" divides by the summed weights of the valid pixels, which is
        // mmsegmentation's non-ignore average as well.
        var ce = nn.functional.cross_entropy(logits, labels, weight: weight, ignore_index: _ignoreIndex, reduction: nn.Reduction.Mean);
        // A batch of only ignore pixels gives NaN; such a batch carries no signal, so it contributes zero.
        ce = where(valid.any(), ce, zeros_like(ce));
        if (_diceWeight <= 0)
            return ce;
        return ce + _diceWeight * SoftDice(logits, labels, valid);
    }

    static Tensor SoftDice(Tensor logits, Tensor labels, Tensor valid)
    {
        long classes = logits.shape[1];
        var probabilities = logits.softmax(1);
        var safeLabels = where(valid, labels, zeros_like(labels));
        var onehot = nn.functional.one_hot(safeLabels, classes).permute(0, 3, 1, 2).to(probabilities.dtype);
        var mask = valid.unsqueeze(1).to(probabilities.dtype);
        var p = probabilities * mask;
        var t = onehot * mask;
        var dims = new long[] { 0, 2, 3 };
        var intersection = (p * t).sum(dims);
        var cardinality = p.sum(dims) + t.sum(dims);
        var dice = (2 * intersection + 1) / (cardinality + 1);
        return 1 - dice.mean();
    }
}
