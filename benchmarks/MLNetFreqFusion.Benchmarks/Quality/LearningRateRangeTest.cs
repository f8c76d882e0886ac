using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.ML.Data;
using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Benchmarks.Infrastructure;
using MLNetFreqFusion.Data;
using MLNetFreqFusion.Decoders;
using MLNetFreqFusion.Networks;
using MLNetFreqFusion.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Benchmarks.Quality;

/// <summary>
/// <c>lrfind</c>: Smith's learning-rate range test (arXiv 1506.01186 §3.3; fastai's lr_find) on the network and loss
/// the quality sweep trains — the pretrained (or random) ResNet-18 with a decode head of width 128, the short-run
/// recipe's balanced class weights, AdamW with weight decay on the ≥ 2-D tensors only, batches of 8 whole training
/// images. The learning rate grows geometrically from <c>--min</c> to <c>--max</c> over <c>--steps</c> steps on fresh
/// shuffled batches; the loss, smoothed by an exponential average, is written per step, with the two usual readings:
/// the rate of steepest descent and a tenth of the rate at the smoothed minimum. A benchmark, not a trainer option:
/// its answer is a starting point for the default, checked by the full runs of <see cref="QualityBenchmark"/>.
/// </summary>
static class LearningRateRangeTest
{
    public const string Usage = """
        lrfind --data DIR [--decoders FreqFusionFpn,BilinearFpn] [--seeds 1,2] [--steps 150] [--min 1e-6] [--max 1]
               [--random-init] [--threads N] [--out DIR]
          Writes DIR_OUT/lrfind.jsonl (one line per decoder and seed), lrfind.md and lrfind.png (default out: lrfind-results).
        """;

    sealed record Curve(string Decoder, bool Pretrained, int Seed, double[] LearningRates, double[] Losses, double[] Smoothed,
        double SteepestLearningRate, double MinimumLearningRate);

    public static int Run(string[] args)
    {
        string? data = null;
        string outDir = "lrfind-results";
        string[] decoders = ["FreqFusionFpn", "BilinearFpn"];
        int[] seeds = [1, 2];
        int steps = 150, threads = 1;
        double min = 1e-6, max = 1;
        bool pretrained = true;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.\n{Usage}");
            switch (args[i])
            {
                case "--data": data = Next(); break;
                case "--decoders": decoders = Next().Split(','); break;
                case "--seeds": seeds = Next().Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray(); break;
                case "--steps": steps = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--min": min = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--max": max = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--random-init": pretrained = false; break;
                case "--threads": threads = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--out": outDir = Next(); break;
                default: throw new ArgumentException($"Unknown argument '{args[i]}'.\n{Usage}");
            }
        }
        if (data is null || !File.Exists(Path.Combine(data, "train.csv")))
            throw new ArgumentException($"--data must name a folder with train.csv and classes.json.\n{Usage}");
        if (!(min > 0 && max > min && steps >= 10))
            throw new ArgumentException($"Need 0 < --min < --max and --steps ≥ 10; got {min}, {max}, {steps}.\n{Usage}");
        foreach (var d in decoders.Where(d => !Enum.TryParse<SegmentationDecoder>(d, out _)))
            throw new ArgumentException($"Unknown decoder '{d}'; known: {string.Join(", ", Enum.GetNames<SegmentationDecoder>())}.");

        torch.set_num_threads(threads);
        Console.WriteLine(MachineInfo.Describe());
        Directory.CreateDirectory(outDir);
        var (images, labels, classes) = LoadTrainingSet(data);
        var weights = RecipeDefaults.BalancedClassWeights(PixelsPerClass(labels, classes), classes);
        string jsonl = Path.Combine(outDir, "lrfind.jsonl");
        foreach (var decoder in decoders)
            foreach (var seed in seeds)
            {
                var curve = Sweep(images, labels, classes, weights, Enum.Parse<SegmentationDecoder>(decoder), pretrained, seed, steps, min, max);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{decoder} {(pretrained ? "pretrained" : "random init")} seed {seed}: steepest descent at {curve.SteepestLearningRate:G2}, minimum/10 {curve.MinimumLearningRate / 10:G2}"));
                File.AppendAllText(jsonl, JsonSerializer.Serialize(curve) + Environment.NewLine);
            }
        foreach (var t in images.Concat(labels))
            t.Dispose();

        var curves = File.ReadLines(jsonl).Select(l => JsonSerializer.Deserialize<Curve>(l)!).ToList();
        File.WriteAllText(Path.Combine(outDir, "lrfind.md"), Table(curves));
        CurvePlot.Write(Path.Combine(outDir, "lrfind.png"),
            curves.Select(c => ($"{c.Decoder} {(c.Pretrained ? "pretrained" : "random")} seed {c.Seed}", c.LearningRates.Select(Math.Log10).ToArray(), c.Smoothed)).ToList(),
            "learning rate", "training loss (smoothed)", x => $"1e{x:0}");
        Console.WriteLine(Table(curves));
        return 0;
    }

    static Curve Sweep(List<Tensor> images, List<Tensor> labels, int classes, float[] weights, SegmentationDecoder decoder,
        bool pretrained, int seed, int steps, double min, double max)
    {
        torch.random.manual_seed(seed);
        var architecture = new SegmentationArchitecture
        {
            Backbone = pretrained ? SegmentationBackbone.ResNet18ImageNet : SegmentationBackbone.ResNet18,
            Decoder = decoder, NumberOfClasses = classes, DecoderChannels = 128,
        };
        using var network = SegmentationNetwork.Create(architecture, pretrained ? PretrainedModels.FindResNet18Onnx() : null, freezeBatchNorm: pretrained);
        network.train();
        var all = network.parameters().ToArray();
        using var optimizer = optim.AdamW(new[]
        {
            new TorchSharp.Modules.AdamW.ParamGroup(all.Where(p => p.dim() > 1), lr: min, weight_decay: SemanticSegmentationTrainer.Defaults.WeightDecay),
            new TorchSharp.Modules.AdamW.ParamGroup(all.Where(p => p.dim() <= 1), lr: min, weight_decay: 0),
        }, lr: min);
        var loss = new SegmentationLoss(SemanticSegmentationTrainer.Defaults.IgnoreIndex, weights, 0);
        var random = new Random(seed);
        var order = new List<int>();
        var rates = new List<double>();
        var losses = new List<double>();
        var smoothed = new List<double>();
        double average = 0, best = double.PositiveInfinity;
        const double beta = 0.9;
        for (int step = 0; step < steps; step++)
        {
            double lr = min * Math.Pow(max / min, step / (double)(steps - 1));
            if (order.Count < 8)
                order.AddRange(Enumerable.Range(0, images.Count).OrderBy(_ => random.Next()));
            var batch = order.Take(8).ToArray();
            order.RemoveRange(0, 8);
            double value;
            using (var scope = NewDisposeScope())
            {
                foreach (var g in optimizer.ParamGroups)
                    g.LearningRate = lr;
                optimizer.zero_grad();
                var l = loss.Compute(network.call(stack(batch.Select(i => images[i]))), stack(batch.Select(i => labels[i])));
                value = l.item<float>();
                if (!double.IsFinite(value))
                    break;
                l.backward();
                optimizer.step();
            }
            average = beta * average + (1 - beta) * value;
            double debiased = average / (1 - Math.Pow(beta, step + 1));
            rates.Add(lr);
            losses.Add(value);
            smoothed.Add(debiased);
            best = Math.Min(best, debiased);
            // Past four times the best loss the run has diverged; the rest of the range says nothing.
            if (step > 10 && debiased > 4 * best)
                break;
        }
        int atMinimum = smoothed.IndexOf(smoothed.Min());
        // Steepest descent of the smoothed loss against log(lr), looked for before the minimum (after it the loss
        // rises); the first tenth of the range is skipped, where the average still starts up.
        int from = Math.Max(1, steps / 10), steepest = from;
        for (int i = from; i <= atMinimum; i++)
            if (smoothed[i] - smoothed[i - 1] < smoothed[steepest] - smoothed[steepest - 1])
                steepest = i;
        return new Curve(decoder.ToString(), pretrained, seed, rates.ToArray(), losses.ToArray(), smoothed.ToArray(), rates[steepest], rates[atMinimum]);
    }

    /// <summary>The training images and masks as tensors, read once through the library's own decoders.</summary>
    static (List<Tensor> Images, List<Tensor> Labels, int Classes) LoadTrainingSet(string folder)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "classes.json")));
        int classes = json.RootElement.GetProperty("classes").GetArrayLength();
        var images = new List<Tensor>();
        var labels = new List<Tensor>();
        foreach (var line in File.ReadLines(Path.Combine(folder, "train.csv")).Skip(1).Where(l => l.Length > 0))
        {
            var parts = line.Split(',');
            using var image = MLImage.CreateFromFile(Path.Combine(folder, parts[0]));
            images.Add(ImageTensorConverter.ToTensor(image));
            labels.Add(ImageTensorConverter.ToTensor(SegmentationMask.FromFile(Path.Combine(folder, parts[1]))));
        }
        if (images.Select(i => i.shape[1]).Distinct().Count() > 1 || images.Select(i => i.shape[2]).Distinct().Count() > 1)
            throw new InvalidOperationException("lrfind stacks whole images into batches, so every training image must have the same size.");
        return (images, labels, classes);
    }

    static long[] PixelsPerClass(List<Tensor> labels, int classes)
    {
        using var scope = NewDisposeScope();
        var all = cat(labels.Select(l => l.flatten()).ToArray());
        return bincount(all.masked_select(all.lt(classes)), minlength: classes).data<long>().ToArray();
    }

    static string Table(List<Curve> curves)
    {
        var sb = new StringBuilder();
        sb.AppendLine("| decoder | backbone | seed | steps run | steepest descent at | minimum at | minimum / 10 |");
        sb.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var c in curves)
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {c.Decoder} | {(c.Pretrained ? "ResNet-18, ImageNet" : "ResNet-18, random")} | {c.Seed} | {c.LearningRates.Length} | {c.SteepestLearningRate:G2} | {c.MinimumLearningRate:G2} | {c.MinimumLearningRate / 10:G2} |"));
        return sb.ToString();
    }
}
