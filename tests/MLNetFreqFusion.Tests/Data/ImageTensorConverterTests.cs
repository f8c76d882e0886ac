using Microsoft.ML.Data;
using MLNetFreqFusion.Data;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Tests.Data;

[TestClass]
public sealed class ImageTensorConverterTests
{
    static byte[] Pixels(int w, int h, Func<int, int, int, byte> value)
    {
        var p = new byte[w * h * 4];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 4; c++)
                    p[(y * w + x) * 4 + c] = value(x, y, c);
        return p;
    }

    [TestMethod]
    [DataRow(MLPixelFormat.Bgra32)]
    [DataRow(MLPixelFormat.Rgba32)]
    public void ImageBecomesRgbPlanarFloats(MLPixelFormat format)
    {
        const int w = 5, h = 3;
        static byte R(int x, int y) => (byte)(10 * x + y);
        static byte G(int x, int y) => (byte)(100 + x);
        static byte B(int x, int y) => (byte)(200 + y);
        var pixels = Pixels(w, h, (x, y, c) => c == 3 ? (byte)255 : format == MLPixelFormat.Rgba32
            ? (c == 0 ? R(x, y) : c == 1 ? G(x, y) : B(x, y))
            : (c == 0 ? B(x, y) : c == 1 ? G(x, y) : R(x, y)));
        using var image = MLImage.CreateFromPixels(w, h, format, pixels);
        using var scope = NewDisposeScope();

        var t = ImageTensorConverter.ToTensor(image);

        Assert.AreEqual(ScalarType.Float32, t.dtype);
        CollectionAssert.AreEqual(new long[] { 3, h, w }, t.shape);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                Assert.AreEqual(R(x, y), t[0, y, x].item<float>());
                Assert.AreEqual(G(x, y), t[1, y, x].item<float>());
                Assert.AreEqual(B(x, y), t[2, y, x].item<float>());
            }
    }

    [TestMethod]
    public void DecodedPngImageMatchesItsPixels()
    {
        using var image = MLImage.CreateFromFile(MaskDecodingTests.SamplePath("images", "test_00003.png"));
        using var scope = NewDisposeScope();
        var t = ImageTensorConverter.ToTensor(image);
        var px = image.Pixels;
        int w = image.Width;
        bool bgr = image.PixelFormat == MLPixelFormat.Bgra32;
        foreach (var (x, y) in new[] { (0, 0), (83, 63), (40, 17), (7, 50) })
        {
            int i = (y * w + x) * 4;
            Assert.AreEqual(px[i + (bgr ? 2 : 0)], t[0, y, x].item<float>());
            Assert.AreEqual(px[i + 1], t[1, y, x].item<float>());
            Assert.AreEqual(px[i + (bgr ? 0 : 2)], t[2, y, x].item<float>());
        }
    }

    [TestMethod]
    public void MaskBecomesInt64IndicesIncludingValuesAbove32767()
    {
        ushort[] labels = [0, 1, 255, 40000, 65535, 7];
        var mask = new SegmentationMask(3, 2, labels);
        using var scope = NewDisposeScope();

        var t = ImageTensorConverter.ToTensor(mask);

        Assert.AreEqual(ScalarType.Int64, t.dtype);
        CollectionAssert.AreEqual(new long[] { 2, 3 }, t.shape);
        CollectionAssert.AreEqual(labels.Select(v => (long)v).ToArray(), t.data<long>().ToArray());
        CollectionAssert.AreEqual(labels, ImageTensorConverter.ToMask(t).Labels);
    }
}
