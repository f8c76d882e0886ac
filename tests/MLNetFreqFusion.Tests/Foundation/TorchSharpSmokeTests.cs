using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Foundation;

[TestClass]
public sealed class TorchSharpSmokeTests
{
    [TestMethod]
    public void ConvolutionForwardAndBackwardRunInTheTestProcess()
    {
        using var scope = NewDisposeScope();
        manual_seed(0);
        var x = randn(2, 3, 8, 8, requires_grad: true);
        var w = randn(4, 3, 3, 3, requires_grad: true);
        var y = nn.functional.conv2d(x, w, padding: new long[] { 1, 1 });
        CollectionAssert.AreEqual(new long[] { 2, 4, 8, 8 }, y.shape);

        y.sum().backward();

        // d(sum(conv(x, w)))/dw[o,c,i,j] is the sum of the shifted input window, the same for every output channel.
        var g = w.grad!;
        Assert.IsNotNull(g);
        var expected = nn.functional.pad(x, new long[] { 1, 1, 1, 1 }).detach();
        var tap = expected[.., 0, 0..8, 0..8].sum().item<float>();
        Assert.AreEqual(tap, g[0, 0, 0, 0].item<float>(), 1e-3f);
        Assert.AreEqual(g[0, 0, 0, 0].item<float>(), g[3, 0, 0, 0].item<float>(), 1e-5f);
    }

    [TestMethod]
    public void OperatorsFreqFusionNeedsRunOnThisPlatform()
    {
        using var scope = NewDisposeScope();
        var x = arange(2 * 4 * 6 * 6, dtype: float32).reshape(2, 4, 6, 6);
        var unfolded = nn.functional.unfold(x, kernel_size: 3, padding: 1);
        Assert.AreEqual(4 * 9, unfolded.shape[1]);
        var shuffled = nn.functional.pixel_shuffle(x, 2);
        CollectionAssert.AreEqual(new long[] { 2, 1, 12, 12 }, shuffled.shape);
        // An identity grid reproduces the input under align_corners=false.
        var theta = tensor(new float[] { 1, 0, 0, 0, 1, 0 }).reshape(1, 2, 3).expand(2, 2, 3);
        var grid = nn.functional.affine_grid(theta, new long[] { 2, 4, 6, 6 }, align_corners: false);
        var sampled = nn.functional.grid_sample(x, grid, padding_mode: GridSamplePaddingMode.Border, align_corners: false);
        Assert.IsTrue(sampled.allclose(x, atol: 1e-4));
        Assert.AreEqual(36f, matmul(ones(1, 6), full(6, 1, 6f)).item<float>());
    }

    /// <summary>
    /// oneDNN's convolutions return non-finite values at random on AVX-512 hosts (docs/decisions.md); every network of
    /// the library switches them off when it is built. Without the switch the learning test in Networks/TrainingTests
    /// sees a NaN loss within its first steps on such a host.
    /// </summary>
    [TestMethod]
    public void BuildingANetworkSwitchesOneDnnConvolutionsOff()
    {
        using var scope = NewDisposeScope();
        using var network = Networks.NetworkTestUtilities.TinyResNetNetwork(SegmentationDecoder.FreqFusion, classes: 3);
        if (OperatingSystem.IsLinux() && System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture == System.Runtime.InteropServices.Architecture.X64)
            Assert.AreEqual(false, MLNetFreqFusion.Native.LibTorchRuntime.OneDnnEnabled);
        else
            Assert.IsNull(MLNetFreqFusion.Native.LibTorchRuntime.OneDnnEnabled, "elsewhere the switch is not reached, and says so");
    }
}
