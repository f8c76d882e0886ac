using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Networks;
using SkiaSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Networks;

[TestClass]
public sealed class TrainingTests
{
    private const int IgnoreIndex = 255;

    [TestMethod]
    [DataRow(SegmentationDecoder.FreqFusion)]
    [DataRow(SegmentationDecoder.FreqFusionFpn)]
    [DataRow(SegmentationDecoder.Bilinear)]
    [DataRow(SegmentationDecoder.BilinearFpn)]
    public void GradientsReachEveryTrainableParameterOfAResNetNetwork(SegmentationDecoder decoder)
    {
        using var scope = NewDisposeScope();
        manual_seed(61);
        using var network = NetworkTestUtilities.TinyResNetNetwork(decoder, classes: 3, dropout: 0);
        AssertEveryParameterGetsAGradient(network, decoder.ToString());
    }

    [TestMethod]
    public void GradientsReachEveryTrainableParameterOfAMixTransformerNetwork()
    {
        using var scope = NewDisposeScope();
        manual_seed(62);
        var backbone = new MixTransformer(new MixTransformerConfig([8, 16, 24, 32], [1, 1, 1, 1], [1, 2, 3, 4]), freezeBatchNorm: false, dropPathRate: 0);
        using var network = SegmentationNetwork.Assemble(backbone,
            new SegmentationArchitecture { NumberOfClasses = 3, Decoder = SegmentationDecoder.FreqFusion, DropoutRatio = 0 }, 16);
        AssertEveryParameterGetsAGradient(network, "MiT + FreqFusion");
    }

    private static void AssertEveryParameterGetsAGradient(SegmentationNetwork network, string what)
    {
        network.train();
        // At least 3×3 at stride 32: on a 2×2 map every dilated neighbour of the offset generator's similarity
        // window lies outside, the similarities are all zero and so is the gradient of its offset convolution.
        var images = NetworkTestUtilities.RandomImages(2, 85, 101, seed: 63);
        var target = randint(0, 3, [2, 85, 101], dtype: ScalarType.Int64);
        var loss = nn.functional.cross_entropy(network.call(images), target);
        loss.backward();
        int count = 0;
        foreach (var (name, parameter) in network.named_parameters())
        {
            Assert.IsTrue(parameter.requires_grad, $"{what}: {name} is trainable");
            var grad = parameter.grad;
            Assert.IsNotNull(grad, $"{what}: no gradient reached {name}");
            Assert.IsTrue(grad.abs().sum().item<float>() > 0, $"{what}: the gradient of {name} is zero");
            Assert.IsTrue(grad.isfinite().all().item<bool>(), $"{what}: the gradient of {name} is not finite");
            count++;
        }
        Assert.AreEqual(network.BackboneParameters().Count() + network.DecoderParameters().Count(), count,
            "backbone and decoder parameters partition the network's parameters");
    }

    [TestMethod]
    public void ATinyFreqFusionNetworkOverfitsEightDigitImages()
    {
        using var scope = NewDisposeScope();
        // The tiny network runs thousands of small kernels per step; intra-op threads cost more than they gain there
        // (and far more on a loaded machine), so this test runs single-threaded.
        int threads = get_num_threads();
        set_num_threads(1);
        try
        {
            manual_seed(71);
            var (images, masks) = LoadDigits();
            CollectionAssert.AreEqual(new long[] { 8, 3, 64, 84 }, images.shape);
            var valid = masks.ne(IgnoreIndex);
            var digits = valid.logical_and(masks.ne(0));
            // Background covers about 95% of these pixels, so all-background already scores 95% overall: the digit
            // pixels are what shows learning.
            double backgroundShare = 1 - digits.sum().item<long>() / (double)valid.sum().item<long>();
            Assert.IsTrue(backgroundShare is > 0.9 and < 0.96, $"background share {backgroundShare:P2}");

            using var network = NetworkTestUtilities.TinyResNetNetwork(SegmentationDecoder.FreqFusion, classes: 11, channels: 32, dropout: 0);
            using var optimizer = optim.Adam(
                [new TorchSharp.Modules.Adam.ParamGroup(network.BackboneParameters(), lr: 3e-3),
                 new TorchSharp.Modules.Adam.ParamGroup(network.DecoderParameters(), lr: 1e-2)]);

            (double Overall, double Digits) accuracy = (0, 0);
            int steps = 0;
            while (steps < 300 && (accuracy.Overall <= 0.95 || accuracy.Digits <= 0.9))
            {
                using var stepScope = NewDisposeScope();
                network.train();
                optimizer.zero_grad();
                var loss = nn.functional.cross_entropy(network.call(images), masks, ignore_index: IgnoreIndex);
                loss.backward();
                optimizer.step();
                if (++steps % 25 == 0)
                    accuracy = PixelAccuracy(network, images, masks, valid, digits);
            }
            Assert.IsTrue(accuracy.Overall > 0.95 && accuracy.Digits > 0.9,
                $"after {steps} steps: pixel accuracy {accuracy.Overall:P2}, on digit pixels {accuracy.Digits:P2}");
        }
        finally
        {
            set_num_threads(threads);
        }
    }

    private static (double Overall, double Digits) PixelAccuracy(SegmentationNetwork network, Tensor images, Tensor masks, Tensor valid, Tensor digits)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        network.eval();
        var correct = network.call(images).argmax(1).eq(masks);
        return (correct.logical_and(valid).sum().item<long>() / (double)valid.sum().item<long>(),
            correct.logical_and(digits).sum().item<long>() / (double)digits.sum().item<long>());
    }

    private static (Tensor Images, Tensor Masks) LoadDigits()
    {
        var folder = Path.Combine(AppContext.BaseDirectory, "TestData", "digits-seg", "train");
        var names = Directory.GetFiles(Path.Combine(folder, "images"), "*.png").Select(Path.GetFileName).Order().Take(8).ToArray();
        var images = new List<Tensor>();
        var masks = new List<Tensor>();
        foreach (var name in names)
        {
            using var image = SKBitmap.Decode(Path.Combine(folder, "images", name!));
            using var mask = SKBitmap.Decode(Path.Combine(folder, "masks", name!));
            Assert.AreEqual(image.Width, mask.Width);
            Assert.AreEqual(image.Height, mask.Height);
            int h = image.Height, w = image.Width;
            var rgb = new float[3 * h * w];
            var labels = new long[h * w];
            for (int y = 0; y < h; y++)
            {
                for (int x = 0; x < w; x++)
                {
                    var c = image.GetPixel(x, y);
                    rgb[y * w + x] = c.Red;
                    rgb[h * w + y * w + x] = c.Green;
                    rgb[2 * h * w + y * w + x] = c.Blue;
                    byte label = mask.GetPixel(x, y).Red;
                    Assert.IsTrue(label <= 10 || label == IgnoreIndex, $"{name}: mask value {label}");
                    labels[y * w + x] = label;
                }
            }
            images.Add(tensor(rgb, [3, h, w]));
            masks.Add(tensor(labels, [h, w]));
        }
        return (stack(images), stack(masks));
    }
}
