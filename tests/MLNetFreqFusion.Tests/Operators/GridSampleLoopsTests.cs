using MLNetFreqFusion.Operators;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Operators;

/// <summary>
/// <see cref="GridSample.Bilinear"/> runs float32 CPU tensors through <see cref="GridSampleLoops"/>; these tests hold
/// it to ATen's <c>grid_sample</c> (bilinear, border padding, align_corners = false) computed in float64.
/// </summary>
[TestClass]
public sealed class GridSampleLoopsTests
{
    /// <summary>
    /// Forward and both gradients on shapes that reach every path: channel counts that leave a remainder after blocks
    /// of 4 and tasks of 8, output sizes other than the input's, more than one task of 1,024 grid pixels with a partial
    /// last one, positions inside the map, in the clipped rim and far outside, one and two threads, non-contiguous
    /// inputs.
    /// </summary>
    [TestMethod]
    [DataRow(2, 5, 7, 9, 6, 11, 1.5, 1, false, DisplayName = "5 channels, output larger in width, partly clipped, 1 thread")]
    [DataRow(2, 5, 7, 9, 6, 11, 1.5, 2, true, DisplayName = "the same, 2 threads, strided input and grid")]
    [DataRow(3, 13, 16, 16, 16, 16, 0.9, 2, false, DisplayName = "13 channels, inside the map")]
    [DataRow(1, 3, 4, 5, 8, 9, 3.0, 2, true, DisplayName = "3 channels, mostly far outside")]
    [DataRow(2, 9, 20, 24, 40, 41, 1.05, 2, false, DisplayName = "1,640 grid pixels: two tasks, the second partial")]
    [DataRow(4, 1, 1, 1, 8, 9, 1.0, 1, false, DisplayName = "a 1×1 input")]
    [DataRow(2, 6, 5, 4, 8, 8, 1.2, 2, false, DisplayName = "the fewest output pixels the loops take: 64")]
    public void LoopsEqualAtenInFloat64(int n, int c, int hi, int wi, int ho, int wo, double spread, int threads, bool strided)
    {
        using var scope = NewDisposeScope();
        manual_seed(31 + c + wo);
        int threadsBefore = get_num_threads();
        try
        {
            set_num_threads(threads);
            var x = strided ? randn(n, hi, wi, c).permute(0, 3, 1, 2) : randn(n, c, hi, wi);
            var grid = strided ? ((rand(n, wo, ho, 2) * 2 - 1) * spread).transpose(1, 2) : (rand(n, ho, wo, 2) * 2 - 1) * spread;
            var cotangent = randn(n, c, ho, wo);
            Assert.IsTrue(GridSampleLoops.Fits(x, grid), "float32 CPU tensors take the loops");

            var (output, gradX, gradGrid) = WithGradients(x, grid, cotangent, GridSample.Bilinear);
            var (expected, expectedGradX, expectedGradGrid) = WithGradients(x.to(float64), grid.to(float64), cotangent.to(float64),
                (a, g) => nn.functional.grid_sample(a, g, GridSampleMode.Bilinear, GridSamplePaddingMode.Border, align_corners: false));
            AssertClose(expected, output, "forward");
            AssertClose(expectedGradX, gradX, "d/dinput");
            AssertClose(expectedGradGrid, gradGrid, "d/dgrid");
        }
        finally
        {
            set_num_threads(threadsBefore);
        }
    }

    [TestMethod]
    public void PositionsClippedToTheBorderTakeTheBorderPixelAndNoGridGradient()
    {
        using var scope = NewDisposeScope();
        var x = arange(12, float32).view(1, 1, 3, 4);
        // x = 1 is the right edge of the last column, beyond its centre: clipped; y = 0 is the middle row's centre.
        // The first three of 64 positions (the fewest the loops take); the others sit at the map's centre.
        var positions = new float[2 * GridSampleLoops.MinimumPixels];
        new float[] { 1f, 0f, -1.5f, 0f }.CopyTo(positions, 0);
        var grid = tensor(positions, new long[] { 1, 8, 8, 2 }).requires_grad_();
        Assert.IsTrue(GridSampleLoops.Fits(x, grid));
        var output = GridSample.Bilinear(x, grid);
        CollectionAssert.AreEqual(new[] { 7f, 4f, 5.5f }, output.data<float>().ToArray()[..3]);
        output.sum().backward();
        var gradient = grid.grad!.data<float>().ToArray();
        Assert.AreEqual(0f, gradient[0], "x clipped at the right: no gradient");
        Assert.AreEqual(0f, gradient[2], "x clipped at the left: no gradient");
        // Inside: one column step is 2/4 of the grid's extent, and the value grows by 1 per column: d/dx = 4/2.
        Assert.AreEqual(2f, gradient[4], 1e-5f);
        // Rows grow by 4 per row and one row is 2/3 of the extent: d/dy = 4 · 3/2 at every position.
        Assert.AreEqual(6f, gradient[1], 1e-5f);
        Assert.AreEqual(6f, gradient[5], 1e-5f);
    }

    [TestMethod]
    public void Float64AndOtherShapesKeepAten()
    {
        using var scope = NewDisposeScope();
        Assert.IsFalse(GridSampleLoops.Fits(randn(1, 2, 4, 4, float64), zeros(1, 8, 8, 2, float64)), "float64 keeps ATen");
        Assert.IsFalse(GridSampleLoops.Fits(randn(1, 2, 4, 4), zeros(1, 8, 8, 2, float64)), "mixed types keep ATen");
        Assert.IsFalse(GridSampleLoops.Fits(randn(2, 2, 4, 4), zeros(1, 8, 8, 2)), "a grid per image");
        Assert.IsTrue(GridSampleLoops.Fits(randn(1, 2, 4, 4), zeros(1, 8, 8, 2)));
        Assert.IsFalse(GridSampleLoops.Fits(randn(1, 2, 4, 4), zeros(1, 7, 9, 2)), "fewer than 64 output pixels keep ATen");
        // float64 through the public entry point still works, on ATen.
        var x = randn(1, 2, 4, 4, float64);
        var grid = zeros(1, 3, 3, 2, float64);
        Assert.IsTrue(GridSample.Bilinear(x, grid).allclose(
            nn.functional.grid_sample(x, grid, GridSampleMode.Bilinear, GridSamplePaddingMode.Border, align_corners: false)));
    }

    static (Tensor Out, Tensor GradX, Tensor GradGrid) WithGradients(Tensor x, Tensor grid, Tensor cotangent, Func<Tensor, Tensor, Tensor> sample) =>
        BinaryGradients.Of(sample, x, grid, cotangent);

    /// <summary>
    /// float32 sums of at most four products per channel, then of the channels: 1e-5 of the largest value (the grid
    /// gradient grows with the map's size) plus 1e-5 relative is well above their rounding and far below any wrong
    /// corner or weight.
    /// </summary>
    static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        CollectionAssert.AreEqual(expected.shape, actual.shape, $"{what}: shape");
        Assert.AreEqual(ScalarType.Float32, actual.dtype, $"{what}: dtype");
        double scale = 1 + expected.abs().max().item<double>();
        var excess = (actual.to(float64) - expected).abs() - (1e-5 * scale + 1e-5 * expected.abs());
        double worst = excess.max().item<double>();
        Assert.IsTrue(worst <= 0, $"{what}: exceeds the float32 tolerance by {worst:G3}.");
    }
}
