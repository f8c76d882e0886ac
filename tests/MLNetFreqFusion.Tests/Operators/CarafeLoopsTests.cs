using System.Runtime.Intrinsics.X86;
using MLNetFreqFusion.Fusion;
using MLNetFreqFusion.Operators;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Operators;

/// <summary>
/// CARAFE in float32 runs as <see cref="CarafeLoops"/> (AVX2/FMA loops); these tests hold it to the unfold
/// formulation computed in float64.
/// </summary>
[TestClass]
public sealed class CarafeLoopsTests
{
    /// <summary>
    /// Forward and both gradients through <see cref="Carafe.Lean"/> against the unfold formulation in float64, on shapes
    /// that reach every path of the loops: widths of one vector of 8 and of whole and partial vectors beyond (the overlapping last vector), channel
    /// counts per group that leave a remainder after blocks of 4, one and two kernel groups, several bands of 4 rows
    /// per image, one and two threads, both paddings, kernel sizes 1, 3 and 5, up factors 1 and 2, and non-contiguous inputs.
    /// </summary>
    [TestMethod]
    public void LoopsEqualUnfoldForwardAndBackwardInFloat32()
    {
        var random = new Random(20261207);
        manual_seed(11);
        int threadsBefore = get_num_threads(), cases = 0;
        try
        {
            foreach (int threads in new[] { 1, 2 })
            {
                set_num_threads(threads);
                foreach (int up in new[] { 1, 2 })
                foreach (int k in new[] { 1, 3, 5 })
                foreach (var padding in new[] { CarafePadding.Zeros, CarafePadding.Reflect })
                foreach (long w in new long[] { 8, 13, 21 })
                {
                    using var scope = NewDisposeScope();
                    int groups = random.Next(1, 3);
                    long b = random.Next(1, 3), c = groups * random.Next(1, 7), h = random.Next(Math.Max(k / 2 + 1, 3), 11);
                    // Every other case reads a channels-last input and transposed kernels, which the loops copy first.
                    bool strided = cases % 2 == 1;
                    var x = strided ? randn(new[] { b, h, w, c }).permute(0, 3, 1, 2) : randn(new[] { b, c, h, w });
                    var kernels = strided ? rand(new[] { b, groups * k * k, up * w, up * h }).transpose(2, 3) : rand(new[] { b, groups * k * k, up * h, up * w });
                    var cotangent = randn(new[] { b, c, up * h, up * w });
                    string what = $"up={up} k={k} {padding} groups={groups} x=[{b}, {c}, {h}, {w}] threads={threads} strided={strided}";
                    Assert.AreEqual(Avx2.IsSupported && Fma.IsSupported, CarafeLoops.Fits(x, kernels, up), $"{what}: the loops run on this host");

                    var (output, gradX, gradKernels) = WithGradients(x, kernels, cotangent, (a, m) => Carafe.Lean(a, m, k, up, padding));
                    var (expected, expectedGradX, expectedGradKernels) = WithGradients(x.to(float64), kernels.to(float64), cotangent.to(float64),
                        (a, m) => Carafe.Unfold(a, m, k, up, padding));
                    AssertClose(expected, output, $"{what}: forward");
                    AssertClose(expectedGradX, gradX, $"{what}: d/dx");
                    AssertClose(expectedGradKernels, gradKernels, $"{what}: d/dkernels");
                    cases++;
                }
            }
        }
        finally
        {
            set_num_threads(threadsBefore);
        }
        Assert.AreEqual(72, cases);
    }

    /// <summary>
    /// FreqFusion's high-pass filter in one operator, r·x − CARAFE ×1(x), forward and both gradients against the
    /// unfold formulation in float64: residual 2 (hr_residual) and 1, both paddings, kernel sizes 3 and 5, one and two
    /// groups, widths of whole and partial vectors (the overlapping last vector stores the residual twice), channel
    /// counts with a remainder after blocks of 4; and in float64, where the loops do not run.
    /// </summary>
    [TestMethod]
    public void HighPassInOnePassEqualsResidualMinusTheUnfoldCarafe()
    {
        manual_seed(12);
        int cases = 0;
        foreach (float residual in new[] { 2f, 1f })
        foreach (var padding in new[] { CarafePadding.Zeros, CarafePadding.Reflect })
        foreach (var (k, groups, c, w) in new[] { (3, 1, 7, 8), (3, 2, 10, 13), (5, 1, 5, 21) })
        foreach (var dtype in new[] { float32, float64 })
        {
            using var scope = NewDisposeScope();
            var x = randn(new long[] { 2, c, 9, w }, dtype);
            var kernels = rand(new long[] { 2, groups * k * k, 9, w }, dtype);
            var cotangent = randn(new long[] { 2, c, 9, w }, dtype);
            string what = $"residual {residual} {padding} k={k} groups={groups} c={c} w={w} {dtype}";
            var (output, gradX, gradKernels) = WithGradients(x, kernels, cotangent, (a, m) => Carafe.HighPass(a, m, k, residual, padding));
            var (expected, expectedGradX, expectedGradKernels) = WithGradients(x.to(float64), kernels.to(float64), cotangent.to(float64),
                (a, m) => residual * a - Carafe.Unfold(a, m, k, 1, padding));
            AssertClose(expected, output.to(float32), $"{what}: forward");
            AssertClose(expectedGradX, gradX.to(float32), $"{what}: d/dx");
            AssertClose(expectedGradKernels, gradKernels.to(float32), $"{what}: d/dkernels");
            cases++;
        }
        Assert.AreEqual(24, cases);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => Carafe.HighPass(randn(1, 2, 8, 8), rand(1, 9, 8, 8), 3, 0, CarafePadding.Zeros));
        StringAssert.Contains(error.Message, "residual factor is positive");
    }

    /// <summary>The loops' pieces alone, so a wrong one fails here even if the dispatch in <see cref="Carafe"/> stopped reaching it.</summary>
    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    public void EachLoopEqualsItsAtenCounterpart(int up)
    {
        using var scope = NewDisposeScope();
        manual_seed(12);
        const int k = 3, groups = 2;
        // Seven channels per group: blocks of four and of two, and the ones left over.
        long b = 2, c = 14, h = 9, w = 13;
        var x = randn(new[] { b, c, h, w });
        var kernels = rand(new[] { b, groups * k * k, up * h, up * w });
        var cotangent = randn(new[] { b, c, up * h, up * w });
        var padded = nn.functional.pad(x, new long[] { 1, 1, 1, 1 }, PaddingModes.Reflect);
        var (expected, expectedGradX, expectedGradKernels) = WithGradients(x.to(float64), kernels.to(float64), cotangent.to(float64),
            (a, m) => Carafe.Unfold(a, m, k, up, CarafePadding.Reflect));
        var (_, expectedGradPadded, _) = WithGradients(padded.to(float64), kernels.to(float64), cotangent.to(float64),
            // CARAFE of the padded map at its interior pixels (a rim of up output pixels) reads only the map: the
            // rim's kernels are never used.
            (a, m) => Carafe.Unfold(a, nn.functional.pad(m, new long[] { up, up, up, up }), k, up, CarafePadding.Zeros)[.., .., up..^up, up..^up]);

        AssertClose(expected, CarafeLoops.Reassemble(padded, kernels, k, up), "Reassemble");
        AssertClose(expectedGradKernels, CarafeLoops.KernelGradient(padded, cotangent, k, up, groups), "KernelGradient");
        // The gradient of the reflect-padded map, before the padding is folded back: all of it, and its interior.
        AssertClose(expectedGradPadded, CarafeLoops.PaddedGradient(kernels, cotangent, k, up, interiorOnly: false), "PaddedGradient");
        AssertClose(expectedGradPadded[.., .., 1..^1, 1..^1], CarafeLoops.PaddedGradient(kernels, cotangent, k, up, interiorOnly: true), "PaddedGradient interior");
        Assert.IsTrue((expectedGradX - expectedGradPadded[.., .., 1..^1, 1..^1]).abs().max().item<double>() > 1e-3,
            "reflect padding moves gradient from the rim into the map, so the interior alone is not the input's gradient");
    }

    /// <summary>
    /// A group whose channels' rows exceed the kernel gradient's whole-group budget is summed in blocks of channels, with
    /// partial sums stored between blocks; the shapes here (groups of 192 channels in 24 blocks of 8 at ×2, one group and
    /// two; 196 channels at ×1, a block of 4 left over) reach that path, with and without a last vector overlapping the
    /// one before.
    /// </summary>
    [TestMethod]
    [DataRow(2, 5, 1, 192L, 13L)]
    [DataRow(2, 5, 2, 384L, 12L)]
    [DataRow(1, 3, 1, 196L, 45L)]
    public void KernelGradientInChannelBlocksEqualsUnfold(int up, int k, int groups, long c, long w)
    {
        using var scope = NewDisposeScope();
        manual_seed(13);
        long b = 2, h = 9;
        long sourceWidth = up * (w + 2 * (k / 2));
        Assert.IsTrue(c / groups * (k * sourceWidth + up * w) * sizeof(float) > 128 * 1024, "the shape must exceed the whole-group budget");
        var x = randn(new[] { b, c, h, w });
        var kernels = rand(new[] { b, groups * k * k, up * h, up * w });
        var cotangent = randn(new[] { b, c, up * h, up * w });
        var padded = nn.functional.pad(x, new long[] { k / 2, k / 2, k / 2, k / 2 });
        var (_, _, expectedGradKernels) = WithGradients(x.to(float64), kernels.to(float64), cotangent.to(float64),
            (a, m) => Carafe.Unfold(a, m, k, up, CarafePadding.Zeros));
        AssertClose(expectedGradKernels, CarafeLoops.KernelGradient(padded, cotangent, k, up, groups), $"up={up} k={k} groups={groups} c={c} w={w}");
    }

    /// <summary>
    /// The ×2 forward's kernels as rows per source row, the kernel gradient's taps as rows per map row and the feature
    /// gradient read without a zero rim (masked at the edges, rows outside skipped) add the same products in the same
    /// order as the planar, rimmed formulation the benchmarks keep behind their switches: bit for bit equal. Maps of a
    /// power-of-two size (the case the row layouts are for) and of odd width (the overlapping last vector), one and two
    /// kernel groups, several bands and both paddings.
    /// </summary>
    [TestMethod]
    [DataRow(5, 1, 16L, 16L, 0)]
    [DataRow(5, 2, 12L, 13L, 1)]
    [DataRow(3, 2, 9L, 21L, 0)]
    [DataRow(3, 1, 8L, 8L, 1)]
    public void RowLayoutsAndUnrimmedGradientEqualThePlanarLoopsBitForBit(int k, int groups, long h, long w, int reflect)
    {
        if (!Avx2.IsSupported || !Fma.IsSupported)
            Assert.Inconclusive("The CARAFE loops need AVX2 and FMA.");
        using var scope = NewDisposeScope();
        manual_seed(14);
        const int up = 2;
        long b = 2, c = groups * 7;
        var padding = reflect == 1 ? CarafePadding.Reflect : CarafePadding.Zeros;
        var x = randn(new[] { b, c, h, w });
        var kernels = rand(new[] { b, groups * k * k, up * h, up * w });
        var cotangent = randn(new[] { b, c, up * h, up * w });
        (Tensor, Tensor, Tensor) Run(bool planar)
        {
            CarafeLoops.PlanarLayoutsForBenchmark = CarafeLoops.RimmedGradientForBenchmark = planar;
            try
            {
                return WithGradients(x, kernels, cotangent, (a, m) => Carafe.Lean(a, m, k, up, padding));
            }
            finally
            {
                CarafeLoops.PlanarLayoutsForBenchmark = CarafeLoops.RimmedGradientForBenchmark = false;
            }
        }
        var (output, gradX, gradKernels) = Run(planar: false);
        var (planarOutput, planarGradX, planarGradKernels) = Run(planar: true);
        string what = $"k={k} groups={groups} [{b}, {c}, {h}, {w}] {padding}";
        Assert.IsTrue(planarOutput.eq(output).all().item<bool>(), $"{what}: forward");
        Assert.IsTrue(planarGradX.eq(gradX).all().item<bool>(), $"{what}: d/dx");
        Assert.IsTrue(planarGradKernels.eq(gradKernels).all().item<bool>(), $"{what}: d/dkernels");
        // Both ways are the operator: the unfold formulation agrees too.
        var (expected, expectedGradX, expectedGradKernels) = WithGradients(x.to(float64), kernels.to(float64), cotangent.to(float64),
            (a, m) => Carafe.Unfold(a, m, k, up, padding));
        AssertClose(expected, output, $"{what}: forward");
        AssertClose(expectedGradX, gradX, $"{what}: d/dx");
        AssertClose(expectedGradKernels, gradKernels, $"{what}: d/dkernels");
    }

    /// <summary>
    /// The unrimmed feature gradient reads beyond the incoming gradient only through masks and skipped rows, never the
    /// neighbouring row or plane: with infinities on every plane's border, a read there would meet a zero kernel weight
    /// of the rim and make NaN where the rimmed formulation has none. The planes keep exactly the rimmed result.
    /// </summary>
    [TestMethod]
    [DataRow(5, 8L)]
    [DataRow(3, 21L)]
    public void UnrimmedGradientReadsNothingBeyondTheMap(int k, long w)
    {
        if (!Avx2.IsSupported || !Fma.IsSupported)
            Assert.Inconclusive("The CARAFE loops need AVX2 and FMA.");
        using var scope = NewDisposeScope();
        manual_seed(15);
        const int up = 2;
        long b = 2, c = 5, h = 7;
        var kernels = rand(new[] { b, k * k, up * h, up * w });
        var cotangent = randn(new[] { b, c, up * h, up * w });
        cotangent[.., .., 0] = float.PositiveInfinity;
        cotangent[.., .., -1] = float.PositiveInfinity;
        cotangent[.., .., .., 0] = float.PositiveInfinity;
        cotangent[.., .., .., -1] = float.PositiveInfinity;
        Tensor Gradient(bool rimmed)
        {
            CarafeLoops.RimmedGradientForBenchmark = rimmed;
            try
            {
                return CarafeLoops.PaddedGradient(kernels, cotangent, k, up, interiorOnly: true);
            }
            finally
            {
                CarafeLoops.RimmedGradientForBenchmark = false;
            }
        }
        var rimmedGradient = Gradient(rimmed: true);
        var gradient = Gradient(rimmed: false);
        Assert.IsFalse(rimmedGradient.isnan().any().item<bool>(), "the rimmed formulation meets only zeros beyond the map");
        Assert.IsTrue(rimmedGradient.isinf().any().item<bool>(), "the borders' infinities reach the gradient");
        Assert.IsTrue(gradient.isnan().eq(rimmedGradient.isnan()).all().item<bool>(), "NaN where the rimmed formulation has none: a read beyond the map");
        Assert.IsTrue(gradient.eq(rimmedGradient).all().item<bool>(), "the unrimmed gradient differs from the rimmed one");
    }

    /// <summary>
    /// On AVX-512 hosts the ×2 forward takes rows of whole 16-pixel vectors four channels at a time: against the unfold
    /// formulation in float64, and bit for bit against the AVX2 pairs of channels it replaces (the same sums in the same
    /// order). Rows of one, two and three vectors, channel counts per group that leave pairs and single channels after
    /// the blocks, one and two kernel groups, both paddings, batches of two and several bands of rows.
    /// </summary>
    [TestMethod]
    [DataRow(5, 1, 9L, 9L, 16L, 0)]
    [DataRow(5, 2, 12L, 6L, 32L, 1)]
    [DataRow(3, 2, 14L, 7L, 48L, 0)]
    public void Avx512UpsamplingBlocksEqualTheAvx2PairsAndUnfold(int k, int groups, long perGroup, long h, long w, int reflect)
    {
        if (!Avx512F.IsSupported || !Avx2.IsSupported || !Fma.IsSupported)
            Assert.Inconclusive("The ×2 forward's AVX-512 blocks run on AVX-512 hosts only.");
        using var scope = NewDisposeScope();
        manual_seed(15);
        const int up = 2;
        long b = 2, c = groups * perGroup;
        var padding = reflect == 1 ? CarafePadding.Reflect : CarafePadding.Zeros;
        var x = randn(new[] { b, c, h, w });
        var kernels = rand(new[] { b, groups * k * k, up * h, up * w });
        var output = Carafe.Lean(x, kernels, k, up, padding);
        Tensor pairs;
        CarafeLoops.Avx512UpsamplingOffForBenchmark = true;
        try
        {
            pairs = Carafe.Lean(x, kernels, k, up, padding);
        }
        finally
        {
            CarafeLoops.Avx512UpsamplingOffForBenchmark = false;
        }
        string what = $"k={k} groups={groups} [{b}, {c}, {h}, {w}] {padding}";
        AssertClose(Carafe.Unfold(x.to(float64), kernels.to(float64), k, up, padding), output, $"{what}: forward");
        Assert.IsTrue(pairs.eq(output).all().item<bool>(), $"{what}: the AVX-512 blocks differ from the AVX2 pairs");
    }

    [TestMethod]
    public void FitsFloat32CpuMapsAtLeastOneVectorWide()
    {
        using var scope = NewDisposeScope();
        var features = randn(1, 2, 4, 8);
        var kernels = rand(1, 9, 4, 8);
        Assert.AreEqual(Avx2.IsSupported && Fma.IsSupported, CarafeLoops.Fits(features, kernels, 1));
        Assert.IsFalse(CarafeLoops.Fits(features, rand(1, 9, 12, 24), 3), "up factors above 2 keep the ATen formulation");
        Assert.IsFalse(CarafeLoops.Fits(features.to(float64), kernels.to(float64), 1), "float64 keeps the ATen formulation");
        Assert.IsFalse(CarafeLoops.Fits(features, kernels.to(float64), 1));
        Assert.IsFalse(CarafeLoops.Fits(randn(1, 2, 9, 7), rand(1, 9, 9, 7), 1), "maps narrower than one vector keep the ATen formulation");
    }

    static (Tensor Out, Tensor GradX, Tensor GradKernels) WithGradients(Tensor x, Tensor kernels, Tensor cotangent, Func<Tensor, Tensor, Tensor> carafe) =>
        BinaryGradients.Of(carafe, x, kernels, cotangent);

    /// <summary>float32 sums of at most 25 products of unit-scale values: 2e-5 absolute plus 1e-5 relative is ten times their rounding.</summary>
    static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        CollectionAssert.AreEqual(expected.shape, actual.shape, $"{what}: shape");
        Assert.AreEqual(ScalarType.Float32, actual.dtype, $"{what}: dtype");
        var excess = (actual.to(float64) - expected).abs() - (2e-5 + 1e-5 * expected.abs());
        double worst = excess.max().item<double>();
        Assert.IsTrue(worst <= 0, $"{what}: exceeds the float32 tolerance by {worst:G3}.");
    }
}
