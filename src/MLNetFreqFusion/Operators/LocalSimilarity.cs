using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Operators;

/// <summary>
/// Local cosine similarity: how alike each pixel's feature vector is to its neighbours, the cue the offset generator
/// uses to pull samples away from inconsistent boundaries.
/// </summary>
internal static class LocalSimilarity
{
    const double Epsilon = 1e-8;

    /// <summary>
    /// Cosine similarity over channels of every pixel with its window×window neighbours spaced <paramref name="dilation"/>
    /// apart (neighbours outside the map are zero, so their similarity is 0), centre left out, neighbours in row-major
    /// order: [B, C, H, W] → [B, window² − 1, H, W].
    /// </summary>
    public static Tensor Cosine(Tensor x, int window = 3, int dilation = 2)
    {
        if (x.dim() != 4)
            throw new ArgumentException($"Local similarity needs features [B, C, H, W]; got {Carafe.Shape(x)}.", nameof(x));
        if (window < 1 || window % 2 == 0)
            throw new ArgumentOutOfRangeException(nameof(window), window, "The similarity window must be odd and positive.");
        return OperatorProfile.Section("local similarity", x, features => Compute(features, window, dilation));
    }

    static Tensor Compute(Tensor x, int window, int dilation)
    {
        long h = x.shape[2], w = x.shape[3];
        int reach = window / 2 * dilation;
        using var scope = NewDisposeScope();
        // Normalising once, with the norm clamped like cosine_similarity's eps, makes each neighbour a plain dot product.
        var unit = x / linalg.vector_norm(x, 2, new long[] { 1 }, keepdim: true).clamp_min(Epsilon);
        var padded = nn.functional.pad(unit, new long[] { reach, reach, reach, reach });
        var similarities = new List<Tensor>(window * window - 1);
        for (int i = 0; i < window; i++)
        {
            for (int j = 0; j < window; j++)
            {
                if (i == window / 2 && j == window / 2)
                    continue;
                using var neighbour = padded[.., .., (i * dilation)..(i * dilation + (int)h), (j * dilation)..(j * dilation + (int)w)];
                using var product = unit * neighbour;
                similarities.Add(product.sum(1));
            }
        }
        return stack(similarities, 1).MoveToOuterDisposeScope();
    }
}
