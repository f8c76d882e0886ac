using MLNetFreqFusion.Decoders;
using MLNetFreqFusion.Fusion;
using MLNetFreqFusion.Operators;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Fusion;

/// <summary>
/// The shortcuts a decode head takes through <see cref="FreqFusion.CallComposed"/> are the same linear maps in another
/// order: outputs and every gradient must equal the plain call's followed by the maps, in float64 so any difference is
/// a real one.
/// </summary>
[TestClass]
public sealed class FreqFusionCompositionTests
{
    /// <summary>
    /// An lr mixing M applied before the up-sampling returns M times the up-sampled lr feature: with the heads'
    /// configuration (four resampling groups, zero padding), without feature resampling (one group), without the
    /// semi-shift convolution (nearest up-sampling first), with reflect padding, and with two up-sampling groups, which
    /// each hold two resampling groups (M first) or, without resampling, share the one group (M after the resampling).
    /// </summary>
    [TestMethod]
    [DataRow("heads")]
    [DataRow("no resampling")]
    [DataRow("no semi-conv")]
    [DataRow("reflect")]
    [DataRow("two up groups")]
    [DataRow("two up groups, no resampling")]
    public void MixingBeforeUpsamplingEqualsMixingTheUpsampledFeature(string configuration)
    {
        using var scope = NewDisposeScope();
        manual_seed(26);
        var options = new FreqFusionOptions
        {
            HrChannels = 8, LrChannels = 16, CompressedChannels = 8, LowpassKernel = 5, HighpassKernel = 3, FeatureResample = true,
            FeatureResampleGroup = 4, CompFeatUpsample = true, HrResidual = true, SemiConv = true, HammingWindow = false,
            CarafePadding = CarafePadding.Zeros, DirectionFeat = DirectionFeat.Sim,
        };
        switch (configuration)
        {
            case "no resampling": options.FeatureResample = false; break;
            case "no semi-conv": options.SemiConv = false; break;
            case "reflect": options.CarafePadding = CarafePadding.Reflect; break;
            case "two up groups": options.UpGroup = 2; break;
            case "two up groups, no resampling": options.UpGroup = 2; options.FeatureResample = false; break;
        }
        using var module = new FreqFusion(options);
        module.to(ScalarType.Float64);
        var hr = randn(new long[] { 2, 8, 12, 10 }, float64).requires_grad_();
        var lr = randn(new long[] { 2, 16, 6, 5 }, float64).requires_grad_();
        var mixing = randn(new long[] { 5, 16 }, float64).requires_grad_();
        var (_, hrOut, lrOut) = module.call(hr, lr);
        var expected = PointwiseConvolution.Forward(mixing.view(5, 16, 1, 1), null, lrOut);
        var (_, composedHr, mixed) = module.CallComposed(hr, lr, hrProjection: null, lrMixing: mixing);
        CollectionAssert.AreEqual(new long[] { 2, 5, 12, 10 }, mixed.shape, configuration);
        Assert.IsTrue(mixed.allclose(expected, rtol: 1e-10, atol: 1e-10), $"{configuration}: forward");
        Assert.IsTrue(composedHr.allclose(hrOut, rtol: 0, atol: 0), $"{configuration}: the hr output is untouched");
        var upstream = randn_like(expected);
        var inputs = new[] { hr, lr, mixing }.Concat(module.parameters()).ToArray();
        var grads = autograd.grad(new[] { mixed }, inputs, new[] { upstream }, allow_unused: true);
        var expectedGrads = autograd.grad(new[] { expected }, inputs, new[] { upstream }, allow_unused: true);
        var names = new[] { "hr", "lr", "mixing" }.Concat(module.named_parameters().Select(p => p.name)).ToArray();
        for (int i = 0; i < inputs.Length; i++)
        {
            if (expectedGrads[i] is null || expectedGrads[i].IsInvalid)
                continue;
            Assert.IsTrue(grads[i].allclose(expectedGrads[i], rtol: 1e-9, atol: 1e-10), $"{configuration}: gradient of {names[i]}");
        }
    }

    [TestMethod]
    public void AMixingOfTheWrongWidthIsAnArgumentException()
    {
        using var scope = NewDisposeScope();
        using var module = FreqFusionHeadSettings.Create(8, 16, 2);
        var error = Assert.ThrowsExactly<ArgumentException>(() => module.CallComposed(randn(1, 8, 8, 8), randn(1, 16, 4, 4), null, randn(5, 12)));
        StringAssert.Contains(error.Message, "[5, 12]");
        StringAssert.Contains(error.Message, "16");
    }

    /// <summary>
    /// The concat head's last fusion takes its fuse layer's lr columns into FreqFusion and never forms the concatenated
    /// 1/4-scale map; its output and the gradients of every parameter and feature equal the head with the fuse layer on
    /// that map (the benchmarks' switch), in float64, in training mode (batch statistics) and in evaluation mode.
    /// </summary>
    [TestMethod]
    [DataRow(true)]
    [DataRow(false)]
    public void TheConcatHeadsFuseLayerBeforeUpsamplingEqualsTheFuseLayerOnTheConcatenatedMap(bool training)
    {
        using var scope = NewDisposeScope();
        manual_seed(27);
        int[] stages = [4, 8, 16, 32];
        using var head = new FreqFusionHead(stages, channels: 16, numberOfClasses: 3, dropoutRatio: 0, compressRatio: 8);
        head.to(ScalarType.Float64);
        head.train(training);
        var features = stages.Select((c, i) => randn(new long[] { 2, c, 32 >> i, 32 >> i }, float64).requires_grad_()).ToArray();
        var inputs = features.Concat(head.parameters()).ToArray();
        (Tensor Output, Tensor[] Grads) Run(bool concatenated)
        {
            FreqFusionHead.FuseAfterUpsamplingForBenchmark = concatenated;
            try
            {
                var output = head.ForwardFeatures(features);
                var upstream = ones_like(output) + arange(output.numel(), dtype: float64).view(output.shape) / output.numel();
                return (output, autograd.grad(new[] { output }, inputs, new[] { upstream }, allow_unused: true).ToArray());
            }
            finally
            {
                FreqFusionHead.FuseAfterUpsamplingForBenchmark = false;
            }
        }
        var (output, grads) = Run(concatenated: false);
        var (expected, expectedGrads) = Run(concatenated: true);
        Assert.IsTrue(output.allclose(expected, rtol: 1e-9, atol: 1e-10), "forward");
        var names = Enumerable.Range(0, features.Length).Select(i => $"feature {i}").Concat(head.named_parameters().Select(p => p.name)).ToArray();
        for (int i = 0; i < inputs.Length; i++)
        {
            if (expectedGrads[i] is null || expectedGrads[i].IsInvalid)
                continue;
            Assert.IsTrue(grads[i].allclose(expectedGrads[i], rtol: 1e-8, atol: 1e-9), $"gradient of {names[i]}");
        }
    }
}
