using System.Text.Json;
using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Decoders;
using MLNetFreqFusion.Fusion;
using MLNetFreqFusion.Networks;
using Onnx;

namespace MLNetFreqFusion.Onnx;

/// <summary>
/// Emits a whole <see cref="SegmentationNetwork"/>: input normalisation, mirror padding to the stride, backbone,
/// decode head (FreqFusion with its CARAFE, kernel normalisation, local similarity and offset resampler included),
/// bilinear up-sampling, cropping back, and the argmax. Each part mirrors its TorchSharp forward operation by
/// operation, in the same order, so the two agree to float32 rounding.
/// </summary>
internal sealed class OnnxNetworkEmitter : OnnxModuleEmitter
{
    public const string InputName = "image";
    public const string LogitsName = "logits";
    public const string LabelsName = "labels";

    readonly SegmentationNetwork _network;

    OnnxNetworkEmitter(OnnxGraphBuilder builder, SegmentationNetwork network) : base(builder, network)
    {
        _network = network;
    }

    /// <summary>The ONNX model of <paramref name="network"/>'s eval-mode forward, logits and labels.</summary>
    public static ModelProto Emit(SegmentationNetwork network, IReadOnlyList<string>? classNames)
    {
        ArgumentNullException.ThrowIfNull(network);
        var builder = new OnnxGraphBuilder();
        new OnnxNetworkEmitter(builder, network).EmitGraph();
        var architecture = network.Architecture;
        var metadata = new Dictionary<string, string>
        {
            ["backbone"] = architecture.Backbone.ToString(),
            ["decoder"] = architecture.Decoder.ToString(),
            ["number_of_classes"] = network.NumberOfClasses.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["size_divisor"] = SegmentationNetwork.SizeDivisor.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        if (classNames is not null)
            metadata["class_names"] = JsonSerializer.Serialize(classNames);
        return builder.ToModel(
            $"MLNetFreqFusion semantic segmentation ({architecture.Backbone} + {architecture.Decoder}): '{InputName}' float32 [N,3,H,W] RGB 0..255 → " +
            $"'{LogitsName}' float32 [N,K,H,W], '{LabelsName}' int64 [N,H,W].",
            metadata);
    }

    void EmitGraph()
    {
        int classes = _network.NumberOfClasses;
        B.AddInput(InputName, 3, "RGB pixels, float32 in 0..255, any batch size, height and width.");
        B.Unique(InputName);
        var backbone = _network.BackboneModule;
        var x = Normalize(InputName, backbone.Normalization);
        x = MirrorPad(x, axis: 2);
        x = MirrorPad(x, axis: 3);
        var features = Backbone(x, backbone, "backbone");
        var stages = _network.Architecture.InputStages;
        var logits = DecodeHead(stages.Select(s => features[s]).ToArray());
        logits = B.ResizeBilinear(logits, B.Dims(x, 2, 4));
        logits = B.Node("Slice", [logits, B.Int64s(0, 0), B.Dims(InputName, 2, 4), B.Int64s(2, 3)]);
        B.Rename(logits, LogitsName);
        var labels = B.Node("ArgMax", [LogitsName], ("axis", 1), ("keepdims", 0));
        B.Rename(labels, LabelsName);
        B.AddOutput(LogitsName, TensorProto.Types.DataType.Float, ["N", classes, "H", "W"], "Class logits (before softmax) at the input's size.");
        B.AddOutput(LabelsName, TensorProto.Types.DataType.Int64, ["N", "H", "W"], "The predicted class of every pixel (argmax of the logits).");
    }

    /// <summary>(x·scale − mean)·(1/std) per channel, after the channel flip for BGR backbones, as <see cref="InputNormalization.Apply"/>.</summary>
    string Normalize(string rgb, InputNormalization normalization)
    {
        var x = normalization.ToBgr ? B.Gather(rgb, B.Int64s(2, 1, 0), axis: 1) : rgb;
        // Multiplying by exactly 1 changes nothing, so those steps are left out.
        if (normalization.Scale != 1.0)
            x = B.Mul(x, B.Scalar((float)normalization.Scale));
        x = B.Sub(x, B.Weights("input_mean", normalization.Mean.Select(v => (float)v).ToArray(), 1, 3, 1, 1));
        if (normalization.Std.Any(s => s != 1.0))
            x = B.Mul(x, B.Weights("input_inverse_std", normalization.Std.Select(s => (float)(1.0 / s)).ToArray(), 1, 3, 1, 1));
        return x;
    }

    /// <summary>
    /// <see cref="SegmentationNetwork.MirrorPad"/> along one axis as a Gather: repeated reflection up to the next multiple
    /// of the stride reads source index i mod 2(n−1), folded back above n−1 (a triangle wave); a side of one pixel repeats.
    /// </summary>
    string MirrorPad(string x, int axis)
    {
        var n = B.Gather(B.Shape(x), B.Int64Scalar(axis), axis: 0);
        long divisor = SegmentationNetwork.SizeDivisor;
        var padded = B.Mul(B.Div(B.Add(n, B.Int64Scalar(divisor - 1)), B.Int64Scalar(divisor)), B.Int64Scalar(divisor));
        var index = B.Node("Range", [B.Int64Scalar(0), padded, B.Int64Scalar(1)]);
        var period = B.Node("Max", [B.Mul(B.Sub(n, B.Int64Scalar(1)), B.Int64Scalar(2)), B.Int64Scalar(1)]);
        var phase = B.Node("Mod", [index, period]);
        var source = B.Node("Where", [B.Node("Less", [phase, n]), phase, B.Sub(period, phase)]);
        return B.Gather(x, source, axis);
    }

    // ---- Decode heads ----

    string DecodeHead(string[] features)
    {
        const string head = "decode_head";
        var fused = _network.DecodeHeadModule switch
        {
            SegFormerHead => SegFormerFeatures(features, head),
            FpnHead => FpnFeatures(features, head),
            FreqFusionHead => FreqFusionHeadFeatures(features, head),
            var other => throw new NotSupportedException($"ONNX export: the decode head {other.GetType().Name} has no ONNX emitter."),
        };
        // Dropout is the identity in eval mode.
        return Conv(fused, head + ".classifier");
    }

    string SegFormerFeatures(string[] features, string head)
    {
        var size = B.Dims(features[0], 2, 4);
        var projected = new string[features.Length];
        for (int i = 0; i < features.Length; i++)
        {
            var y = LinearAsConv(features[i], $"{head}.linear_c.{i}.proj");
            projected[features.Length - 1 - i] = i == 0 ? y : B.ResizeBilinear(y, size);
        }
        return B.Relu(Conv(B.Concat(1, projected), head + ".linear_fuse", head + ".batch_norm"));
    }

    string ConvModule(string x, string prefix) => B.Relu(Conv(x, prefix + ".conv", prefix + ".bn"));

    string FpnFeatures(string[] features, string head)
    {
        var y = ConvModule(features[^1], $"{head}.lateral_convs.{features.Length - 1}");
        for (int i = features.Length - 2; i >= 0; i--)
        {
            var lateral = ConvModule(features[i], $"{head}.lateral_convs.{i}");
            var freqFusion = $"{head}.freqfusions.{i}";
            if (Has(freqFusion))
            {
                var (hrOut, lrOut) = FreqFusion(lateral, y, freqFusion);
                y = B.Add(hrOut, lrOut);
            }
            else
            {
                y = B.Add(lateral, B.ResizeBilinear(y, B.Dims(lateral, 2, 4)));
            }
        }
        return ConvModule(y, head + ".fpn_conv");
    }

    string FreqFusionHeadFeatures(string[] features, string head)
    {
        const int groups = FreqFusionHeadSettings.FeatureResampleGroup;
        string Projected(int stage) => LinearAsConv(features[stage], $"{head}.linear_c.{stage}.proj");
        var lr = Projected(features.Length - 1);
        for (int f = 0; Has($"{head}.freqfusions.{f}"); f++)
        {
            var (hrOut, lrOut) = FreqFusion(Projected(features.Length - 2 - f), lr, $"{head}.freqfusions.{f}");
            // The head's interleaving: group g's hr channels, then its lr channels, for g = 0…groups−1.
            long hrPerGroup = ChannelsOf($"{head}.freqfusions.{f}", hr: true) / groups;
            long lrPerGroup = ChannelsOf($"{head}.freqfusions.{f}", hr: false) / groups;
            var parts = new List<string>();
            for (int g = 0; g < groups; g++)
            {
                parts.Add(B.Channels(hrOut, g * hrPerGroup, (g + 1) * hrPerGroup));
                parts.Add(B.Channels(lrOut, g * lrPerGroup, (g + 1) * lrPerGroup));
            }
            lr = B.Concat(1, parts.ToArray());
        }
        return B.Relu(Conv(lr, head + ".linear_fuse", head + ".batch_norm"));
    }

    long ChannelsOf(string freqFusion, bool hr)
    {
        var options = Module<FreqFusion>(freqFusion).Options;
        return hr ? options.HrChannels : options.LrChannels;
    }

    // ---- FreqFusion ----

    /// <summary>The filtered hr feature and the up-sampled (and resampled) lr feature, as <see cref="Fusion.FreqFusion.forward"/>.</summary>
    (string Hr, string Lr) FreqFusion(string hr, string lr, string prefix)
    {
        var o = Module<FreqFusion>(prefix).Options;
        if (o.UpGroup != 1)
            throw new NotSupportedException($"ONNX export: FreqFusion '{prefix}' reassembles in {o.UpGroup} kernel groups; only UpGroup = 1 (the segmentation heads' setting) is exported.");
        int kl = o.LowpassKernel, kh = o.HighpassKernel;
        var lowpassWindow = Buffer(prefix + ".hamming_lowpass");
        var highpassWindow = Buffer(prefix + ".hamming_highpass");
        string Encode(string x) => Conv(x, prefix + ".content_encoder");
        string Encode2(string x) => Conv(x, prefix + ".content_encoder2");
        string Normalize(string logits, int k, TorchSharp.torch.Tensor window) => NormalizeKernels(logits, k, window);
        string Reassemble(string x, string kernels, int k, int up) => Carafe(x, kernels, k, up, o.CarafePadding);

        var compressedHr = Conv(hr, prefix + ".hr_channel_compressor");
        var compressedLr = Conv(lr, prefix + ".lr_channel_compressor");
        string maskLr;
        string? maskHr = null;
        if (o.SemiConv && o.CompFeatUpsample)
        {
            var highpassFromHr = Encode2(compressedHr);
            var initialHighpass = Normalize(highpassFromHr, kh, highpassWindow);
            compressedHr = B.Sub(B.Add(compressedHr, compressedHr), Reassemble(compressedHr, initialHighpass, kh, 1));

            var lowpassFromHr = Encode(compressedHr);
            var initialLowpass = Normalize(lowpassFromHr, kl, lowpassWindow);
            maskLr = B.Add(lowpassFromHr, Reassemble(Encode(compressedLr), initialLowpass, kl, 2));

            var fusedLowpass = Normalize(maskLr, kl, lowpassWindow);
            maskHr = B.Add(highpassFromHr, Reassemble(Encode2(compressedLr), fusedLowpass, kl, 2));
        }
        else if (o.SemiConv)
        {
            maskLr = B.Add(Encode(compressedHr), B.Nearest2x(Encode(compressedLr)));
            if (o.UseHighPass)
                maskHr = B.Add(Encode2(compressedHr), B.Nearest2x(Encode2(compressedLr)));
        }
        else
        {
            var compressed = B.Add(B.Nearest2x(compressedLr), compressedHr);
            maskLr = Encode(compressed);
            if (o.UseHighPass)
                maskHr = Encode2(compressed);
        }

        maskLr = Normalize(maskLr, kl, lowpassWindow);
        var lrOut = o.SemiConv ? Reassemble(lr, maskLr, kl, 2) : Reassemble(B.Nearest2x(lr), maskLr, kl, 1);

        string hrOut = hr;
        if (maskHr is not null)
        {
            var highpassKernels = Normalize(maskHr, kh, highpassWindow);
            var highFrequencies = B.Sub(hr, Reassemble(hr, highpassKernels, kh, 1));
            hrOut = o.HrResidual ? B.Add(highFrequencies, hr) : highFrequencies;
        }

        if (o.FeatureResample)
            lrOut = ResampleByOffsets(compressedHr, compressedLr, lrOut, prefix + ".dysampler", o);
        return (hrOut, lrOut);
    }

    /// <summary>
    /// <see cref="Operators.KernelNormalizer.Normalize"/> for one kernel group, whose k² taps are the channel axis:
    /// the softmax of the logits shifted by the window's logarithm.
    /// </summary>
    string NormalizeKernels(string logits, int k, TorchSharp.torch.Tensor window)
    {
        long k2 = (long)k * k;
        var values = Values(window);
        // The reference's softmax times the window over its sum is softmax(x + ln w); a one-element window cancels out.
        if (values.Length == k2)
            logits = B.Add(logits, B.Weights("hamming_window_log", values.Select(v => MathF.Log(v)).ToArray(), 1, k2, 1, 1));
        return B.Softmax(logits, 1);
    }

    /// <summary>
    /// <see cref="Operators.Carafe.Lean"/> at output resolution: the padded input is nearest-up-sampled once, after
    /// which the window of tap (i, j) for every output pixel is one strided-free slice; k² Slice, Mul, Add.
    /// </summary>
    string Carafe(string x, string kernels, int k, int up, CarafePadding padding)
    {
        if (up is not (1 or 2))
            throw new NotSupportedException($"ONNX export: CARAFE up-sampling by {up} is not exported (FreqFusion uses 1 and 2).");
        int pad = k / 2;
        var padded = pad == 0 ? x : B.Node("Pad", [x, B.Int64s(0, 0, pad, pad, 0, 0, pad, pad)],
            ("mode", padding == CarafePadding.Reflect ? "reflect" : "constant"));
        var source = up == 1 ? padded : B.Nearest2x(padded);
        string? accumulated = null;
        for (int i = 0; i < k; i++)
        {
            for (int j = 0; j < k; j++)
            {
                var window = B.Slice(source, [up * i, up * j], [SliceEnd(up, pad, i), SliceEnd(up, pad, j)], [2, 3]);
                var tap = B.Channels(kernels, i * k + j, i * k + j + 1);
                var product = B.Mul(window, tap);
                accumulated = accumulated is null ? product : B.Add(accumulated, product);
            }
        }
        return accumulated!;
    }

    /// <summary>The end of a window that starts at up·offset in a map padded by up·pad on each side: negative, from the end.</summary>
    static long SliceEnd(int up, int pad, int offset) => offset == 2 * pad ? long.MaxValue : -(long)up * (2 * pad - offset);

    /// <summary>
    /// <see cref="Operators.LocalSimilarity.Cosine"/> with window 3 and dilation 2: unit vectors, zero padding, one
    /// dot product per neighbour (row-major, centre left out).
    /// </summary>
    string LocalCosineSimilarity(string x)
    {
        const int window = 3, dilation = 2, reach = window / 2 * dilation;
        var norm = B.Node("ReduceL2", [x], ("axes", new long[] { 1 }), ("keepdims", 1));
        var unit = B.Div(x, B.Node("Max", [norm, B.Scalar(1e-8f)]));
        var padded = B.Node("Pad", [unit, B.Int64s(0, 0, reach, reach, 0, 0, reach, reach)], ("mode", "constant"));
        var similarities = new List<string>();
        for (int i = 0; i < window; i++)
        {
            for (int j = 0; j < window; j++)
            {
                if (i == window / 2 && j == window / 2)
                    continue;
                long EndOf(int o) => o * dilation == 2 * reach ? long.MaxValue : -(2 * reach - o * dilation);
                var neighbour = B.Slice(padded, [i * dilation, j * dilation], [EndOf(i), EndOf(j)], [2, 3]);
                similarities.Add(B.ReduceSum(B.Mul(unit, neighbour), 1));
            }
        }
        return B.Concat(1, similarities.ToArray());
    }

    /// <summary><see cref="LocalSimGuidedSampler"/>: offsets from the local similarities, then grouped bilinear sampling.</summary>
    string ResampleByOffsets(string compressedHr, string compressedLr, string feature, string prefix, FreqFusionOptions o)
    {
        var hr = Has(prefix + ".norm_hr") ? GroupNorm(compressedHr, prefix + ".norm_hr") : compressedHr;
        var lr = Has(prefix + ".norm_lr") ? GroupNorm(compressedLr, prefix + ".norm_lr") : compressedLr;
        var hrSim = LocalCosineSimilarity(hr);
        var lrSim = LocalCosineSimilarity(lr);
        string hrDirection, lrDirection, hrScope, lrScope;
        if (o.DirectionFeat == DirectionFeat.Sim)
        {
            (hrDirection, lrDirection, hrScope, lrScope) = (hrSim, lrSim, hr, lr);
        }
        else
        {
            hrDirection = hrScope = B.Concat(1, hr, hrSim);
            lrDirection = lrScope = B.Concat(1, lr, lrSim);
        }
        var direction = B.Add(Conv(lrDirection, prefix + ".offset"), PixelUnshuffle2(Conv(hrDirection, prefix + ".hr_offset"), prefix + ".hr_offset"));
        var scope = B.Add(Conv(lrScope, prefix + ".direct_scale"), PixelUnshuffle2(Conv(hrScope, prefix + ".hr_direct_scale"), prefix + ".hr_direct_scale"));
        var initialPositions = Buffer(prefix + ".init_pos");
        var offsets = B.Add(B.Mul(direction, B.Sigmoid(scope)), B.Weights(prefix + ".init_pos", Values(initialPositions), initialPositions.shape));
        return GridResample(feature, offsets, o.FeatureResampleGroup, ChannelsOf(prefix[..prefix.LastIndexOf('.')], hr: false));
    }

    /// <summary>torch's pixel_unshuffle by 2 (channel c·4 + phase): SpaceToDepth (phase-major) and a channel permutation.</summary>
    string PixelUnshuffle2(string x, string conv)
    {
        long channels = Module<TorchSharp.Modules.Conv2d>(conv).weight!.shape[0];
        var phaseMajor = B.Node("SpaceToDepth", [x], ("blocksize", 2));
        var permutation = new long[channels * 4];
        for (long c = 0; c < channels; c++)
            for (long phase = 0; phase < 4; phase++)
                permutation[c * 4 + phase] = phase * channels + c;
        return B.Gather(phaseMajor, B.Int64s(permutation), axis: 1);
    }

    /// <summary>
    /// LocalSimGuidedSampler.Sample: offsets (source pixels, [N, 2·G·4, h, w]) around the source-pixel centres,
    /// normalised to grid_sample's [-1, 1] (align_corners = false), pixel-shuffled to 2h×2w, and one GridSample
    /// (bilinear, border padding, align_corners = false) per channel group.
    /// </summary>
    string GridResample(string x, string offsets, int groups, long channels)
    {
        var shape = B.Shape(offsets);
        string SideAsFloat(int axis) => B.Node("Cast", [B.Gather(shape, B.Int64Scalar(axis), axis: 0)], ("to", (long)TensorProto.Types.DataType.Float));
        var h = SideAsFloat(2);
        var w = SideAsFloat(3);
        string Centres(string side, params long[] view) =>
            B.Reshape(B.Add(B.Node("Range", [B.Scalar(0f), side, B.Scalar(1f)]), B.Scalar(0.5f)), view);
        var centresX = Centres(w, 1, 1, 1, -1);
        var centresY = Centres(h, 1, 1, -1, 1);
        long perAxis = 4L * groups;
        string Normalised(string centres, string offset, string side) =>
            B.Sub(B.Div(B.Mul(B.Scalar(2f), B.Add(centres, offset)), side), B.Scalar(1f));
        var gridX = Normalised(centresX, B.Channels(offsets, 0, perAxis), w);
        var gridY = Normalised(centresY, B.Channels(offsets, perAxis, 2 * perAxis), h);
        var grid = B.Node("DepthToSpace", [B.Concat(1, gridX, gridY)], ("blocksize", 2), ("mode", "CRD"));
        long perGroup = channels / groups;
        var sampled = new string[groups];
        for (int g = 0; g < groups; g++)
        {
            var groupGrid = B.Transpose(B.Gather(grid, B.Int64s(g, groups + g), axis: 1), 0, 2, 3, 1);
            sampled[g] = B.Node("GridSample", [B.Channels(x, g * perGroup, (g + 1) * perGroup), groupGrid],
                ("mode", "bilinear"), ("padding_mode", "border"), ("align_corners", 0));
        }
        return B.Concat(1, sampled);
    }
}
