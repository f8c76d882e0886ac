using System.Text.Json;
using MLNetFreqFusion.Fusion;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Fusion;

[TestClass]
public sealed class FreqFusionTests
{
    static FreqFusionOptions HeadOptions(int channels = 16) => new()
    {
        HrChannels = channels,
        LrChannels = channels + 8,
        CompressedChannels = channels,
        FeatureResample = true,
        HammingWindow = false,
    };

    [TestMethod]
    public void HrNotExactlyTwiceLrIsAnArgumentExceptionNamingBothShapes()
    {
        using var scope = NewDisposeScope();
        using var module = new FreqFusion(HeadOptions());
        var hr = randn(1, 16, 13, 12);
        var lr = randn(1, 24, 6, 6);
        var error = Assert.ThrowsExactly<ArgumentException>(() => module.call(hr, lr));
        StringAssert.Contains(error.Message, "[1, 16, 13, 12]");
        StringAssert.Contains(error.Message, "[1, 24, 6, 6]");
        StringAssert.Contains(error.Message, "twice");
    }

    [TestMethod]
    public void OddSizesThatHalveExactlyAreAccepted()
    {
        using var scope = NewDisposeScope();
        using var module = new FreqFusion(HeadOptions());
        var (maskLr, hr, lr) = module.call(randn(2, 16, 14, 10), randn(2, 24, 7, 5));
        CollectionAssert.AreEqual(new long[] { 2, 25, 14, 10 }, maskLr.shape);
        CollectionAssert.AreEqual(new long[] { 2, 16, 14, 10 }, hr.shape);
        CollectionAssert.AreEqual(new long[] { 2, 24, 14, 10 }, lr.shape);
        // Each low-pass kernel is a distribution over its window.
        Assert.IsTrue(maskLr.sum(1).allclose(ones(2, 14, 10), rtol: 0, atol: 1e-5));
    }

    [TestMethod]
    public void UpGroupsPredictOneKernelPerChannelGroup()
    {
        using var scope = NewDisposeScope();
        var options = HeadOptions();
        options.UpGroup = 2;
        using var module = new FreqFusion(options);
        CollectionAssert.AreEqual(new long[] { 2 * 25, 16, 3, 3 }, module.state_dict()["content_encoder.weight"].shape);
        var (maskLr, _, lr) = module.call(randn(1, 16, 8, 8), randn(1, 24, 4, 4));
        CollectionAssert.AreEqual(new long[] { 1, 50, 8, 8 }, maskLr.shape);
        CollectionAssert.AreEqual(new long[] { 1, 24, 8, 8 }, lr.shape);
        Assert.IsTrue(maskLr.view(1, 2, 25, 8, 8).sum(2).allclose(ones(1, 2, 8, 8), rtol: 0, atol: 1e-5));
    }

    [TestMethod]
    public void WrongChannelCountsAreAnArgumentException()
    {
        using var scope = NewDisposeScope();
        using var module = new FreqFusion(HeadOptions());
        var error = Assert.ThrowsExactly<ArgumentException>(() => module.call(randn(1, 8, 8, 8), randn(1, 24, 4, 4)));
        StringAssert.Contains(error.Message, "[1, 8, 8, 8]");
    }

    /// <summary>State-dict keys, their order and shapes equal the reference's for every fixture configuration.</summary>
    [TestMethod]
    public void StateDictKeysAndShapesEqualTheReference()
    {
        using var index = JsonDocument.Parse(File.ReadAllText(Path.Combine(SafeTensorsFile.FixtureDirectory, "index.json")));
        foreach (var entry in index.RootElement.EnumerateArray())
        {
            string name = entry.GetProperty("case").GetString()!;
            var metadata = SafeTensorsFile.Read(Path.Combine(SafeTensorsFile.FixtureDirectory, entry.GetProperty("file").GetString()!)).Metadata;
            using var module = new FreqFusion(FreqFusionGoldenTests.OptionsFrom(metadata));
            var expected = entry.GetProperty("shapes").EnumerateObject()
                .Where(p => p.Name.StartsWith("param.", StringComparison.Ordinal) || p.Name.StartsWith("buffer.", StringComparison.Ordinal))
                .Select(p => (Key: p.Name[(p.Name.IndexOf('.') + 1)..], Shape: string.Join(",", p.Value.EnumerateArray().Select(d => d.GetInt64()))))
                .ToList();
            var actual = module.state_dict().Select(kv => (Key: kv.Key, Shape: string.Join(",", kv.Value.shape))).ToList();
            CollectionAssert.AreEqual(expected.Select(e => $"{e.Key} [{e.Shape}]").ToList(), actual.Select(a => $"{a.Key} [{a.Shape}]").ToList(), name);
        }
    }

    [TestMethod]
    public void TheDefaultHeadHasTheReferenceKeyList()
    {
        using var module = new FreqFusion(HeadOptions());
        CollectionAssert.AreEqual(
            new[]
            {
                "hr_channel_compressor.weight", "hr_channel_compressor.bias", "lr_channel_compressor.weight", "lr_channel_compressor.bias",
                "content_encoder.weight", "content_encoder.bias",
                "dysampler.offset.weight", "dysampler.offset.bias", "dysampler.direct_scale.weight", "dysampler.direct_scale.bias",
                "dysampler.hr_offset.weight", "dysampler.hr_offset.bias", "dysampler.hr_direct_scale.weight", "dysampler.hr_direct_scale.bias",
                "dysampler.norm_hr.weight", "dysampler.norm_hr.bias", "dysampler.norm_lr.weight", "dysampler.norm_lr.bias",
                "content_encoder2.weight", "content_encoder2.bias",
                "hamming_lowpass", "hamming_highpass", "dysampler.init_pos",
            },
            module.state_dict().Keys.ToList());
    }

    /// <summary>
    /// The reference's effective initialisation: Xavier-uniform convolutions (the offset generator's too) with zero
    /// bias, kernel encoders N(0, 0.001), group norms 1/0, sub-pixel initial positions ±1/4, Hamming buffers.
    /// </summary>
    [TestMethod]
    public void InitialisationIsTheReferencesEffectiveOne()
    {
        using var scope = NewDisposeScope();
        manual_seed(11);
        using var module = new FreqFusion(new FreqFusionOptions { HrChannels = 64, LrChannels = 96, FeatureResample = true });
        var encoders = new[] { "content_encoder", "content_encoder2" };
        int xavierConvs = 0;
        foreach (var (name, child) in module.named_modules())
        {
            if (child is not Conv2d conv)
                continue;
            Assert.AreEqual(0f, conv.bias!.abs().max().item<float>(), $"{name}.bias");
            var weight = conv.weight!;
            double std = weight.std().item<float>();
            if (encoders.Contains(name))
            {
                Assert.AreEqual(0.001, std, 0.0001, $"{name}.weight std");
                continue;
            }
            long receptive = weight.shape[2] * weight.shape[3];
            double bound = Math.Sqrt(6.0 / (weight.shape[1] * receptive + weight.shape[0] * receptive));
            double largest = weight.abs().max().item<float>();
            Assert.IsTrue(largest <= bound && largest > 0.95 * bound, $"{name}.weight: max |w| {largest} vs Xavier bound {bound}");
            Assert.AreEqual(bound / Math.Sqrt(3), std, 0.1 * bound / Math.Sqrt(3), $"{name}.weight std");
            xavierConvs++;
        }
        Assert.AreEqual(6, xavierConvs, "two compressors and the offset generator's four convolutions");

        var state = module.state_dict();
        foreach (var norm in new[] { "dysampler.norm_hr", "dysampler.norm_lr" })
        {
            Assert.IsTrue(state[norm + ".weight"].eq(1).all().item<bool>(), norm);
            Assert.IsTrue(state[norm + ".bias"].eq(0).all().item<bool>(), norm);
        }
        Assert.AreEqual(64 / 8, ((GroupNorm)module.named_modules().First(m => m.name == "dysampler.norm_hr").module).num_groups);

        // Offsets are laid out [x/y, group, dy, dx]: x follows dx, y follows dy.
        var initPos = state["dysampler.init_pos"].view(2, 4, 2, 2);
        var quarter = tensor(new float[] { -0.25f, 0.25f });
        Assert.IsTrue(initPos[0].eq(quarter.view(1, 1, 2).expand(4, 2, 2)).all().item<bool>(), "x positions");
        Assert.IsTrue(initPos[1].eq(quarter.view(1, 2, 1).expand(4, 2, 2)).all().item<bool>(), "y positions");

        CollectionAssert.AreEqual(new long[] { 1, 1, 5, 5 }, state["hamming_lowpass"].shape);
        CollectionAssert.AreEqual(new long[] { 1, 1, 3, 3 }, state["hamming_highpass"].shape);
        Assert.AreEqual(1f, state["hamming_lowpass"][0, 0, 2, 2].item<float>(), 1e-6f);
    }

    [TestMethod]
    public void DefaultsAreTheReferenceConstructorsDefaults()
    {
        var o = new FreqFusionOptions();
        Assert.AreEqual(64, o.CompressedChannels);
        Assert.AreEqual(1, o.ScaleFactor);
        Assert.AreEqual(5, o.LowpassKernel);
        Assert.AreEqual(3, o.HighpassKernel);
        Assert.AreEqual(1, o.UpGroup);
        Assert.AreEqual(3, o.EncoderKernel);
        Assert.AreEqual(1, o.EncoderDilation);
        Assert.IsFalse(o.FeatureResample);
        Assert.AreEqual(4, o.FeatureResampleGroup);
        Assert.IsTrue(o.CompFeatUpsample);
        Assert.IsTrue(o.UseHighPass);
        Assert.IsTrue(o.UseLowPass);
        Assert.IsTrue(o.HrResidual);
        Assert.IsTrue(o.SemiConv);
        Assert.IsTrue(o.HammingWindow);
        Assert.IsTrue(o.FeatureResampleNorm);
        Assert.AreEqual(CarafePadding.Reflect, o.CarafePadding);
        Assert.AreEqual(DirectionFeat.SimConcat, o.DirectionFeat);
    }

    [TestMethod]
    public void ConfigurationsTheReferenceCannotRunAreRejectedWithTheOptionNamed()
    {
        void Rejects(Action<FreqFusionOptions> change, string option)
        {
            var options = HeadOptions();
            change(options);
            var error = Assert.Throws<ArgumentException>(() => new FreqFusion(options));
            StringAssert.Contains(error.Message, option);
        }
        Rejects(o => o.ScaleFactor = 2, nameof(FreqFusionOptions.ScaleFactor));
        Rejects(o => o.UseLowPass = false, nameof(FreqFusionOptions.UseLowPass));
        Rejects(o => o.UseHighPass = false, nameof(FreqFusionOptions.UseHighPass));
        Rejects(o => o.LowpassKernel = 4, nameof(FreqFusionOptions.LowpassKernel));
        Rejects(o => o.HrChannels = 0, nameof(FreqFusionOptions.HrChannels));
        Rejects(o => o.FeatureResampleGroup = 3, nameof(FreqFusionOptions.FeatureResampleGroup));
        Rejects(o => o.CompressedChannels = 4, nameof(FreqFusionOptions.CompressedChannels));
    }

    [TestMethod]
    public void WithoutHighPassTheHrFeatureIsPassedThroughAndHasNoEncoder()
    {
        using var scope = NewDisposeScope();
        var options = HeadOptions();
        options.UseHighPass = false;
        options.CompFeatUpsample = false;
        using var module = new FreqFusion(options);
        Assert.IsFalse(module.state_dict().ContainsKey("content_encoder2.weight"));
        var hr = randn(1, 16, 8, 8);
        var (_, hrOut, _) = module.call(hr, randn(1, 24, 4, 4));
        Assert.IsTrue(hrOut.allclose(hr, rtol: 0, atol: 0));
    }

    /// <summary>
    /// Predictions build the offset generator's sampling grid in one pass from its four convolutions' outputs; the grid
    /// must be the one the operations that training uses build (within float32 rounding: the sigmoid's exponential is
    /// .NET's there), with both direction features, one and four groups, non-square maps, and offsets whose positions
    /// fall outside the image (clipped) or are NaN (the centre).
    /// </summary>
    [TestMethod]
    [DataRow(4, 1, 6, 10)]
    [DataRow(1, 0, 5, 3)]
    [DataRow(4, 0, 8, 8)]
    public void ThePredictionGridInOnePassIsTheOperationsGrid(int groups, int simConcat, int h, int w)
    {
        using var scope = NewDisposeScope();
        manual_seed(27);
        using var sampler = new LocalSimGuidedSampler(16, groups, 3, norm: true, simConcat == 1 ? DirectionFeat.SimConcat : DirectionFeat.Sim);
        // Weights large enough that some offsets leave the image.
        using (no_grad())
            foreach (var parameter in sampler.parameters())
                parameter.mul_(40);
        var hr = randn(2, 16, 2 * h, 2 * w);
        var lr = randn(2, 16, h, w);
        lr[1, .., 1, 2] = full(16, float.NaN);
        Tensor Grid(bool loop)
        {
            LocalSimGuidedSampler.PositionLoopOffForBenchmark = !loop;
            try
            {
                using var noGrad = no_grad();
                return sampler.Grid(hr, lr);
            }
            finally
            {
                LocalSimGuidedSampler.PositionLoopOffForBenchmark = false;
            }
        }
        var expected = Grid(loop: false);
        var actual = Grid(loop: true);
        CollectionAssert.AreEqual(expected.shape, actual.shape);
        Assert.IsTrue(expected.abs().eq(1).any().item<bool>(), "some positions are clipped to the image's edge");
        Assert.IsTrue(expected.eq(0).any().item<bool>(), "the NaN pixel's positions are the centre");
        Assert.IsFalse(actual.isnan().any().item<bool>(), "no NaN position");
        double worst = (actual - expected).abs().max().item<float>();
        Assert.IsTrue(worst <= 2e-6, $"the loop's grid differs from the operations' by {worst:G3}");
    }
}
