using MLNetFreqFusion.Fusion;
using MLNetFreqFusion.Operators;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MLNetFreqFusion.Decoders;

/// <summary>The FreqFusion settings of the authors' segmentation heads, shared by both FreqFusion heads.</summary>
internal static class FreqFusionHeadSettings
{
    public const int LowpassKernel = 5;
    public const int HighpassKernel = 3;
    public const int FeatureResampleGroup = 4;

    /// <summary>
    /// FreqFusion between an hr and an lr feature as the authors' segmentation heads configure it: compressed width
    /// (hr + lr) / ratio, low-pass 5, high-pass 3, feature resampling in 4 groups, Hamming window off, and the
    /// variant behind their published checkpoints (mmcv's zero-padded CARAFE, offsets from the similarities alone).
    /// Zero padding also lets images as small as 32 pixels through, where reflection needs maps larger than the
    /// kernel radius at stride 32.
    /// </summary>
    public static FreqFusion Create(int hrChannels, int lrChannels, int compressRatio) => new(new FreqFusionOptions
    {
        HrChannels = hrChannels,
        LrChannels = lrChannels,
        CompressedChannels = CompressedChannels(hrChannels, lrChannels, compressRatio),
        LowpassKernel = LowpassKernel,
        HighpassKernel = HighpassKernel,
        UpGroup = 1,
        FeatureResample = true,
        FeatureResampleGroup = FeatureResampleGroup,
        CompFeatUpsample = true,
        HrResidual = true,
        SemiConv = true,
        HammingWindow = false,
        FeatureResampleNorm = true,
        CarafePadding = CarafePadding.Zeros,
        DirectionFeat = DirectionFeat.Sim,
    });

    /// <summary>
    /// (hr + lr) / ratio as in the reference, rounded up to a multiple of 8 when it is not one: the offset
    /// generator group-normalises the compressed feature in width / 8 groups. Every standard configuration is
    /// already a multiple of 8, so the rounding only touches unusual widths.
    /// </summary>
    public static int CompressedChannels(int hrChannels, int lrChannels, int compressRatio)
    {
        int compressed = Math.Max(8, (hrChannels + lrChannels) / compressRatio);
        return (compressed + 7) / 8 * 8;
    }
}

/// <summary>
/// The FreqFusion concat head (<see cref="SegmentationDecoder.FreqFusion"/>), the authors' SegFormer + FreqFusion
/// design and the twin of <see cref="SegFormerHead"/>: the same per-stage linear projections to the decoder width and
/// the same fuse layer, with FreqFusion in place of the bilinear resizes. From the deepest stage up, FreqFusion fuses
/// the running low-resolution feature with the next projected stage; the filtered hr feature and the up-sampled lr
/// feature are concatenated, interleaved per resampling group, and carried on, so the 1/4-scale map holds every stage
/// at the decoder width as SegFormer's does (the fuse layer's product with it is computed without forming it,
/// <see cref="FuseLastStage"/>).
/// </summary>
internal sealed class FreqFusionHead : DecodeHead
{
    private readonly ModuleList<Mlp> linear_c;
    private readonly ModuleList<FreqFusion> freqfusions;
    private readonly Conv2d linear_fuse;
    private readonly BatchNorm2d batch_norm;

    public FreqFusionHead(IReadOnlyList<int> inChannels, int channels, int numberOfClasses, double dropoutRatio, int compressRatio)
        : base(nameof(FreqFusionHead))
    {
        if (inChannels.Count < 2)
            throw new ArgumentException("The FreqFusion head fuses at least two backbone stages.", nameof(inChannels));
        linear_c = new ModuleList<Mlp>(inChannels.Select(c => new Mlp(c, channels)).ToArray());
        // freqfusions[f] fuses projected stage n − 2 − f (hr) with the f + 1 deeper stages fused so far (lr).
        freqfusions = new ModuleList<FreqFusion>(Enumerable.Range(1, inChannels.Count - 1)
            .Select(deeper => FreqFusionHeadSettings.Create(channels, deeper * channels, compressRatio)).ToArray());
        linear_fuse = Conv2d(channels * inChannels.Count, channels, 1, bias: false);
        batch_norm = BatchNorm2d(channels);
        AddClassifier(channels, numberOfClasses, dropoutRatio);
    }

    /// <summary>Set by the benchmarks' <c>profile ab --experiment fuse-after-upsampling</c> only: the fuse layer reads the concatenated 1/4-scale map.</summary>
    internal static bool FuseAfterUpsamplingForBenchmark { get; set; }

    public override Tensor ForwardFeatures(Tensor[] features)
    {
        CheckFeatures(features, linear_c.Count, "FreqFusion");
        var lr = linear_c[features.Length - 1].call(features[^1]);
        for (int f = 0; f < freqfusions.Count; f++)
        {
            int stage = features.Length - 2 - f;
            var projection = linear_c[stage];
            var hr = projection.call(features[stage]);
            if (f == freqfusions.Count - 1 && !FuseAfterUpsamplingForBenchmark)
                return FuseLastStage(freqfusions[f], hr, lr, projection.Of(features[stage]));
            var (_, hrOut, lrOut) = freqfusions[f].CallComposed(hr, lr, projection.Of(features[stage]), lrMixing: null);
            lr = Interleaved(hrOut, lrOut);
        }
        return functional.relu(batch_norm.call(SpatialConvolution.Forward(linear_fuse, lr)));
    }

    /// <summary>
    /// Interleaving keeps each resampling group's hr and lr channels together, so the next FreqFusion's offset groups
    /// see matching channel blocks, as in the reference head.
    /// </summary>
    static Tensor Interleaved(Tensor hrOut, Tensor lrOut)
    {
        const int groups = FreqFusionHeadSettings.FeatureResampleGroup;
        long batch = hrOut.shape[0], height = hrOut.shape[2], width = hrOut.shape[3];
        return cat([hrOut.reshape(batch * groups, -1, height, width), lrOut.reshape(batch * groups, -1, height, width)], 1)
            .reshape(batch, -1, height, width);
    }

    /// <summary>
    /// The last fusion and the fuse layer: the fuse layer's 1×1 map of the interleaved 1/4-scale map is its columns of
    /// the hr channels times the filtered hr feature plus its columns of the lr channels times the up-sampled lr
    /// feature, and FreqFusion applies both before filtering and up-sampling (<see cref="FreqFusion.CallComposed"/>): the
    /// lr columns where the lr feature has a quarter of the pixels, the hr columns composed with the stage's projection
    /// from the backbone's narrower map. The concatenated map is never formed.
    /// </summary>
    Tensor FuseLastStage(FreqFusion freqfusion, Tensor hr, Tensor lr, LinearProjection hrProjection)
    {
        const int groups = FreqFusionHeadSettings.FeatureResampleGroup;
        long outputs = linear_fuse.weight!.shape[0], hrChannels = hr.shape[1], lrChannels = lr.shape[1];
        // Columns in the interleaved order: per group, its hr channels, then its lr channels.
        var columns = linear_fuse.weight.view(outputs, groups, (hrChannels + lrChannels) / groups);
        long hrPerGroup = hrChannels / groups;
        var hrColumns = columns[.., .., ..(int)hrPerGroup].reshape(outputs, hrChannels);
        var lrColumns = columns[.., .., (int)hrPerGroup..].reshape(outputs, lrChannels);
        var (_, mixedHr, mixedLr) = freqfusion.CallComposed(hr, lr, hrProjection, lrColumns, hrColumns);
        return functional.relu(batch_norm.call(mixedHr + mixedLr));
    }
}
