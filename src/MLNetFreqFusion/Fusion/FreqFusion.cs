using MLNetFreqFusion.Operators;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Fusion;

/// <summary>
/// FreqFusion (Chen et al., "Frequency-aware Feature Fusion for Dense Image Prediction", TPAMI 2024): fuses a
/// high-resolution feature with a low-resolution one at twice its size. The adaptive low-pass filter (ALPF) generator
/// predicts content-aware kernels that smooth and up-sample the low-resolution feature (CARAFE ×2); the adaptive
/// high-pass filter (AHPF) generator predicts kernels whose complement restores the high-resolution feature's
/// detail; the offset generator resamples the up-sampled feature towards similar neighbours to fix inconsistent
/// boundaries. Parameter and buffer names equal the reference's state-dict keys, so its checkpoints load strictly.
/// </summary>
/// <remarks>
/// <c>forward(hr, lr)</c> takes hr [B, HrChannels, H, W] and lr [B, LrChannels, H/2, W/2] (exactly half; pad
/// odd sizes beforehand) and returns, in the reference's order, the normalised low-pass kernels
/// [B, UpGroup·LowpassKernel², H, W], the filtered high-resolution feature [B, HrChannels, H, W] and the up-sampled
/// low-resolution feature [B, LrChannels, H, W].
/// </remarks>
public sealed class FreqFusion : nn.Module<Tensor, Tensor, (Tensor MaskLr, Tensor Hr, Tensor Lr)>
{
    readonly FreqFusionOptions _options;

    // Declared in the reference's registration order, which is also its state-dict order.
    readonly Conv2d hr_channel_compressor;
    readonly Conv2d lr_channel_compressor;
    readonly Conv2d content_encoder;
    readonly LocalSimGuidedSampler? dysampler;
    readonly Conv2d? content_encoder2;
    readonly Tensor hamming_lowpass;
    readonly Tensor hamming_highpass;

    /// <summary>Builds the module with the reference's effective initialisation.</summary>
    /// <param name="options">The configuration; validated, then copied.</param>
    /// <exception cref="ArgumentException">An option is out of range or a combination the reference cannot run.</exception>
    public FreqFusion(FreqFusionOptions options) : base(nameof(FreqFusion))
    {
        Native.LibTorchRuntime.EnsureConfigured();
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options.Clone();
        var o = _options;
        int groupsSquared = o.UpGroup * o.ScaleFactor * o.ScaleFactor;
        int encoderPad = (o.EncoderKernel - 1) * o.EncoderDilation / 2;

        hr_channel_compressor = nn.Conv2d(o.HrChannels, o.CompressedChannels, 1);
        lr_channel_compressor = nn.Conv2d(o.LrChannels, o.CompressedChannels, 1);
        content_encoder = nn.Conv2d(o.CompressedChannels, o.LowpassKernel * o.LowpassKernel * groupsSquared, o.EncoderKernel,
            padding: encoderPad, dilation: o.EncoderDilation);
        if (o.FeatureResample)
            dysampler = new LocalSimGuidedSampler(o.CompressedChannels, o.FeatureResampleGroup, o.EncoderKernel, o.FeatureResampleNorm, o.DirectionFeat);
        if (o.UseHighPass)
            content_encoder2 = nn.Conv2d(o.CompressedChannels, o.HighpassKernel * o.HighpassKernel * groupsSquared, o.EncoderKernel,
                padding: encoderPad, dilation: o.EncoderDilation);
        hamming_lowpass = o.HammingWindow ? KernelNormalizer.HammingWindow2D(o.LowpassKernel) : ones(1);
        hamming_highpass = o.HammingWindow ? KernelNormalizer.HammingWindow2D(o.HighpassKernel) : ones(1);
        RegisterComponents();
        ResetParameters();
    }

    /// <summary>The options the module was built with (a copy).</summary>
    public FreqFusionOptions Options => _options.Clone();

    /// <summary>
    /// The reference's effective initialisation: every convolution (the offset generator's included, whose own init
    /// the reference's outer pass overwrites) Xavier-uniform with zero bias, then the ALPF and AHPF generators
    /// N(0, 0.001) with zero bias. Group norms keep weight 1 and bias 0.
    /// </summary>
    void ResetParameters()
    {
        using var noGrad = no_grad();
        foreach (var (_, module) in named_modules())
        {
            if (module is Conv2d conv)
            {
                nn.init.xavier_uniform_(conv.weight!);
                nn.init.zeros_(conv.bias!);
            }
            else if (module is GroupNorm norm)
            {
                // TorchSharp's GroupNorm allocates its affine parameters uninitialised; PyTorch's starts at 1 and 0.
                nn.init.ones_(norm.weight);
                nn.init.zeros_(norm.bias!);
            }
        }
        foreach (var encoder in new[] { content_encoder, content_encoder2 })
        {
            if (encoder is null)
                continue;
            nn.init.normal_(encoder.weight!, 0, 0.001);
            nn.init.zeros_(encoder.bias!);
        }
    }

    // Set only during a CallComposed call. A record rather than Tensor fields, which TorchSharp's RegisterComponents
    // would take for buffers.
    sealed record Shortcuts(LinearProjection? HrProjection, Tensor? LrMixing, Tensor? HrMixing);
    Shortcuts? _shortcuts;

    /// <summary>
    /// <c>call(hr, lr)</c> with shortcuts a decode head can take, each the same linear maps in another order:
    /// <paramref name="hrProjection"/>, when hr is that projection of a narrower map, lets the hr compressor run on the
    /// narrower map (<see cref="SpatialConvolution.Forward(Conv2d, Tensor, LinearProjection)"/>); <paramref name="lrMixing"/>
    /// [M, LrChannels], when the caller only needs that 1×1 map of the up-sampled lr feature (the concat head's fuse
    /// layer), is applied before the up-sampling (see <see cref="UpsampleLr"/>) and the returned lr feature is
    /// [B, M, H, W]; <paramref name="hrMixing"/> [M, HrChannels] likewise for the filtered hr feature, applied before
    /// the high-pass filter (and with <paramref name="hrProjection"/> composed with it). Through <c>call</c>, so module
    /// hooks see the fusion as any other.
    /// </summary>
    internal (Tensor MaskLr, Tensor Hr, Tensor Lr) CallComposed(Tensor hr, Tensor lr, LinearProjection? hrProjection, Tensor? lrMixing, Tensor? hrMixing = null)
    {
        if (lrMixing is not null && (lrMixing.dim() != 2 || lrMixing.shape[1] != _options.LrChannels))
            throw new ArgumentException($"The lr mixing must be [M, {_options.LrChannels}]; got {Carafe.Shape(lrMixing)}.", nameof(lrMixing));
        if (hrMixing is not null && (hrMixing.dim() != 2 || hrMixing.shape[1] != _options.HrChannels))
            throw new ArgumentException($"The hr mixing must be [M, {_options.HrChannels}]; got {Carafe.Shape(hrMixing)}.", nameof(hrMixing));
        _shortcuts = new Shortcuts(hrProjection, lrMixing, hrMixing);
        try
        {
            return call(hr, lr);
        }
        finally
        {
            _shortcuts = null;
        }
    }

    /// <summary>Fuses <paramref name="hr"/> [B, HrChannels, H, W] with <paramref name="lr"/> [B, LrChannels, H/2, W/2].</summary>
    /// <returns>The low-pass kernels, the filtered hr feature and the up-sampled lr feature, all at H×W.</returns>
    /// <exception cref="ArgumentException">The shapes do not fit the options or hr is not exactly twice lr.</exception>
    public override (Tensor MaskLr, Tensor Hr, Tensor Lr) forward(Tensor hr, Tensor lr)
    {
        CheckInputs(hr, lr);
        var o = _options;
        int kl = o.LowpassKernel, kh = o.HighpassKernel;
        using var scope = NewDisposeScope();

        var compressedHr = _shortcuts?.HrProjection is LinearProjection projection
            ? SpatialConvolution.Forward(hr_channel_compressor, hr, projection)
            : SpatialConvolution.Forward(hr_channel_compressor, hr);
        var compressedLr = SpatialConvolution.Forward(lr_channel_compressor, lr);
        Tensor maskLr;
        Tensor? maskHr = null;
        if (o.SemiConv && o.CompFeatUpsample)
        {
            // Initial AHPF sharpens the compressed hr feature; the initial ALPF then up-samples the kernel logits
            // predicted at low resolution instead of repeating them.
            var highpassFromHr = SpatialConvolution.Forward(content_encoder2!, compressedHr);
            var initialHighpass = KernelNormalizer.Normalize(highpassFromHr, kh, hamming_highpass);
            compressedHr = Carafe.HighPass(compressedHr, initialHighpass, kh, 2, o.CarafePadding);

            var lowpassFromHr = SpatialConvolution.Forward(content_encoder, compressedHr);
            var initialLowpass = KernelNormalizer.Normalize(lowpassFromHr, kl, hamming_lowpass);
            var fromLr = Encode(compressedLr);
            maskLr = lowpassFromHr + Reassemble(fromLr[0], initialLowpass, kl, 2);

            var fusedLowpass = KernelNormalizer.Normalize(maskLr, kl, hamming_lowpass);
            maskHr = highpassFromHr + Reassemble(fromLr[1], fusedLowpass, kl, 2);
        }
        else if (o.SemiConv)
        {
            var (fromHr, fromLr) = (Encode(compressedHr), Encode(compressedLr));
            maskLr = fromHr[0] + Nearest2x(fromLr[0]);
            if (content_encoder2 is not null)
                maskHr = fromHr[1] + Nearest2x(fromLr[1]);
        }
        else
        {
            var fromBoth = Encode(Nearest2x(compressedLr) + compressedHr);
            maskLr = fromBoth[0];
            if (content_encoder2 is not null)
                maskHr = fromBoth[1];
        }

        maskLr = KernelNormalizer.Normalize(maskLr, kl, hamming_lowpass);

        // With an hr mixing M: the high-pass filter (CARAFE ×1) weighs every channel alike when there is one up-sampling
        // group, so M · (2hr − CARAFE(hr)) = 2y − CARAFE(y) for y = M · hr, which the hr projection's narrower source
        // gives directly; with several groups M goes after the filter.
        var hrMixing = _shortcuts?.HrMixing;
        bool mixHrFirst = hrMixing is not null && o.UpGroup == 1;
        var filtered = mixHrFirst ? SpatialConvolution.Mix(hrMixing!, hr, _shortcuts!.HrProjection) : hr;
        Tensor hrOut;
        if (maskHr is not null)
        {
            var highpassKernels = KernelNormalizer.Normalize(maskHr, kh, hamming_highpass);
            // The high frequencies x − CARAFE(x), plus x again with hr_residual.
            hrOut = Carafe.HighPass(filtered, highpassKernels, kh, o.HrResidual ? 2 : 1, o.CarafePadding);
        }
        else
        {
            hrOut = filtered.alias();
        }
        if (hrMixing is not null && !mixHrFirst)
            hrOut = SpatialConvolution.Mix(hrMixing, hrOut, null);

        var lrOut = UpsampleLr(lr, maskLr, compressedHr, compressedLr, _shortcuts?.LrMixing);
        return (maskLr.MoveToOuterDisposeScope(), hrOut.MoveToOuterDisposeScope(), lrOut.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The lr path: ALPF up-sampling (CARAFE ×2), then the offset generator's resampling. With a <paramref name="mixing"/>
    /// M, returns M · that instead, computed as Σ_g resample_g(CARAFE(M_g · lr_g)) over the resampling groups g (M_g
    /// M's columns of group g's channels): CARAFE weighs every channel alike and each group resamples all its channels
    /// at the same positions, so both commute with mixing a group's channels. M_g then multiplies the lr feature at its
    /// own resolution, a quarter of the pixels, against 4× fewer products in the fuse layer's largest part (the concat
    /// head's last stage). The groups go one at a time, each summed into the result as it is resampled: a map of
    /// every group's M channels at full resolution (G·M channels, 67 MB at the concat head's last stage for one 512²
    /// image) is never formed, so no allocation outgrows glibc's heap into fresh, page-faulting mappings.
    /// CARAFE weighs its up-sampling groups differently, so M goes first only when each resampling group lies in one
    /// up-sampling group (their count divides the resampling groups'; always with the heads' single one), and after the
    /// resampling otherwise.
    /// </summary>
    Tensor UpsampleLr(Tensor lr, Tensor maskLr, Tensor compressedHr, Tensor compressedLr, Tensor? mixing)
    {
        var o = _options;
        int groups = dysampler is null ? 1 : o.FeatureResampleGroup;
        bool mixFirst = mixing is not null && groups % o.UpGroup == 0;
        if (mixFirst && AllGroupsAtOnceForBenchmark)
        {
            var mixed = cat(Enumerable.Range(0, groups).Select(g => GroupMixed(lr, mixing!, g, groups)).ToArray(), 1);
            var sampled = dysampler is null ? Upsample(mixed, maskLr) : dysampler.call(compressedHr, compressedLr, Upsample(mixed, maskLr));
            return sampled.view(sampled.shape[0], groups, mixing!.shape[0], sampled.shape[2], sampled.shape[3]).sum(1);
        }
        if (mixFirst)
        {
            var grid = dysampler?.Grid(compressedHr, compressedLr);
            Tensor? first = null, sum = null;
            for (int g = 0; g < groups; g++)
            {
                // Each group's maps are freed before the next group's are made (autograd keeps what its backward needs).
                using var groupScope = NewDisposeScope();
                var upsampled = Upsample(GroupMixed(lr, mixing!, g, groups), UpGroupKernels(maskLr, g / (groups / o.UpGroup)));
                var resampled = dysampler is null ? upsampled : dysampler.SampleGroup(upsampled, grid!, g);
                // The sum starts as a tensor of its own: an operator's output may be a view (the benchmarks' profiler
                // returns each through an identity node), which autograd does not let change in place.
                if (first is null)
                {
                    first = resampled.MoveToOuterDisposeScope();
                }
                else if (sum is null)
                {
                    sum = (first + resampled).MoveToOuterDisposeScope();
                    first.Dispose();
                }
                else
                {
                    sum.add_(resampled);
                }
            }
            return sum ?? first!;
        }
        var lrOut = Upsample(lr, maskLr);
        if (dysampler is not null)
            lrOut = dysampler.call(compressedHr, compressedLr, lrOut);
        return mixing is null ? lrOut : PointwiseConvolution.Forward(mixing.reshape(mixing.shape[0], -1, 1, 1), null, lrOut);
    }

    /// <summary>Set by the benchmarks' <c>profile ab --experiment all-groups-at-once</c> only: the mixed groups up-sampled and resampled as one map of all their channels, then summed.</summary>
    internal static bool AllGroupsAtOnceForBenchmark { get; set; }

    /// <summary>The ALPF's up-sampling: CARAFE ×2 with the low-pass kernels (or CARAFE ×1 of the nearest-neighbour 2× map without semi-conv).</summary>
    Tensor Upsample(Tensor x, Tensor maskLr) => _options.SemiConv
        ? Reassemble(x, maskLr, _options.LowpassKernel, 2)
        : Reassemble(Nearest2x(x), maskLr, _options.LowpassKernel, 1);

    /// <summary>Up-sampling group <paramref name="upGroup"/>'s low-pass kernels of <paramref name="maskLr"/> [B, UpGroup·k², H, W].</summary>
    Tensor UpGroupKernels(Tensor maskLr, int upGroup)
    {
        int k2 = _options.LowpassKernel * _options.LowpassKernel;
        return _options.UpGroup == 1 ? maskLr : maskLr.narrow(1, upGroup * k2, k2);
    }

    /// <summary>[B, C, h, w] → [B, M, h, w]: group <paramref name="group"/>'s channels (a block of C / G) mixed by M's columns of them.</summary>
    static Tensor GroupMixed(Tensor x, Tensor mixing, int group, int groups)
    {
        long b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3], perGroup = c / groups;
        var columns = mixing.narrow(1, group * perGroup, perGroup);
        return matmul(columns, x.narrow(1, group * perGroup, perGroup).reshape(b, perGroup, h * w)).view(b, mixing.shape[0], h, w);
    }

    /// <summary>The ALPF and (when there is one) AHPF generators on one feature, as one convolution: they read the same input.</summary>
    Tensor[] Encode(Tensor compressed) =>
        SpatialConvolution.Forward(content_encoder2 is null ? [content_encoder] : [content_encoder, content_encoder2], compressed);

    Tensor Reassemble(Tensor x, Tensor kernels, int kernelSize, int upFactor) =>
        Carafe.Lean(x, kernels, kernelSize, upFactor, _options.CarafePadding);

    static Tensor Nearest2x(Tensor x) =>
        nn.functional.interpolate(x, size: new[] { 2 * x.shape[2], 2 * x.shape[3] }, mode: InterpolationMode.Nearest);

    void CheckInputs(Tensor hr, Tensor lr)
    {
        ArgumentNullException.ThrowIfNull(hr);
        ArgumentNullException.ThrowIfNull(lr);
        string shapes = $"hr {Carafe.Shape(hr)} and lr {Carafe.Shape(lr)}";
        if (hr.dim() != 4 || lr.dim() != 4)
            throw new ArgumentException($"FreqFusion needs 4-D features [B, C, H, W]; got {shapes}.", nameof(hr));
        if (hr.shape[1] != _options.HrChannels || lr.shape[1] != _options.LrChannels)
            throw new ArgumentException(
                $"FreqFusion was built for {_options.HrChannels} hr channels and {_options.LrChannels} lr channels; got {shapes}.", nameof(hr));
        if (hr.shape[0] != lr.shape[0])
            throw new ArgumentException($"FreqFusion needs the same batch size for hr and lr; got {shapes}.", nameof(lr));
        if (hr.shape[2] != 2 * lr.shape[2] || hr.shape[3] != 2 * lr.shape[3])
            throw new ArgumentException(
                $"FreqFusion needs hr exactly twice the height and width of lr; got {shapes}. " +
                "Pad the image to a multiple of the network's output stride so every level halves exactly.", nameof(hr));
    }
}
