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
        Tensor lrDirection, hrDirection, lrScope, hrScope;
        if (_directionFeat == DirectionFeat.Sim)
        {
            (lrDirection, hrDirection) = (SpatialConvolution.Forward(offset, lrSim), SpatialConvolution.Forward(hr_offset, hrSim));
            (lrScope, hrScope) = (SpatialConvolution.Forward(direct_scale, lr), SpatialConvolution.Forward(hr_direct_scale, hr));
        }
        else
        {
            // Offsets and scopes read the same features here, so each resolution's pair is one convolution.
            var fromLr = SpatialConvolution.Forward([offset, direct_scale], cat(new[] { lr, lrSim }, 1));
            var fromHr = SpatialConvolution.Forward([hr_offset, hr_direct_scale], cat(new[] { hr, hrSim }, 1));
            (lrDirection, lrScope, hrDirection, hrScope) = (fromLr[0], fromLr[1], fromHr[0], fromHr[1]);
        }
        var maps = new[] { lrDirection, hrDirection, lrScope, hrScope };
        if (!(is_grad_enabled() && maps.Any(map => map.requires_grad)) && PositionLoopFits(maps))
            return PositionsInOnePass(lrDirection, hrDirection, lrScope, hrScope);
        var direction = lrDirection + nn.functional.pixel_unshuffle(hrDirection, Scale);
        var scope = lrScope + nn.functional.pixel_unshuffle(hrScope, Scale);
        return PositionsOf(direction * scope.sigmoid() + init_pos);
    }

    /// <summary>Set by the benchmarks' <c>profile ab --experiment no-position-loop</c> (and by tests) only: predictions build the grid from ATen operations too.</summary>
    internal static bool PositionLoopOffForBenchmark { get; set; }

    static bool PositionLoopFits(Tensor[] maps) =>
        !PositionLoopOffForBenchmark && maps.All(map => map.dtype == ScalarType.Float32 && map.device_type == DeviceType.CPU && map.dim() == 4);

    /// <summary>
    /// <see cref="PositionsOf"/>(direction · σ(scope) + init_pos), the directions and scopes each the lr map plus the
    /// pixel-unshuffled hr map, in one pass from the four convolutions' outputs: what the two additions, the
    /// unshuffles, the sigmoid, the product, the sum and <see cref="PositionsOf"/>'s dozen operations computed, about
    /// 0.2 ms of a 1.0–1.5 ms grid at the stage (docs/benchmarks.md §24), without a map in between. Predictions only:
    /// training takes those operations, whose gradients autograd knows. Element (b·G + g, 2y + u, 2x + v, axis) reads
    /// lr channel ((axis·G + g)·2 + u)·2 + v at (y, x) and hr channel axis·G + g at (2y + u, 2x + v); the sigmoid's
    /// exponential is .NET's, not ATen's, so positions may differ from the operations' by float32 rounding.
    /// </summary>
    unsafe Tensor PositionsInOnePass(Tensor lrDirection, Tensor hrDirection, Tensor lrScope, Tensor hrScope)
    {
        using var scope = NewDisposeScope();
        var (ld, hd, ls, hs) = (lrDirection.contiguous(), hrDirection.contiguous(), lrScope.contiguous(), hrScope.contiguous());
        var initial = init_pos.to(ScalarType.Float32).contiguous();
        int b = (int)ld.shape[0], groups = _groups, h = (int)ld.shape[2], w = (int)ld.shape[3];
        var grid = empty(new long[] { b * groups, Scale * h, Scale * w, 2 }, dtype: ScalarType.Float32);
        float* lrD = Native.TensorMemory.Floats(ld), hrD = Native.TensorMemory.Floats(hd), lrS = Native.TensorMemory.Floats(ls), hrS = Native.TensorMemory.Floats(hs);
        float* init = Native.TensorMemory.Floats(initial), target = Native.TensorMemory.Floats(grid);
        long lrPlane = (long)h * w, hrPlane = 4L * h * w;
        int rows = Scale * h;
        Native.OpenMpTeam.For(b * groups * rows, get_num_threads(), task =>
        {
            int row = task % rows, image = task / rows / groups, g = task / rows % groups;
            int y = row / Scale, u = row % Scale;
            float* output = target + (long)task * Scale * w * 2;
            for (int column = 0; column < Scale * w; column++)
            {
                int x = column / Scale, v = column % Scale;
                for (int axis = 0; axis < 2; axis++)
                {
                    int lrChannel = ((axis * groups + g) * Scale + u) * Scale + v, hrChannel = axis * groups + g;
                    long lrAt = ((long)image * 2 * groups * Scale * Scale + lrChannel) * lrPlane + (long)y * w + x;
                    long hrAt = ((long)image * 2 * groups + hrChannel) * hrPlane + (long)row * Scale * w + column;
                    float direction = lrD[lrAt] + hrD[hrAt], logit = lrS[lrAt] + hrS[hrAt];
                    float offset = direction * (1f / (1f + MathF.Exp(-logit))) + init[lrChannel];
                    float centre = (axis == 0 ? x : y) + 0.5f, size = axis == 0 ? w : h;
                    float position = 2 * (centre + offset) / size - 1;
                    // As PositionsOf: NaN to the centre, everything clipped to the image.
                    output[column * 2 + axis] = float.IsNaN(position) ? 0f : Math.Clamp(position, -1f, 1f);
                }
            }
        });
        return grid.MoveToOuterDisposeScope();
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
