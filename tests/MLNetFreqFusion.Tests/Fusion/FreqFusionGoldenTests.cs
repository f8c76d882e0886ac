using System.Globalization;
using System.Text.Json;
using MLNetFreqFusion.Fusion;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Fusion;

/// <summary>
/// Golden parity with the reference FreqFusion (fixtures produced by the authors' module under PyTorch 1.13.1):
/// the module built from each file's metadata, loaded strictly by name, must reproduce the outputs and the gradients
/// of L = Σ output·cotangent.
/// </summary>
[TestClass]
public sealed class FreqFusionGoldenTests
{
    const double OutputTolerance = 2e-4;
    const double GradientRelativeTolerance = 1e-3;

    static readonly string[] Outputs = { "mask_lr", "hr_feat", "lr_feat" };

    public static IEnumerable<object[]> Cases => FixtureCases().Select(c => new object[] { c });

    static IEnumerable<string> FixtureCases()
    {
        using var index = JsonDocument.Parse(File.ReadAllText(Path.Combine(SafeTensorsFile.FixtureDirectory, "index.json")));
        return index.RootElement.EnumerateArray().Select(e => e.GetProperty("case").GetString()!).ToList();
    }

    [TestMethod]
    public void TheIndexListsTheElevenConfigurations()
    {
        CollectionAssert.AreEquivalent(
            new[]
            {
                "head_default", "hamming_window", "no_resample", "no_comp_upsample", "no_semi_conv", "no_hr_residual",
                "non_square", "resample_groups_2_norm_off", "zero_padding", "kernels_7_5", "segnext_sim_zeros",
            },
            FixtureCases().ToArray());
    }

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void ForwardAndGradientsMatchTheReference(string name)
    {
        using var scope = NewDisposeScope();
        var fixture = SafeTensorsFile.Read(Path.Combine(SafeTensorsFile.FixtureDirectory, name + ".safetensors"));
        using var module = new FreqFusion(OptionsFrom(fixture.Metadata));
        LoadStrict(module, fixture);

        var hr = fixture.Tensor("input.hr_feat").requires_grad_();
        var lr = fixture.Tensor("input.lr_feat").requires_grad_();
        var (maskLr, hrOut, lrOut) = module.call(hr, lr);
        var produced = new[] { maskLr, hrOut, lrOut };

        var loss = zeros(1);
        for (int i = 0; i < Outputs.Length; i++)
        {
            AssertClose(produced[i], fixture.Tensor("output." + Outputs[i]), OutputTolerance, $"{name}: output.{Outputs[i]}");
            loss = loss + (produced[i] * fixture.Tensor("cotangent." + Outputs[i])).sum();
        }
        loss.backward();

        AssertGradient(hr.grad, fixture.Tensor("grad.input.hr_feat"), $"{name}: grad.input.hr_feat");
        AssertGradient(lr.grad, fixture.Tensor("grad.input.lr_feat"), $"{name}: grad.input.lr_feat");
        int checkedParameters = 0;
        foreach (var (key, parameter) in module.named_parameters())
        {
            AssertGradient(parameter.grad, fixture.Tensor("grad.param." + key), $"{name}: grad.param.{key}");
            checkedParameters++;
        }
        Assert.AreEqual(fixture.Names.Count(n => n.StartsWith("grad.param.", StringComparison.Ordinal)), checkedParameters,
            $"{name}: every reference parameter gradient must be checked.");
    }

    /// <summary>Builds the options from a fixture's safetensors metadata (the reference constructor's keywords).</summary>
    internal static FreqFusionOptions OptionsFrom(IReadOnlyDictionary<string, string> m)
    {
        int Int(string key) => int.Parse(m[key], CultureInfo.InvariantCulture);
        bool Bool(string key) => m[key] switch
        {
            "True" => true,
            "False" => false,
            var other => throw new FormatException($"Metadata {key} = '{other}' is not a Python bool."),
        };
        // Our module fixes these two reference keywords at their defaults (they only matter when SemiConv is off).
        Assert.AreEqual("False", m["align_corners"]);
        Assert.AreEqual("nearest", m["upsample_mode"]);
        return new FreqFusionOptions
        {
            HrChannels = Int("hr_channels"),
            LrChannels = Int("lr_channels"),
            CompressedChannels = Int("compressed_channels"),
            ScaleFactor = Int("scale_factor"),
            LowpassKernel = Int("lowpass_kernel"),
            HighpassKernel = Int("highpass_kernel"),
            UpGroup = Int("up_group"),
            EncoderKernel = Int("encoder_kernel"),
            EncoderDilation = Int("encoder_dilation"),
            FeatureResample = Bool("feature_resample"),
            FeatureResampleGroup = Int("feature_resample_group"),
            CompFeatUpsample = Bool("comp_feat_upsample"),
            UseHighPass = Bool("use_high_pass"),
            UseLowPass = Bool("use_low_pass"),
            HrResidual = Bool("hr_residual"),
            SemiConv = Bool("semi_conv"),
            HammingWindow = Bool("hamming_window"),
            FeatureResampleNorm = Bool("feature_resample_norm"),
            CarafePadding = m["carafe_padding"] switch
            {
                "reflect" => CarafePadding.Reflect,
                "zeros" => CarafePadding.Zeros,
                var other => throw new FormatException($"Unknown carafe_padding '{other}'."),
            },
            DirectionFeat = m["direction_feat"] switch
            {
                "sim_concat" => DirectionFeat.SimConcat,
                "sim" => DirectionFeat.Sim,
                var other => throw new FormatException($"Unknown direction_feat '{other}'."),
            },
        };
    }

    /// <summary>Copies every <c>param.*</c> and <c>buffer.*</c> tensor into the module; the key sets must be equal.</summary>
    static void LoadStrict(FreqFusion module, SafeTensorsFile fixture)
    {
        var state = module.state_dict();
        var expected = fixture.Names
            .Where(n => n.StartsWith("param.", StringComparison.Ordinal) || n.StartsWith("buffer.", StringComparison.Ordinal))
            .Select(n => n[(n.IndexOf('.') + 1)..])
            .ToList();
        CollectionAssert.AreEquivalent(expected, state.Keys.ToList(), "state-dict keys must equal the reference's");
        using var noGrad = no_grad();
        foreach (var name in fixture.Names)
        {
            if (!name.StartsWith("param.", StringComparison.Ordinal) && !name.StartsWith("buffer.", StringComparison.Ordinal))
                continue;
            var key = name[(name.IndexOf('.') + 1)..];
            var source = fixture.Tensor(name);
            CollectionAssert.AreEqual(source.shape, state[key].shape, $"shape of {key}");
            state[key].copy_(source);
        }
    }

    static void AssertClose(Tensor actual, Tensor expected, double tolerance, string what)
    {
        CollectionAssert.AreEqual(expected.shape, actual.shape, $"{what}: shape");
        double difference = (actual.detach() - expected).abs().max().item<float>();
        Assert.IsTrue(difference <= tolerance, $"{what}: max |difference| {difference:G3} exceeds {tolerance:G3}.");
    }

    static void AssertGradient(Tensor? actual, Tensor expected, string what)
    {
        Assert.IsNotNull(actual, $"{what}: no gradient was computed.");
        double scale = expected.abs().max().item<float>();
        AssertClose(actual, expected, GradientRelativeTolerance * scale, what);
    }
}
