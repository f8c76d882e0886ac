using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MLNetFreqFusion.Data;

/// <summary>
/// mmsegmentation's training pipeline on tensors — Resize (ratio range, keep ratio), RandomCrop (cat_max_ratio),
/// RandomFlip, PhotoMetricDistortion, Pad — in that order. Every random draw comes from the <see cref="Random"/> passed
/// in, in a fixed order, so a seed reproduces the result. Photometric steps work on float values clamped to 0..255
/// without mmcv's intermediate rounding to uint8.
/// </summary>
internal static class SegmentationAugmenter
{
    const float BrightnessDelta = 32, ContrastLower = 0.5f, ContrastUpper = 1.5f, SaturationLower = 0.5f, SaturationUpper = 1.5f;
    const int HueDelta = 18; // OpenCV hue units (2°)
    const int CropAttempts = 10;

    /// <summary>Augments one training sample.</summary>
    /// <param name="image">float32 [3, H, W], RGB, 0..255.</param>
    /// <param name="mask">int64 [H, W] class indices.</param>
    /// <param name="options">The pipeline's settings.</param>
    /// <param name="ignoreIndex">Label excluded from the crop statistics and used for padding.</param>
    /// <param name="random">The source of every random decision.</param>
    /// <returns>image float32 [3, CropHeight, CropWidth] and mask int64 [CropHeight, CropWidth].</returns>
    internal static (Tensor Image, Tensor Mask) Apply(Tensor image, Tensor mask, AugmentationOptions options, int ignoreIndex, Random random)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(mask);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(random);
        options.Validate();
        if (image.dim() != 3 || image.shape[0] != 3 || mask.dim() != 2 || image.shape[1] != mask.shape[0] || image.shape[2] != mask.shape[1])
            throw new ArgumentException($"Expected an image [3, H, W] and a mask [H, W] of the same size; got [{string.Join(", ", image.shape)}] and [{string.Join(", ", mask.shape)}].");

        using var scope = NewDisposeScope();
        var (img, seg) = ResizeAndCrop(image, mask, options, ignoreIndex, random);
        if (random.NextDouble() < options.FlipProbability)
        {
            img = img.flip(-1);
            seg = seg.flip(-1);
        }
        if (options.PhotometricDistortion)
            img = PhotometricDistortion(img, random);
        (img, seg) = Pad(img, seg, options, ignoreIndex);
        return (scope.MoveToOuter(img.contiguous()), scope.MoveToOuter(seg.contiguous()));
    }

    /// <summary>The size mmcv's <c>imrescale</c> gives for a random ratio: (height, width).</summary>
    internal static (int Height, int Width) ScaledSize(int height, int width, double ratio, (int LongEdge, int ShortEdge)? baseScale)
    {
        double factor = ratio;
        if (baseScale is { } s)
        {
            int longEdge = (int)(s.LongEdge * ratio), shortEdge = (int)(s.ShortEdge * ratio);
            factor = Math.Min((double)Math.Max(longEdge, shortEdge) / Math.Max(height, width),
                              (double)Math.Min(longEdge, shortEdge) / Math.Min(height, width));
        }
        return (Math.Max(1, (int)(height * factor + 0.5)), Math.Max(1, (int)(width * factor + 0.5)));
    }

    /// <summary>
    /// mmseg's Resize then RandomCrop, without the resized image: the crop box is drawn in the resized frame, and only
    /// the source rows and columns its pixels are interpolated from are read. The result is what resizing the whole
    /// image with <c>F.interpolate</c> (bilinear, align_corners false; nearest for the mask) and cropping gives, with
    /// the same random draws in the same order; the whole resized image of a large photo held gigabytes.
    /// </summary>
    static (Tensor, Tensor) ResizeAndCrop(Tensor image, Tensor mask, AugmentationOptions o, int ignoreIndex, Random random)
    {
        double ratio = o.MinScaleRatio + random.NextDouble() * (o.MaxScaleRatio - o.MinScaleRatio);
        int h = (int)image.shape[1], w = (int)image.shape[2];
        var (nh, nw) = ScaledSize(h, w, ratio, o.BaseScale);
        var box = CropBox(nh, nw, o, random);
        if (o.CatMaxRatio < 1)
        {
            for (int attempt = 0; attempt < CropAttempts; attempt++)
            {
                using var candidate = ResizedCrop.Mask(mask, nh, nw, box);
                if (!Dominated(candidate, ignoreIndex, o.CatMaxRatio))
                    break;
                box = CropBox(nh, nw, o, random);
            }
        }
        return (ResizedCrop.Image(image, nh, nw, box), ResizedCrop.Mask(mask, nh, nw, box));
    }

    static (int Y, int X, int H, int W) CropBox(int h, int w, AugmentationOptions o, Random random)
    {
        int marginH = Math.Max(h - o.CropHeight, 0), marginW = Math.Max(w - o.CropWidth, 0);
        int y = random.Next(marginH + 1), x = random.Next(marginW + 1);
        return (y, x, Math.Min(o.CropHeight, h), Math.Min(o.CropWidth, w));
    }

    // mmseg keeps a crop when it holds more than one labelled class and the largest covers less than the ratio.
    static bool Dominated(Tensor seg, int ignoreIndex, float ratio)
    {
        using var scope = NewDisposeScope();
        var counts = bincount(seg.flatten());
        if (ignoreIndex >= 0 && ignoreIndex < counts.shape[0])
            counts[ignoreIndex] = tensor(0L);
        long classes = counts.gt(0).sum().item<long>();
        if (classes <= 1)
            return true;
        return counts.max().item<long>() >= ratio * counts.sum().item<long>();
    }

    static Tensor PhotometricDistortion(Tensor img, Random random)
    {
        if (random.Next(2) == 1)
            img = (img + Uniform(random, -BrightnessDelta, BrightnessDelta)).clamp(0, 255);
        bool contrastFirst = random.Next(2) == 1;
        if (contrastFirst)
            img = Contrast(img, random);

        bool saturation = random.Next(2) == 1;
        double saturationScale = saturation ? Uniform(random, SaturationLower, SaturationUpper) : 1;
        bool hue = random.Next(2) == 1;
        int hueShift = hue ? random.Next(-HueDelta, HueDelta) : 0;
        if (saturation || hue)
        {
            var (h, s, v) = ToHsv(img);
            if (saturation)
                s = (s * saturationScale).clamp(0, 1);
            if (hue)
                h = (h + 2.0 * hueShift).remainder(360);
            img = FromHsv(h, s, v).clamp(0, 255);
        }

        if (!contrastFirst)
            img = Contrast(img, random);
        return img;
    }

    static Tensor Contrast(Tensor img, Random random) =>
        random.Next(2) == 1 ? (img * Uniform(random, ContrastLower, ContrastUpper)).clamp(0, 255) : img;

    static double Uniform(Random random, double low, double high) => low + random.NextDouble() * (high - low);

    // Hue in degrees [0, 360), saturation and value as OpenCV defines them (S in [0, 1], V in 0..255).
    internal static (Tensor H, Tensor S, Tensor V) ToHsv(Tensor rgb)
    {
        var (r, g, b) = (rgb[0], rgb[1], rgb[2]);
        var max = rgb.amax(0);
        var delta = max - rgb.amin(0);
        var s = where(max.gt(0), delta / max.clamp_min(1e-12), zeros_like(max));
        var d = where(delta.gt(0), delta, ones_like(delta));
        var h = where(max.eq(r), ((g - b) / d).remainder(6),
                where(max.eq(g), (b - r) / d + 2, (r - g) / d + 4)) * 60;
        h = where(delta.gt(0), h, zeros_like(h));
        return (h, s, max);
    }

    internal static Tensor FromHsv(Tensor h, Tensor s, Tensor v)
    {
        Tensor Channel(double n)
        {
            var k = (h / 60 + n).remainder(6);
            return v - v * s * minimum(k, 4 - k).clamp(0, 1);
        }
        return stack([Channel(5), Channel(3), Channel(1)]);
    }

    // The image is mirrored into the padding, as the network pads its input at inference
    // (SegmentationNetwork.MirrorPad): a black border in training taught the network a context it never meets when
    // predicting. The mask's padding is ignored, so the mirrored pixels cost nothing in the loss.
    static (Tensor, Tensor) Pad(Tensor img, Tensor seg, AugmentationOptions o, int ignoreIndex)
    {
        long padH = Math.Max(o.CropHeight - img.shape[1], 0), padW = Math.Max(o.CropWidth - img.shape[2], 0);
        if (padH == 0 && padW == 0)
            return (img, seg);
        var mirrored = Networks.SegmentationNetwork.MirrorPad(img.unsqueeze(0), padW, padH).squeeze(0);
        return (mirrored, F.pad(seg, [0, padW, 0, padH], value: ignoreIndex));
    }
}
