using MLNetFreqFusion.Decoders;
using MLNetFreqFusion.Operators;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Operators;

[TestClass]
public sealed class ComposedProjectionTests
{
    /// <summary>
    /// A 1×1 convolution of a projection from fewer channels is computed from the projection's source with composed
    /// weights; output and the gradients of the source and of both layers' weights and biases must be those of the
    /// convolution of the projected map, in float64 so any difference is a real one.
    /// </summary>
    [TestMethod]
    public void AConvolutionOfANarrowerProjectionIsTheConvolutionOfTheProjectedMap()
    {
        using var scope = NewDisposeScope();
        manual_seed(24);
        using var mlp = new Mlp(6, 10);
        mlp.to(ScalarType.Float64);
        using var conv = nn.Conv2d(10, 4, 1, dtype: float64);
        var x = randn(new long[] { 2, 6, 5, 7 }, float64).requires_grad_();
        var projected = mlp.call(x);
        var projection = mlp.Of(x);
        Assert.IsTrue(SpatialConvolution.Composes(conv, projected, projection), "6 source channels under 10 projected ones compose");
        var composed = SpatialConvolution.Forward(conv, projected, projection);
        var expected = conv.call(projected);
        Assert.IsTrue(composed.allclose(expected, rtol: 1e-12, atol: 1e-12), "forward");
        var inputs = new[] { x }.Concat(mlp.parameters()).Concat(conv.parameters()).ToArray();
        GradientAssert.Same([composed], [expected], inputs, ["source", "projection weight", "projection bias", "convolution weight", "convolution bias"],
            rtol: 1e-10, atol: 1e-10, "composed convolution");
    }

    /// <summary>Only a 1×1 convolution of a projection from fewer channels composes; otherwise the projected map is read.</summary>
    [TestMethod]
    public void OnlyNarrowerSourcesCompose()
    {
        using var scope = NewDisposeScope();
        using var narrow = new Mlp(6, 10);
        using var wide = new Mlp(10, 10);
        using var pointwise = nn.Conv2d(10, 4, 1);
        using var spatial = nn.Conv2d(10, 4, 3, padding: 1);
        var x = randn(1, 6, 4, 4);
        var square = randn(1, 10, 4, 4);
        Assert.IsTrue(SpatialConvolution.Composes(pointwise, narrow.call(x), narrow.Of(x)));
        Assert.IsFalse(SpatialConvolution.Composes(pointwise, wide.call(square), wide.Of(square)), "as many source channels as projected ones: nothing to gain");
        Assert.IsFalse(SpatialConvolution.Composes(spatial, narrow.call(x), narrow.Of(x)), "a 3×3 convolution reads the projected map");
        SpatialConvolution.ComposedProjectionsOffForBenchmark = true;
        try
        {
            Assert.IsFalse(SpatialConvolution.Composes(pointwise, narrow.call(x), narrow.Of(x)), "the benchmarks' switch");
        }
        finally
        {
            SpatialConvolution.ComposedProjectionsOffForBenchmark = false;
        }
    }

    /// <summary>
    /// The concat head hands each projected stage's source to its FreqFusion: the hr compressors of stages narrower than
    /// the decoder read the backbone's channels, the others the projected map, and the head's output is the same as with
    /// every compressor reading the projected map (float64).
    /// </summary>
    [TestMethod]
    public void TheConcatHeadCompressesNarrowerStagesFromTheirSource()
    {
        using var scope = NewDisposeScope();
        manual_seed(25);
        int[] stages = [4, 8, 16, 32];
        using var head = new FreqFusionHead(stages, channels: 16, numberOfClasses: 3, dropoutRatio: 0, compressRatio: 8);
        head.to(ScalarType.Float64);
        head.eval();
        var features = stages.Select((c, i) => randn(new long[] { 2, c, 32 >> i, 32 >> i }, float64)).ToArray();
        var recorder = new InputChannels();
        foreach (var (path, module) in head.named_modules())
            if (path.EndsWith(".hr_channel_compressor", StringComparison.Ordinal))
                OperatorProfile.NameModuleSection(module, path);
        OperatorProfile.Recorder = recorder;
        Tensor output;
        try
        {
            output = head.ForwardFeatures(features);
        }
        finally
        {
            OperatorProfile.Recorder = null;
        }
        // freqfusions[f] takes stage 2 − f as hr: stages of 4 and 8 channels compose, 16 (the decoder's width) does not.
        var compressors = recorder.Reads.Where(read => read.Contains("hr_channel_compressor", StringComparison.Ordinal)).ToArray();
        CollectionAssert.AreEquivalent(new[] { "freqfusions.0.hr_channel_compressor reads 16", "freqfusions.1.hr_channel_compressor reads 8", "freqfusions.2.hr_channel_compressor reads 4" },
            compressors, string.Join("; ", compressors));
        SpatialConvolution.ComposedProjectionsOffForBenchmark = true;
        try
        {
            Assert.IsTrue(head.ForwardFeatures(features).allclose(output, rtol: 1e-10, atol: 1e-10), "the head's output with every compressor on the projected map");
        }
        finally
        {
            SpatialConvolution.ComposedProjectionsOffForBenchmark = false;
        }
    }

    /// <summary>Notes the channels each named section reads.</summary>
    sealed class InputChannels : IOperatorRecorder
    {
        readonly List<string> _sections = [];
        public List<string> Reads { get; } = [];
        public int Begin(string section)
        {
            _sections.Add(section);
            return _sections.Count - 1;
        }
        public Tensor Input(int id, Tensor input)
        {
            Reads.Add($"{_sections[id]} reads {input.shape[1]}");
            return input;
        }
        public Tensor End(int id, Tensor output) => output;
    }
}
