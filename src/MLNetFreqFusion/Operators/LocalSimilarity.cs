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
    /// Upper bound of one band's per-neighbour product, in bytes. Full-size temporaries at 256 channels and 128² (16 MB
    /// per image) are trimmed back to the system when freed or, from 32 MB, always fresh mappings, so every call paid
    /// their page faults again; bands this size are reused from the heap. Measured on 2 cores, 1 MB bands took up to
    /// 1.7× the time of 4 MB ones in forward, the per-call overhead of 8 small operations per band, and 8–16 MB gained
    /// little more.
    /// </summary>
    internal const long DefaultBandBytes = 4L << 20;

    /// <summary>
    /// Cosine similarity over channels of every pixel with its window×window neighbours spaced <paramref name="dilation"/>
    /// apart (neighbours outside the map are zero, so their similarity is 0), centre left out, neighbours in row-major
    /// order: [B, C, H, W] → [B, window² − 1, H, W]. A 3×3 window in float32 on AVX2 hosts, at least 8 pixels wide,
    /// runs as <see cref="LocalSimilarityLoops"/>, normalisation included. Otherwise the dot products run, forward and
    /// backward, over bands of rows, so no neighbour needs a temporary larger than about <paramref name="bandBytes"/>;
    /// the full-size tensors are the unit vectors, the normalisation's own autograd and the gradient.
    /// </summary>
    /// <param name="x">Features [B, C, H, W].</param>
    /// <param name="window">Odd window size.</param>
    /// <param name="dilation">Spacing of the window's neighbours, in pixels.</param>
    /// <param name="bandBytes">Budget of one band's product (at least one row is used); tests shrink it to force many bands.</param>
    public static Tensor Cosine(Tensor x, int window = 3, int dilation = 2, long bandBytes = DefaultBandBytes)
    {
        if (x.dim() != 4)
            throw new ArgumentException($"Local similarity needs features [B, C, H, W]; got {Carafe.Shape(x)}.", nameof(x));
        if (window < 1 || window % 2 == 0)
            throw new ArgumentOutOfRangeException(nameof(window), window, "The similarity window must be odd and positive.");
        return OperatorProfile.Section("local similarity", x, features => Compute(features, window, dilation, bandBytes));
    }

    static Tensor Compute(Tensor x, int window, int dilation, long bandBytes)
    {
        var geometry = new Geometry(Offsets(window, dilation), dilation, bandBytes);
        using var scope = NewDisposeScope();
        if (LocalSimilarityLoops.Fits(x, window))
            return LoopsFunction.apply(x, geometry).MoveToOuterDisposeScope();
        // Normalising once, with the norm clamped like cosine_similarity's eps, makes each neighbour a plain dot product;
        // left to autograd, its backward is exact and costs a few full-size passes, not one per neighbour.
        var unit = x / linalg.vector_norm(x, 2, new long[] { 1 }, keepdim: true).clamp_min(Epsilon);
        return DotFunction.apply(unit, geometry).MoveToOuterDisposeScope();
    }

    /// <summary>Neighbour offsets (rows, columns) in row-major order with the centre left out.</summary>
    static (int Dy, int Dx)[] Offsets(int window, int dilation)
    {
        var offsets = new List<(int, int)>(window * window - 1);
        int half = window / 2;
        for (int i = 0; i < window; i++)
            for (int j = 0; j < window; j++)
                if (i != half || j != half)
                    offsets.Add(((i - half) * dilation, (j - half) * dilation));
        return offsets.ToArray();
    }

    /// <remarks>
    /// The offsets are point-symmetric: row-major order without the centre puts the opposite of offset t at
    /// count − 1 − t, which the backward pass relies on.
    /// </remarks>
    sealed record Geometry((int Dy, int Dx)[] Offsets, int Dilation, long BandBytes);

    /// <summary>
    /// One neighbour's overlap with a band of rows [r0, r1): the output rows and columns whose neighbour lies inside
    /// the map (everything else has similarity 0 and receives no gradient).
    /// </summary>
    readonly record struct Overlap(int Row0, int Row1, int Col0, int Col1, int Dy, int Dx)
    {
        public bool IsEmpty => Row0 >= Row1 || Col0 >= Col1;
        public Range Rows => Row0..Row1;
        public Range Cols => Col0..Col1;
        public Range NeighbourRows => (Row0 + Dy)..(Row1 + Dy);
        public Range NeighbourCols => (Col0 + Dx)..(Col1 + Dx);

        public static Overlap Of((int Dy, int Dx) offset, int r0, int r1, int h, int w) =>
            new(Math.Max(r0, -offset.Dy), Math.Min(r1, h - offset.Dy), Math.Max(0, -offset.Dx), Math.Min(w, w - offset.Dx), offset.Dy, offset.Dx);
    }

    /// <summary>Bands of output rows whose B×C×rows×W product fits the budget, at least one row each.</summary>
    static IEnumerable<(int R0, int R1)> Bands(Tensor unit, long bandBytes)
    {
        int h = (int)unit.shape[2];
        long perRow = unit.shape[0] * unit.shape[1] * unit.shape[3] * unit.element_size();
        int rows = (int)Math.Clamp(bandBytes / Math.Max(1, perRow), 1, Math.Max(1, h));
        for (int r0 = 0; r0 < h; r0 += rows)
            yield return (r0, Math.Min(h, r0 + rows));
    }

    /// <summary>
    /// Dot products of unit vectors with their neighbours, with its own backward pass: autograd through per-neighbour
    /// slices of a padded map would allocate a padded-size zero gradient for every neighbour.
    /// </summary>
    sealed class DotFunction : autograd.SingleTensorFunction<DotFunction>
    {
        public override string Name => "LocalSimilarityDot";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var (unit, geometry) = ((Tensor)vars[0], (Geometry)vars[1]);
            ctx.save_for_backward(new List<Tensor> { unit });
            ctx.save_data("geometry", geometry);
            return Forward(unit, geometry);
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            var saved = ctx.get_saved_variables();
            var gradUnit = Backward(saved[0], gradOutput, (Geometry)ctx.get_data("geometry"));
            saved.ForEach(t => t.Dispose());
            return new List<Tensor> { gradUnit, null! };
        }
    }

    static Tensor Forward(Tensor unit, Geometry g)
    {
        using var scope = NewDisposeScope();
        long b = unit.shape[0];
        int h = (int)unit.shape[2], w = (int)unit.shape[3];
        var result = zeros(new[] { b, g.Offsets.Length, h, w }, dtype: unit.dtype, device: unit.device);
        foreach (var (r0, r1) in Bands(unit, g.BandBytes))
        {
            for (int t = 0; t < g.Offsets.Length; t++)
            {
                var o = Overlap.Of(g.Offsets[t], r0, r1, h, w);
                if (o.IsEmpty)
                    continue;
                using var centre = unit[.., .., o.Rows, o.Cols];
                using var neighbour = unit[.., .., o.NeighbourRows, o.NeighbourCols];
                using var product = centre * neighbour;
                using var dot = product.sum(1);
                using var target = result[.., t, o.Rows, o.Cols];
                target.copy_(dot);
            }
        }
        return result.MoveToOuterDisposeScope();
    }

    /// <remarks>
    /// With s_t(p) = u(p)·u(p + d_t), the gradient of u(q) collects G_t(q)·u(q + d_t) from its own similarities and
    /// G_t(q − d_t)·u(q − d_t) from those it is the neighbour in. Renaming t to its opposite t̄ (d_t̄ = −d_t) in the
    /// second sum gives one neighbour sum, Σ_t S_t(q)·u(q + d_t) with S_t(q) = G_t(q) + G_t̄(q + d_t), both terms
    /// counted only where q + d_t lies inside the map. S is as small as the output, and the sum accumulates in place.
    /// </remarks>
    static Tensor Backward(Tensor unit, Tensor gradOutput, Geometry g)
    {
        using var scope = NewDisposeScope();
        int h = (int)unit.shape[2], w = (int)unit.shape[3], count = g.Offsets.Length;
        var weights = NeighbourWeights(gradOutput, g);
        var gradUnit = zeros_like(unit);
        foreach (var (r0, r1) in Bands(unit, g.BandBytes))
        {
            for (int t = 0; t < count; t++)
            {
                var o = Overlap.Of(g.Offsets[t], r0, r1, h, w);
                if (o.IsEmpty)
                    continue;
                using var target = gradUnit[.., .., o.Rows, o.Cols];
                using var neighbour = unit[.., .., o.NeighbourRows, o.NeighbourCols];
                using var weight = weights[.., t..(t + 1), o.Rows, o.Cols];
                target.addcmul_(neighbour, weight, 1);
            }
        }
        return gradUnit.MoveToOuterDisposeScope();
    }

    /// <summary>S_t(q) = G_t(q) + G_t̄(q + d_t), the second term only where q + d_t lies inside the map (see <see cref="Backward"/>).</summary>
    static Tensor NeighbourWeights(Tensor gradOutput, Geometry g)
    {
        int h = (int)gradOutput.shape[2], w = (int)gradOutput.shape[3], count = g.Offsets.Length;
        var weights = gradOutput.clone();
        for (int t = 0; t < count; t++)
        {
            var o = Overlap.Of(g.Offsets[t], 0, h, h, w);
            if (o.IsEmpty)
                continue;
            using var target = weights[.., t, o.Rows, o.Cols];
            using var opposite = gradOutput[.., count - 1 - t, o.NeighbourRows, o.NeighbourCols];
            target.add_(opposite);
        }
        return weights;
    }

    /// <summary>
    /// The whole cosine similarity, normalisation included, as <see cref="LocalSimilarityLoops"/> (float32 on AVX2
    /// hosts): the padded unit vectors and the norms are saved for the backward pass instead of the normalisation's
    /// autograd graph.
    /// </summary>
    sealed class LoopsFunction : autograd.SingleTensorFunction<LoopsFunction>
    {
        public override string Name => "LocalSimilarityLoops";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var (x, geometry) = ((Tensor)vars[0], (Geometry)vars[1]);
            var (paddedUnit, norms) = LocalSimilarityLoops.Normalize(x, geometry.Dilation, (float)Epsilon);
            ctx.save_for_backward(new List<Tensor> { paddedUnit, norms });
            ctx.save_data("geometry", geometry);
            // Saved as tensors, not disposed here: the autograd node takes its references once forward has returned,
            // and the scope around the call disposes these handles after that.
            return LocalSimilarityLoops.Dots(paddedUnit, geometry.Dilation);
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            var saved = ctx.get_saved_variables();
            var geometry = (Geometry)ctx.get_data("geometry");
            using var weights = NeighbourWeights(gradOutput, geometry);
            var gradX = LocalSimilarityLoops.Gradient(saved[0], saved[1], weights, geometry.Dilation, (float)Epsilon);
            saved.ForEach(t => t.Dispose());
            return new List<Tensor> { gradX, null! };
        }
    }
}
