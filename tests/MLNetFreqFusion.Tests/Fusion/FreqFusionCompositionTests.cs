using MLNetFreqFusion.Decoders;
using MLNetFreqFusion.Fusion;
using MLNetFreqFusion.Operators;
using MLNetFreqFusion.Tests.Operators;
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
    /// Mixings applied before the up-sampling and the high-pass filter return their 1×1 maps of the up-sampled lr
    /// feature and of the filtered hr feature, hr being a projection of a narrower map (composed with the hr mixing):
    /// with the heads' configuration (four resampling groups, zero padding), without feature resampling (one group),
    /// without the semi-shift convolution (nearest up-sampling first), with reflect padding, and with two up-sampling
    /// groups, which each hold two resampling groups (lr mixing first, hr mixing after the filter) or, without
    /// resampling, share the one group (both after).
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
        // hr is a projection of a narrower map, as the concat head's stages are.
        using var projection = new Mlp(6, 8);
        projection.to(ScalarType.Float64);
        var source = randn(new long[] { 2, 6, 12, 10 }, float64).requires_grad_();
        var hr = projection.call(source);
        var lr = randn(new long[] { 2, 16, 6, 5 }, float64).requires_grad_();
        var lrMixing = randn(new long[] { 5, 16 }, float64).requires_grad_();
        var hrMixing = randn(new long[] { 5, 8 }, float64).requires_grad_();
        var (_, hrOut, lrOut) = module.call(hr, lr);
        var expectedLr = PointwiseConvolution.Forward(lrMixing.view(5, 16, 1, 1), null, lrOut);
        var expectedHr = PointwiseConvolution.Forward(hrMixing.view(5, 8, 1, 1), null, hrOut);
        var (_, mixedHr, mixedLr) = module.CallComposed(hr, lr, projection.Of(source), lrMixing, hrMixing);
        CollectionAssert.AreEqual(new long[] { 2, 5, 12, 10 }, mixedLr.shape, configuration);
        CollectionAssert.AreEqual(new long[] { 2, 5, 12, 10 }, mixedHr.shape, configuration);
        Assert.IsTrue(mixedLr.allclose(expectedLr, rtol: 1e-10, atol: 1e-10), $"{configuration}: lr forward");
        Assert.IsTrue(mixedHr.allclose(expectedHr, rtol: 1e-10, atol: 1e-10), $"{configuration}: hr forward");
        var inputs = new[] { source, lr, lrMixing, hrMixing }.Concat(projection.parameters()).Concat(module.parameters()).ToArray();
        var names = new[] { "source", "lr", "lr mixing", "hr mixing", "projection weight", "projection bias" }
            .Concat(module.named_parameters().Select(p => p.name)).ToArray();
        // The two graphs share the projection; GradientAssert keeps both.
        GradientAssert.Same([mixedLr, mixedHr], [expectedLr, expectedHr], inputs, names, rtol: 1e-9, atol: 1e-10, configuration);
    }

    [TestMethod]
    public void AMixingOfTheWrongWidthIsAnArgumentException()
    {
        using var scope = NewDisposeScope();
        using var module = FreqFusionHeadSettings.Create(8, 16, 2);
        var error = Assert.ThrowsExactly<ArgumentException>(() => module.CallComposed(randn(1, 8, 8, 8), randn(1, 16, 4, 4), null, randn(5, 12)));
        StringAssert.Contains(error.Message, "[5, 12]");
        StringAssert.Contains(error.Message, "16");
        error = Assert.ThrowsExactly<ArgumentException>(() => module.CallComposed(randn(1, 8, 8, 8), randn(1, 16, 4, 4), null, null, randn(5, 16)));
        StringAssert.Contains(error.Message, "[5, 16]");
        StringAssert.Contains(error.Message, "8");
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
        Tensor Run(bool concatenated)
        {
            FreqFusionHead.FuseAfterUpsamplingForBenchmark = concatenated;
            try
            {
                return head.ForwardFeatures(features);
            }
            finally
            {
                FreqFusionHead.FuseAfterUpsamplingForBenchmark = false;
            }
        }
        var output = Run(concatenated: false);
        var expected = Run(concatenated: true);
        Assert.IsTrue(output.allclose(expected, rtol: 1e-9, atol: 1e-10), "forward");
        var inputs = features.Concat(head.parameters()).ToArray();
        var names = Enumerable.Range(0, features.Length).Select(i => $"feature {i}").Concat(head.named_parameters().Select(p => p.name)).ToArray();
        GradientAssert.Same([output], [expected], inputs, names, rtol: 1e-8, atol: 1e-9, $"training={training}");
    }

    /// <summary>
    /// The benchmarks' profiler returns each timed operator's output through an identity autograd node, as a view of it,
    /// and autograd refuses to change such a view in place: the concat head's sum over the resampling groups must start
    /// as a tensor of its own, so a training step runs with such a recorder installed and gives the gradients it gives
    /// without one.
    /// </summary>
    [TestMethod]
    public void TheConcatHeadTrainsWhenEveryOperatorOutputIsAView()
    {
        using var scope = NewDisposeScope();
        manual_seed(26);
        int[] stages = [4, 8, 16, 32];
        using var head = new FreqFusionHead(stages, channels: 16, numberOfClasses: 3, dropoutRatio: 0, compressRatio: 8);
        head.train();
        var features = stages.Select((c, i) => randn(new long[] { 2, c, 32 >> i, 32 >> i })).ToArray();
        Tensor[] Gradients(IOperatorRecorder? recorder)
        {
            head.zero_grad();
            OperatorProfile.Recorder = recorder;
            try
            {
                head.ForwardFeatures(features).square().sum().backward();
            }
            finally
            {
                OperatorProfile.Recorder = null;
            }
            // The classifier is not in ForwardFeatures' graph: no gradient, either way.
            return head.parameters().Select(p => p.grad?.clone() ?? zeros(0)).ToArray();
        }
        var expected = Gradients(null);
        var views = new OutputsAsViews();
        var actual = Gradients(views);
        Assert.IsTrue(views.Sections.Contains("grid_sample"), "the recorder saw the resampling");
        Assert.IsTrue(expected.Count(g => g.numel() > 0) > 20, "the head's parameters have gradients");
        for (int i = 0; i < expected.Length; i++)
            Assert.IsTrue(actual[i].shape.SequenceEqual(expected[i].shape) && actual[i].allclose(expected[i], rtol: 1e-5, atol: 1e-7), $"gradient {i}");
    }

    /// <summary>Returns every section's output through an identity function, as the benchmarks' profiler does.</summary>
    sealed class OutputsAsViews : IOperatorRecorder
    {
        public HashSet<string> Sections { get; } = [];
        public int Begin(string section)
        {
            Sections.Add(section);
            return 0;
        }
        public Tensor Input(int id, Tensor input) => input;
        public Tensor End(int id, Tensor output) => output.requires_grad ? Identity.apply(output) : output;
    }

    sealed class Identity : autograd.SingleTensorFunction<Identity>
    {
        public override string Name => "Identity";
        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars) => ((Tensor)vars[0]).alias();
        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput) => [gradOutput];
    }
}
