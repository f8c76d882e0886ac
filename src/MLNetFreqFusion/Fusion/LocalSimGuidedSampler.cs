using MLNetFreqFusion.Operators;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Fusion;

/// <summary>
/// The paper's offset generator (the reference's <c>LocalSimGuidedSampler</c>, style "lp", scale 2): predicts, from
/// local similarities of the two compressed features, where each up-sampled pixel should take its value, and
/// resamples the up-sampled feature there (grouped bilinear sampling, border padding, align_corners = false).
/// Field names are the reference's state-dict keys.
/// </summary>
internal sealed class LocalSimGuidedSampler : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    const int Scale = 2;
    const int SimilarityWindow = 3;
    const int SimilarityDilation = 2;

    readonly int _groups;
    readonly DirectionFeat _directionFeat;

    readonly Conv2d offset;
    readonly Conv2d direct_scale;
    readonly Conv2d hr_offset;
    readonly Conv2d hr_direct_scale;
    readonly GroupNorm? norm_hr;
    readonly GroupNorm? norm_lr;
    readonly Tensor init_pos;

    /// <summary>Builds the offset generator for compressed features of <paramref name="inChannels"/> channels.</summary>
    public LocalSimGuidedSampler(int inChannels, int groups, int kernelSize, bool norm, DirectionFeat directionFeat)
        : base(nameof(LocalSimGuidedSampler))
    {
        _groups = groups;
        _directionFeat = directionFeat;
        int similarities = SimilarityWindow * SimilarityWindow - 1;
        int directionIn = directionFeat == DirectionFeat.Sim ? similarities : inChannels + similarities;
        int scopeIn = directionFeat == DirectionFeat.Sim ? inChannels : inChannels + similarities;
        int lrOut = 2 * groups * Scale * Scale, hrOut = 2 * groups;
        int pad = kernelSize / 2;

        offset = nn.Conv2d(directionIn, lrOut, kernelSize, padding: pad);
        direct_scale = nn.Conv2d(scopeIn, lrOut, kernelSize, padding: pad);
        hr_offset = nn.Conv2d(directionIn, hrOut, kernelSize, padding: pad);
        hr_direct_scale = nn.Conv2d(scopeIn, hrOut, kernelSize, padding: pad);
        if (norm)
        {
            norm_hr = nn.GroupNorm(inChannels / 8, inChannels);
            norm_lr = nn.GroupNorm(inChannels / 8, inChannels);
        }
        init_pos = InitialPositions(groups);
        RegisterComponents();
    }

    /// <summary>
    /// The sub-pixel positions of the four up-sampled pixels relative to their source pixel, ±1/4 source pixel,
    /// laid out [x/y, group, dy, dx] as the offset channels are: [1, 2·groups·4, 1, 1].
    /// </summary>
    static Tensor InitialPositions(int groups)
    {
        var values = new float[2 * groups * Scale * Scale];
        for (int axis = 0; axis < 2; axis++)
            for (int g = 0; g < groups; g++)
                for (int dy = 0; dy < Scale; dy++)
                    for (int dx = 0; dx < Scale; dx++)
                    {
                        int step = axis == 0 ? dx : dy;
                        values[((axis * groups + g) * Scale + dy) * Scale + dx] = (float)((step - (Scale - 1) / 2.0) / Scale);
                    }
        return tensor(values, new long[] { 1, values.Length, 1, 1 }, ScalarType.Float32);
    }

    /// <summary>Resamples <paramref name="featToSample"/> (2× the size of <paramref name="lrX"/>) guided by the compressed features.</summary>
    public override Tensor forward(Tensor hrX, Tensor lrX, Tensor featToSample) => Sample(featToSample, Grid(hrX, lrX));

    /// <summary>
    /// The sampling positions the compressed features give, in <c>grid_sample</c>'s normalised form:
    /// [B·groups, 2h, 2w, 2], group-minor, for <see cref="Sample"/> or one group's <see cref="SampleGroup"/>.
    /// </summary>
    internal Tensor Grid(Tensor hrX, Tensor lrX)
    {
        var hr = norm_hr is null ? hrX : norm_hr.call(hrX);
        var lr = norm_lr is null ? lrX : norm_lr.call(lrX);
        var hrSim = LocalSimilarity.Cosine(hr, SimilarityWindow, SimilarityDilation);
        var lrSim = LocalSimilarity.Cosine(lr, SimilarityWindow, SimilarityDilation);
        Tensor direction, scope;
        if (_directionFeat == DirectionFeat.Sim)
        {
            direction = SpatialConvolution.Forward(offset, lrSim) + nn.functional.pixel_unshuffle(SpatialConvolution.Forward(hr_offset, hrSim), Scale);
            scope = SpatialConvolution.Forward(direct_scale, lr) + nn.functional.pixel_unshuffle(SpatialConvolution.Forward(hr_direct_scale, hr), Scale);
        }
        else
        {
            // Offsets and scopes read the same features here, so each resolution's pair is one convolution.
            var fromLr = SpatialConvolution.Forward([offset, direct_scale], cat(new[] { lr, lrSim }, 1));
            var fromHr = SpatialConvolution.Forward([hr_offset, hr_direct_scale], cat(new[] { hr, hrSim }, 1));
            direction = fromLr[0] + nn.functional.pixel_unshuffle(fromHr[0], Scale);
            scope = fromLr[1] + nn.functional.pixel_unshuffle(fromHr[1], Scale);
        }
        return PositionsOf(direction * scope.sigmoid() + init_pos);
    }

    /// <summary>
    /// Offsets (in source pixels, [B, 2·groups·4, h, w]) as <c>grid_sample</c> positions: each source-pixel centre plus
    /// its four sub-pixel offsets gives the four pixels of the 2× output, normalised to [-1, 1] (align_corners = false).
    /// </summary>
    Tensor PositionsOf(Tensor offsets)
    {
        long b = offsets.shape[0], h = offsets.shape[2], w = offsets.shape[3];
        var perAxis = offsets.view(b, 2, -1, h, w);
        var centresX = (arange(w, offsets.dtype, offsets.device) + 0.5).view(1, 1, 1, w);
        var centresY = (arange(h, offsets.dtype, offsets.device) + 0.5).view(1, 1, h, 1);
        var gridX = 2 * (centresX + perAxis[.., 0]) / w - 1;
        var gridY = 2 * (centresY + perAxis[.., 1]) / h - 1;
        return nn.functional.pixel_shuffle(stack(new[] { gridX, gridY }, 1).view(b, -1, h, w), Scale)
            .view(b, 2, _groups, Scale * h, Scale * w)
            .permute(0, 2, 3, 4, 1)
            .reshape(b * _groups, Scale * h, Scale * w, 2)
            // Border padding clips to the image anyway, so for finite grids this changes nothing; a diverging network's
            // huge or NaN offsets would otherwise index outside the input in grid_sample (a native crash in its
            // backward). NaN positions become the centre; the trainer's weight check then reports the divergence.
            .nan_to_num(0.0).clamp(-1.0, 1.0);
    }

    /// <summary>Bilinear, grouped sampling (border padding) of <paramref name="x"/> [B, C, 2h, 2w] at <see cref="Grid"/>'s positions.</summary>
    Tensor Sample(Tensor x, Tensor grid)
    {
        var grouped = x.reshape(x.shape[0] * _groups, -1, x.shape[2], x.shape[3]);
        return OperatorProfile.Section("grid_sample", grouped, grid, GridSample.Bilinear).view(x.shape);
    }

    /// <summary>
    /// Group <paramref name="group"/>'s sampling alone: <paramref name="x"/> [B, C, 2h, 2w] is sampled, every channel,
    /// at that group's positions of <paramref name="grid"/> (from <see cref="Grid"/>). For callers that mix a group's
    /// channels before sampling and sum the groups (<see cref="FreqFusion"/>'s lr mixing), so no map of all the
    /// groups' mixed channels is ever formed.
    /// </summary>
    internal Tensor SampleGroup(Tensor x, Tensor grid, int group)
    {
        long b = x.shape[0];
        var positions = grid.view(b, _groups, grid.shape[1], grid.shape[2], 2).select(1, group).contiguous();
        return OperatorProfile.Section("grid_sample", x, positions, GridSample.Bilinear);
    }
}
