using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetFreqFusion;
using MLNetFreqFusion.Decoders;
using MLNetFreqFusion.Networks;
using TorchSharp;
using static TorchSharp.torch;
using FreqFusionModule = MLNetFreqFusion.Fusion.FreqFusion;

namespace SemanticSegmentation.ConsoleApp;

/// <summary>
/// docs/model.md's figure. Each row is one test image: input, label, prediction, overlay; then, at the finest
/// FreqFusion of the trained decoder, the low-resolution feature up-sampled by nearest neighbour (what a plain
/// decoder adds), the same feature after FreqFusion's adaptive low-pass filter and offset resampling, the
/// high-resolution feature, and the detail the adaptive high-pass filter adds to it. Feature maps are shown as
/// their per-pixel L2 norm over channels, scaled to black…white per panel.
/// </summary>
public static class FigureWriter
{
    const int Scale = 3;      // image pixels → figure pixels
    const int Gap = 4;

    public static void Write(MLContext mlContext, ITransformer model, SampleData data, string path, int rows = 4)
    {
        var segmenter = model as SemanticSegmentationTransformer
            ?? ((IEnumerable<ITransformer>)model).OfType<SemanticSegmentationTransformer>().Single();
        var scored = model.Transform(SegmentationModel.BuildInputPipeline(mlContext, data.MaskOptions).Fit(data.Test).Transform(data.Test));
        var images = mlContext.Data.TakeRows(scored, rows);
        // The Image column's MLImages are disposed when its cursor moves on; read the files again instead.
        var imageList = images.GetColumn<string>("ImagePath").Select(MLImage.CreateFromFile).ToList();
        var labels = images.GetColumn<SegmentationMask>("Label").ToList();
        var predictions = images.GetColumn<SegmentationMask>("PredictedLabel").ToList();

        // A copy of the trained network, so that the hooks below observe its FreqFusion modules without touching the model.
        using var network = segmenter.Decoder is SegmentationDecoder.FreqFusion or SegmentationDecoder.FreqFusionFpn ? segmenter.CopyNetwork() : null;
        var panels = new List<Rgb[]>();
        for (int r = 0; r < imageList.Count; r++)
        {
            var image = ToRgb(imageList[r]);
            var row = new List<Rgb>
            {
                image,
                ToRgb(labels[r].ToMLImage()),
                ToRgb(predictions[r].ToMLImage()),
                Blend(image, ToRgb(predictions[r].ToMLImage()), labels[r]),
            };
            if (network is not null)
                row.AddRange(FrequencyPanels(network, imageList[r]));
            panels.Add(row.ToArray());
        }
        Compose(panels).Save(path);
    }

    static IEnumerable<Rgb> FrequencyPanels(SegmentationNetwork network, MLImage image)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        // The finest FreqFusion is the one whose output is largest; hooks record every FreqFusion's inputs and outputs.
        var seen = new List<(Tensor Hr, Tensor Lr, Tensor HrOut, Tensor LrOut)>();
        var hooks = network.modules().OfType<FreqFusionModule>()
            .Select(m => m.register_forward_hook((_, hr, lr, output) =>
            {
                // Copies that outlive the network's own dispose scopes; disposed below.
                seen.Add((Keep(hr), Keep(lr), Keep(output.Hr), Keep(output.Lr)));
                return output;
            }))
            .ToList();
        try
        {
            network.call(ToTensor(image));
        }
        finally
        {
            foreach (var h in hooks) h.remove();
            foreach (var (hr, lr, hrOut, lrOut) in seen)
                foreach (var t in new[] { hr, lr, hrOut, lrOut })
                    scope.Attach(t);
        }
        var finest = seen.MaxBy(s => s.HrOut.shape[2] * s.HrOut.shape[3]);
        long h2 = finest.HrOut.shape[2], w2 = finest.HrOut.shape[3];
        var nearest = nn.functional.interpolate(finest.Lr, size: [h2, w2], mode: InterpolationMode.Nearest);
        var stride = (int)Math.Round((double)PaddedHeight(image.Height) / h2);
        int ch = (image.Height + stride - 1) / stride, cw = (image.Width + stride - 1) / stride;
        foreach (var feature in new[] { nearest, finest.LrOut, finest.Hr, finest.HrOut - finest.Hr })
            yield return Heat(feature[0].narrow(1, 0, Math.Min(ch, feature.shape[2])).narrow(2, 0, Math.Min(cw, feature.shape[3])), image.Width, image.Height);
    }

    static Tensor Keep(Tensor t) => t.detach().clone().DetachFromDisposeScope();

    static int PaddedHeight(int height) => (height + SegmentationNetwork.SizeDivisor - 1) / SegmentationNetwork.SizeDivisor * SegmentationNetwork.SizeDivisor;

    static Tensor ToTensor(MLImage image)
    {
        var rgb = ToRgb(image);
        var t = tensor(rgb.Pixels, [image.Height, image.Width, 3]).permute(2, 0, 1).to(ScalarType.Float32);
        return t.unsqueeze(0);
    }

    /// <summary>Per-pixel L2 norm over channels, min–max scaled, nearest-upsampled to the image size.</summary>
    static Rgb Heat(Tensor feature, int width, int height)
    {
        var norm = feature.pow(2).sum(new long[] { 0 }).sqrt();   // sum(0) would bind to sum(ScalarType)
        var lo = norm.min().item<float>();
        var hi = norm.max().item<float>();
        var scaled = ((norm - lo) / Math.Max(1e-6f, hi - lo) * 255).clamp(0, 255).view(1, 1, norm.shape[0], norm.shape[1]);
        var up = nn.functional.interpolate(scaled, size: [height, width], mode: InterpolationMode.Nearest).squeeze().to(ScalarType.Byte).contiguous();
        var gray = up.data<byte>().ToArray();
        var pixels = new byte[gray.Length * 3];
        for (int i = 0; i < gray.Length; i++)
            pixels[3 * i] = pixels[3 * i + 1] = pixels[3 * i + 2] = gray[i];
        return new Rgb(width, height, pixels);
    }

    sealed record Rgb(int Width, int Height, byte[] Pixels);

    static Rgb ToRgb(MLImage image)
    {
        var src = image.Pixels;
        var rgb = new byte[image.Width * image.Height * 3];
        bool bgra = image.PixelFormat == MLPixelFormat.Bgra32;
        for (int i = 0, n = image.Width * image.Height; i < n; i++)
        {
            rgb[3 * i] = src[4 * i + (bgra ? 2 : 0)];
            rgb[3 * i + 1] = src[4 * i + 1];
            rgb[3 * i + 2] = src[4 * i + (bgra ? 0 : 2)];
        }
        return new Rgb(image.Width, image.Height, rgb);
    }

    // The overlay panel: prediction colours at half strength over the image, ignored label pixels left as they are.
    static Rgb Blend(Rgb image, Rgb colours, SegmentationMask label)
    {
        var pixels = new byte[image.Pixels.Length];
        for (int i = 0; i < label.Labels.Length; i++)
            for (int c = 0; c < 3; c++)
                pixels[3 * i + c] = (byte)((image.Pixels[3 * i + c] + colours.Pixels[3 * i + c]) / 2);
        return image with { Pixels = pixels };
    }

    static MLImage Compose(List<Rgb[]> rows)
    {
        int cellW = rows.Max(r => r.Max(p => p.Width)) * Scale, cellH = rows.Max(r => r.Max(p => p.Height)) * Scale;
        int columns = rows.Max(r => r.Length);
        int width = columns * (cellW + Gap) + Gap, height = rows.Count * (cellH + Gap) + Gap;
        var rgba = new byte[width * height * 4];
        Array.Fill(rgba, (byte)255);
        for (int r = 0; r < rows.Count; r++)
            for (int c = 0; c < rows[r].Length; c++)
            {
                var p = rows[r][c];
                int x0 = Gap + c * (cellW + Gap), y0 = Gap + r * (cellH + Gap);
                for (int y = 0; y < p.Height * Scale; y++)
                    for (int x = 0; x < p.Width * Scale; x++)
                    {
                        int s = 3 * ((y / Scale) * p.Width + x / Scale), d = 4 * ((y0 + y) * width + x0 + x);
                        rgba[d] = p.Pixels[s];
                        rgba[d + 1] = p.Pixels[s + 1];
                        rgba[d + 2] = p.Pixels[s + 2];
                        rgba[d + 3] = 255;
                    }
            }
        return MLImage.CreateFromPixels(width, height, MLPixelFormat.Rgba32, rgba);
    }
}
