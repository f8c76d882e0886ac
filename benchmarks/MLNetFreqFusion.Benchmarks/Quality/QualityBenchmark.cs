using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Benchmarks.Infrastructure;
using MLNetFreqFusion.Decoders;

namespace MLNetFreqFusion.Benchmarks.Quality;

/// <summary>
/// <c>quality</c>: trains named settings (<see cref="Variants"/>) × decoders × seeds through the public API on a
/// digits-seg style folder (train.csv, val.csv, test.csv, classes.json) and writes, for docs/benchmarks.md, a markdown
/// table of test mIoU, boundary IoU and fit time (mean ± sd over seeds) and a PNG of the validation curves. One run at
/// a time, in this process; every finished run is appended to runs.jsonl at once, so an interrupted sweep keeps its
/// results and <c>--report-only</c> rebuilds the table from them.
/// </summary>
static class QualityBenchmark
{
    sealed record Run(string Variant, string Decoder, int Seed, int Epochs, int TrainRows, double TestMeanIoU, double TestBoundaryIoU,
        double FitSeconds, double[] ValidationCurve, double Load);

    /// <summary>
    /// Every variant starts from the library's defaults (Recipe Auto, which is ShortRun for these runs) with the
    /// choices every run makes — classes, the pretrained ResNet-18 with frozen batch norm, decoder width 128, batch 8
    /// (benchmarks/baseline/plain_loop.py's), the epochs given, no flips (they turn digits into other shapes) — and
    /// changes what its name says. "mmseg" is the paper's recipe; "sample-before" the console sample's settings
    /// before issue 21; the "defaults-…" variants change one factor each.
    /// </summary>
    static readonly Dictionary<string, Action<SemanticSegmentationTrainer.Options>> Variants = new()
    {
        ["defaults"] = o => { },
        ["mmseg"] = o => { o.Recipe = TrainingRecipe.MMSegmentation; o.Augmentation = new AugmentationOptions { FlipProbability = 0 }; },
        ["sample-before"] = o =>
        {
            o.DecoderChannels = 64;
            o.BatchSize = 4;
            o.LearningRate = 1e-3;
            o.HeadLearningRateMultiplier = 10;
            o.WarmupSteps = 1500;
            o.CropSize = 64;
            o.DiceLossWeight = 0.5;
            o.ClassWeights = BackgroundWeight(o.NumberOfClasses, 0.2f);
            o.Augmentation = new AugmentationOptions { FlipProbability = 0, MinScaleRatio = 0.8f, MaxScaleRatio = 1.25f };
        },
        ["defaults-unweighted"] = o => o.ClassWeights = BackgroundWeight(o.NumberOfClasses, 1f),
        ["defaults-weights"] = o => { o.ClassWeights = BackgroundWeight(o.NumberOfClasses, 0.2f); o.DiceLossWeight = 0.5; },
        ["defaults-dice"] = o => o.DiceLossWeight = 0.5,
        ["defaults-batch4"] = o => o.BatchSize = 4,
        ["defaults-head10"] = o => o.HeadLearningRateMultiplier = 10,
        ["defaults-lr3e-4"] = o => o.LearningRate = 3e-4,
        ["defaults-lr3e-3"] = o => o.LearningRate = 3e-3,
        ["defaults-mild-aug"] = o => o.Augmentation = new AugmentationOptions { FlipProbability = 0, MinScaleRatio = 0.8f, MaxScaleRatio = 1.25f, CatMaxRatio = 1, PhotometricDistortion = false },
        ["defaults-photometric"] = o => o.Augmentation = new AugmentationOptions { FlipProbability = 0, MinScaleRatio = 1, MaxScaleRatio = 1, CatMaxRatio = 1 },
        ["defaults-crop64"] = o => o.CropSize = 64,
        ["defaults-ch64"] = o => o.DecoderChannels = 64,
        ["defaults-ch256"] = o => o.DecoderChannels = 256,
        ["defaults-paper-aug"] = o => o.Augmentation = new AugmentationOptions { FlipProbability = 0 },
        ["defaults-backbone1e-4"] = o => { o.LearningRate = 1e-4; o.HeadLearningRateMultiplier = 10; },
        ["defaults-random-init"] = RandomInit,
        ["defaults-random-init-lr3e-3"] = o => { RandomInit(o); o.LearningRate = 3e-3; },
    };

    static void RandomInit(SemanticSegmentationTrainer.Options o)
    {
        o.Backbone = SegmentationBackbone.ResNet18;
        o.PretrainedWeightsPath = null;
        o.FreezeBatchNorm = false;
    }

    static float[] BackgroundWeight(int classes, float weight) => Enumerable.Range(0, classes).Select(c => c == 0 ? weight : 1f).ToArray();

    public const string Usage = """
        quality --data DIR [--variants a,b] [--decoders FreqFusionFpn,BilinearFpn] [--seeds 1,2,3] [--epochs N]
                [--train-rows N] [--threads N] [--out DIR] [--report-only]
          DIR holds train.csv, val.csv, test.csv (ImagePath,MaskPath) and classes.json, e.g. the sample's Data/digits-seg.
          Writes DIR_OUT/runs.jsonl (one line per run), quality.md and curves.png (default out: quality-results).
        """;

    public static int Sweep(string[] args)
    {
        string? data = null, outDir = "quality-results";
        string[] variants = ["defaults", "mmseg"], decoders = ["FreqFusionFpn", "BilinearFpn"];
        int[] seeds = [1];
        int epochs = 8, threads = 1;
        int? trainRows = null;
        bool reportOnly = false;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.\n{Usage}");
            switch (args[i])
            {
                case "--data": data = Next(); break;
                case "--variants": variants = Next().Split(','); break;
                case "--decoders": decoders = Next().Split(','); break;
                case "--seeds": seeds = Next().Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray(); break;
                case "--epochs": epochs = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--train-rows": trainRows = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--threads": threads = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--out": outDir = Next(); break;
                case "--report-only": reportOnly = true; break;
                default: throw new ArgumentException($"Unknown argument '{args[i]}'.\n{Usage}");
            }
        }
        foreach (var v in variants.Where(v => !Variants.ContainsKey(v)))
            throw new ArgumentException($"Unknown variant '{v}'; known: {string.Join(", ", Variants.Keys)}.");
        foreach (var d in decoders.Where(d => !Enum.TryParse<SegmentationDecoder>(d, out _)))
            throw new ArgumentException($"Unknown decoder '{d}'; known: {string.Join(", ", Enum.GetNames<SegmentationDecoder>())}.");
        Directory.CreateDirectory(outDir);
        string runsPath = Path.Combine(outDir, "runs.jsonl");

        if (!reportOnly)
        {
            if (data is null || !File.Exists(Path.Combine(data, "train.csv")))
                throw new ArgumentException($"--data must name a folder with train.csv, val.csv, test.csv and classes.json.\n{Usage}");
            TorchSharp.torch.set_num_threads(threads);
            Console.WriteLine(MachineInfo.Describe());
            foreach (var variant in variants)
                foreach (var seed in seeds)
                    foreach (var decoder in decoders)
                    {
                        var run = Train(data, variant, Enum.Parse<SegmentationDecoder>(decoder), seed, epochs, trainRows);
                        Console.WriteLine($"{run.Variant} {run.Decoder} seed {run.Seed}: test mIoU {run.TestMeanIoU:F2}, boundary IoU " +
                            $"{run.TestBoundaryIoU:F2}, fit {run.FitSeconds:F0} s, load {run.Load:F1}; validation {string.Join(" ", run.ValidationCurve.Select(v => v.ToString("F1", CultureInfo.InvariantCulture)))}");
                        File.AppendAllText(runsPath, JsonSerializer.Serialize(run) + Environment.NewLine);
                    }
        }

        var runs = File.ReadLines(runsPath).Select(l => JsonSerializer.Deserialize<Run>(l)!).ToList();
        File.WriteAllText(Path.Combine(outDir, "quality.md"), Table(runs));
        CurvePlot.Write(Path.Combine(outDir, "curves.png"),
            runs.GroupBy(r => $"{r.Variant} {r.Decoder}").Select(g => (g.Key, MeanCurve(g.Select(r => r.ValidationCurve)))).ToList());
        Console.WriteLine(Table(runs));
        Console.WriteLine($"Wrote {Path.GetFullPath(outDir)}/quality.md and curves.png");
        return 0;
    }

    static Run Train(string folder, string variant, SegmentationDecoder decoder, int seed, int epochs, int? trainRows)
    {
        var ml = new MLContext(seed: seed);
        // The trainer's per-epoch lines, so a long sweep shows where it is.
        ml.Log += (_, e) => { if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Info && e.Message.Contains("epoch", StringComparison.Ordinal)) Console.WriteLine($"  {variant} {decoder} seed {seed}: {e.Message}"); };
        var train = ml.Data.LoadSegmentationPairsFromTextFile(Path.Combine(folder, "train.csv"));
        if (trainRows is int n)
            train = ml.Data.TakeRows(train, n);
        var val = ml.Data.LoadSegmentationPairsFromTextFile(Path.Combine(folder, "val.csv"));
        var test = ml.Data.LoadSegmentationPairsFromTextFile(Path.Combine(folder, "test.csv"));
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "classes.json")));
        int classes = json.RootElement.GetProperty("classes").GetArrayLength();

        var inputs = ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "ImagePath")
            .Append(ml.Transforms.LoadSegmentationMasks("Label", imageFolder: null, inputColumnName: "MaskPath"));
        var curve = new List<double>();
        var options = new SemanticSegmentationTrainer.Options
        {
            NumberOfClasses = classes,
            Backbone = SegmentationBackbone.ResNet18ImageNet,
            PretrainedWeightsPath = PretrainedModels.FindResNet18Onnx()
                ?? throw new InvalidOperationException("ResNet18.onnx is missing from the build output (package Microsoft.ML.DnnImageFeaturizer.ResNet18)."),
            FreezeBatchNorm = true,
            Decoder = decoder,
            DecoderChannels = 128,
            BatchSize = 8,
            Augmentation = AugmentationOptions.FlipsOnly(0),
            MaxEpochs = epochs,
            ValidationSet = inputs.Fit(val).Transform(val),
            Progress = new Progress(curve),
        };
        Variants[variant](options);
        var clock = Stopwatch.StartNew();
        var model = inputs.Append(ml.SemanticSegmentation().Trainers.FreqFusion(options)).Fit(train);
        double fit = clock.Elapsed.TotalSeconds;
        var metrics = ml.SemanticSegmentation().Evaluate(model.Transform(test), labelColumnName: "Label", numberOfClasses: classes);
        double load = OperatingSystem.IsLinux() ? double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], CultureInfo.InvariantCulture) : double.NaN;
        int rows = (int)(train.GetRowCount() ?? train.GetColumn<string>("ImagePath").LongCount());
        return new Run(variant, decoder.ToString(), seed, epochs, rows, metrics.MeanIoU * 100, metrics.MeanBoundaryIoU * 100, fit, curve.ToArray(), load);
    }

    /// <summary>Collects the validation mIoU (percent) of every epoch; a synchronous IProgress, unlike Progress&lt;T&gt;.</summary>
    sealed class Progress(List<double> curve) : IProgress<SemanticSegmentationProgress>
    {
        public void Report(SemanticSegmentationProgress p)
        {
            if (p.ValidationMeanIoU is double miou)
                curve.Add(miou * 100);
        }
    }

    static double[] MeanCurve(IEnumerable<double[]> curves)
    {
        var all = curves.ToList();
        int length = all.Min(c => c.Length);
        return Enumerable.Range(0, length).Select(e => all.Average(c => c[e])).ToArray();
    }

    static (double Mean, double Sd) Stats(IEnumerable<double> values)
    {
        var v = values.ToArray();
        double mean = v.Average();
        double sd = v.Length > 1 ? Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1)) : double.NaN;
        return (mean, sd);
    }

    static string Format((double Mean, double Sd) s) => double.IsNaN(s.Sd)
        ? s.Mean.ToString("F2", CultureInfo.InvariantCulture)
        : string.Create(CultureInfo.InvariantCulture, $"{s.Mean:F2} ± {s.Sd:F2}");

    static string Table(List<Run> runs)
    {
        var sb = new StringBuilder();
        sb.AppendLine("| settings | decoder | train rows | epochs | seeds | test mIoU % | test boundary IoU % | fit s | load (1 min) |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var g in runs.GroupBy(r => (r.Variant, r.Decoder, r.TrainRows, r.Epochs)))
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {g.Key.Variant} | {g.Key.Decoder} | {g.Key.TrainRows} | {g.Key.Epochs} | {string.Join(",", g.Select(r => r.Seed))} | " +
                $"{Format(Stats(g.Select(r => r.TestMeanIoU)))} | {Format(Stats(g.Select(r => r.TestBoundaryIoU)))} | " +
                $"{Format(Stats(g.Select(r => r.FitSeconds)))} | {g.Min(r => r.Load):F0}–{g.Max(r => r.Load):F0} |"));
        return sb.ToString();
    }
}
