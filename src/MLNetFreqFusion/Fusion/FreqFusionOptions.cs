namespace MLNetFreqFusion.Fusion;

/// <summary>
/// Options of a <see cref="FreqFusion"/> module (Chen et al., "Frequency-aware Feature Fusion for Dense Image
/// Prediction", TPAMI 2024). One property per keyword of the reference constructor, with the same default and meaning,
/// plus the CARAFE padding and the offset generator's input features.
/// </summary>
public sealed class FreqFusionOptions
{
    /// <summary>Channels of the high-resolution input (<c>hr_channels</c>). Required.</summary>
    public int HrChannels { get; set; }

    /// <summary>Channels of the low-resolution input (<c>lr_channels</c>). Required.</summary>
    public int LrChannels { get; set; }

    /// <summary>
    /// Width both inputs are compressed to by 1×1 convolutions before the ALPF and AHPF generators and the offset
    /// generator predict kernels and offsets from them (<c>compressed_channels</c>). Default 64.
    /// </summary>
    public int CompressedChannels { get; set; } = 64;

    /// <summary>
    /// Kernel scale factor (<c>scale_factor</c>): the kernel encoders predict scale² kernels per pixel. Default 1.
    /// The reference builds wider encoders for larger values but its forward pass cannot use them, so only 1 is accepted.
    /// </summary>
    public int ScaleFactor { get; set; } = 1;

    /// <summary>Size k of the adaptive low-pass filters (ALPF) that smooth and up-sample the low-resolution feature (<c>lowpass_kernel</c>). Odd; default 5.</summary>
    public int LowpassKernel { get; set; } = 5;

    /// <summary>Size of the adaptive high-pass filters (AHPF) that restore detail in the high-resolution feature (<c>highpass_kernel</c>). Odd; default 3.</summary>
    public int HighpassKernel { get; set; } = 3;

    /// <summary>Channel groups sharing one CARAFE kernel (<c>up_group</c>); each group gets its own kernel. Default 1.</summary>
    public int UpGroup { get; set; } = 1;

    /// <summary>Kernel size of the ALPF/AHPF generators' convolutions and of the offset generator's convolutions (<c>encoder_kernel</c>). Odd; default 3.</summary>
    public int EncoderKernel { get; set; } = 3;

    /// <summary>Dilation of the ALPF/AHPF generators' convolutions (<c>encoder_dilation</c>). Default 1.</summary>
    public int EncoderDilation { get; set; } = 1;

    /// <summary>
    /// Whether the offset generator resamples the up-sampled low-resolution feature towards similar neighbours to
    /// fix inconsistent boundaries (<c>feature_resample</c>). Default false, as in the reference; the authors'
    /// segmentation heads turn it on.
    /// </summary>
    public bool FeatureResample { get; set; }

    /// <summary>Channel groups of the offset generator, each with its own offsets (<c>feature_resample_group</c>). Default 4.</summary>
    public int FeatureResampleGroup { get; set; } = 4;

    /// <summary>
    /// Whether the ALPF and AHPF kernels are themselves up-sampled with the initial low-pass kernels and the
    /// compressed high-resolution feature is first sharpened by an initial AHPF (<c>comp_feat_upsample</c>);
    /// otherwise the low-resolution kernel logits are nearest-up-sampled. Default true.
    /// </summary>
    public bool CompFeatUpsample { get; set; } = true;

    /// <summary>Whether the AHPF branch adds back high-frequency detail to the high-resolution feature (<c>use_high_pass</c>). Default true.</summary>
    public bool UseHighPass { get; set; } = true;

    /// <summary>
    /// <c>use_low_pass</c>: the reference accepts this keyword but always applies the ALPF. Default true; false is
    /// rejected rather than silently ignored.
    /// </summary>
    public bool UseLowPass { get; set; } = true;

    /// <summary>
    /// Whether the AHPF output is the high-resolution feature plus its high-pass component (true) or the high-pass
    /// component alone (<c>hr_residual</c>). Default true.
    /// </summary>
    public bool HrResidual { get; set; } = true;

    /// <summary>
    /// Whether the ALPF kernels up-sample the low-resolution feature directly (CARAFE ×2, "semi-convolution") rather
    /// than filtering its nearest-up-sampled copy, and whether the kernels are predicted from the two compressed
    /// features separately (<c>semi_conv</c>). Default true.
    /// </summary>
    public bool SemiConv { get; set; } = true;

    /// <summary>Whether the ALPF/AHPF kernels are shaped by a 2-D Hamming window, a mild regulariser (<c>hamming_window</c>). Default true.</summary>
    public bool HammingWindow { get; set; } = true;

    /// <summary>
    /// Whether the offset generator group-normalises (CompressedChannels / 8 groups) both compressed features before
    /// computing similarities and offsets (<c>feature_resample_norm</c>). Default true.
    /// </summary>
    public bool FeatureResampleNorm { get; set; } = true;

    /// <summary>What CARAFE reads outside the map. Default <see cref="Fusion.CarafePadding.Reflect"/> (the reference's pure-PyTorch CARAFE).</summary>
    public CarafePadding CarafePadding { get; set; } = CarafePadding.Reflect;

    /// <summary>Which features the offset generator predicts offsets from. Default <see cref="Fusion.DirectionFeat.SimConcat"/> (the reference's top-level module).</summary>
    public DirectionFeat DirectionFeat { get; set; } = DirectionFeat.SimConcat;

    /// <summary>A copy of these options.</summary>
    public FreqFusionOptions Clone() => (FreqFusionOptions)MemberwiseClone();

    internal void Validate()
    {
        static void Positive(int value, string name)
        {
            if (value < 1)
                throw new ArgumentOutOfRangeException(name, value, $"FreqFusionOptions.{name} must be positive.");
        }
        static void OddPositive(int value, string name)
        {
            if (value < 1 || value % 2 == 0)
                throw new ArgumentOutOfRangeException(name, value, $"FreqFusionOptions.{name} must be odd and positive (kernels are centred on a pixel).");
        }

        Positive(HrChannels, nameof(HrChannels));
        Positive(LrChannels, nameof(LrChannels));
        Positive(CompressedChannels, nameof(CompressedChannels));
        Positive(UpGroup, nameof(UpGroup));
        Positive(EncoderDilation, nameof(EncoderDilation));
        Positive(FeatureResampleGroup, nameof(FeatureResampleGroup));
        OddPositive(LowpassKernel, nameof(LowpassKernel));
        OddPositive(HighpassKernel, nameof(HighpassKernel));
        OddPositive(EncoderKernel, nameof(EncoderKernel));
        if (!Enum.IsDefined(CarafePadding))
            throw new ArgumentOutOfRangeException(nameof(CarafePadding), CarafePadding, "Unknown CARAFE padding.");
        if (!Enum.IsDefined(DirectionFeat))
            throw new ArgumentOutOfRangeException(nameof(DirectionFeat), DirectionFeat, "Unknown offset-generator input.");
        if (ScaleFactor != 1)
            throw new ArgumentOutOfRangeException(nameof(ScaleFactor), ScaleFactor,
                "FreqFusionOptions.ScaleFactor must be 1: the reference's forward pass never pixel-shuffles the scale² kernels its encoders predict for larger factors, so no trained model uses them.");
        if (!UseLowPass)
            throw new ArgumentException(
                "FreqFusionOptions.UseLowPass = false is not supported: the reference ignores this keyword and always applies the low-pass filters (ALPF). Leave it true.",
                nameof(UseLowPass));
        if (SemiConv && CompFeatUpsample && !UseHighPass)
            throw new ArgumentException(
                "FreqFusionOptions.UseHighPass = false needs SemiConv = false or CompFeatUpsample = false: up-sampling the compressed features (CompFeatUpsample) uses the initial high-pass filters, as in the reference.",
                nameof(UseHighPass));
        foreach (var (channels, name) in new[] { (LrChannels, nameof(LrChannels)), (HrChannels, nameof(HrChannels)), (CompressedChannels, nameof(CompressedChannels)) })
        {
            if (channels % UpGroup != 0)
                throw new ArgumentException($"FreqFusionOptions.{name} ({channels}) must be a multiple of UpGroup ({UpGroup}): each CARAFE kernel group covers an equal share of the channels.", name);
        }
        if (FeatureResample)
        {
            if (CompressedChannels % FeatureResampleGroup != 0 || LrChannels % FeatureResampleGroup != 0)
                throw new ArgumentException(
                    $"With FeatureResample, CompressedChannels ({CompressedChannels}) and LrChannels ({LrChannels}) must be multiples of FeatureResampleGroup ({FeatureResampleGroup}): each offset group resamples an equal share of the channels.",
                    nameof(FeatureResampleGroup));
            if (FeatureResampleNorm && (CompressedChannels < 8 || CompressedChannels % (CompressedChannels / 8) != 0))
                throw new ArgumentException(
                    $"With FeatureResampleNorm, the offset generator group-normalises the compressed features in CompressedChannels / 8 groups, so CompressedChannels ({CompressedChannels}) must be at least 8 and divisible by CompressedChannels / 8.",
                    nameof(CompressedChannels));
        }
    }
}
