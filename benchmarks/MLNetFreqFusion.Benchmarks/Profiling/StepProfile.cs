using System.Diagnostics;
using System.Globalization;
using MLNetFreqFusion.Benchmarks.Infrastructure;
using MLNetFreqFusion.Networks;
using MLNetFreqFusion.Operators;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Benchmarks.Profiling;

/// <summary>
/// Issue 16: <c>profile shares [--inference]|ratio|inference|ab|module-ab|convolutions|carafe|offsets|onednn-check|optimizer [--size S] [--batch B] [--steps N] [--classes K] [--channels C]</c>, outside
/// BenchmarkDotNet because a loaded machine makes absolute times meaningless; what is printed is either each row's
/// share of one training step (median over N steps) or ratios of two variants measured in alternation (A, B, A, B…).
/// </summary>
static class StepProfile
{
    const string Loss = "loss (cross-entropy)", Optimizer = "AdamW step", ScalarCollection = "gen-0 collection (FinalizedScalars)";

    /// <summary>--channels: the decode head's width; the architecture's default when absent.</summary>
    static int? DecoderChannels;

    static readonly SegmentationDecoder[] Heads =
        [SegmentationDecoder.FreqFusion, SegmentationDecoder.Bilinear, SegmentationDecoder.FreqFusionFpn, SegmentationDecoder.BilinearFpn];

    /// <summary>Runs the profile command when the first argument is <c>profile</c>; false otherwise.</summary>
    public static bool TryRun(string[] args)
    {
        if (args.Length < 2 || args[0] != "profile")
            return false;
        int size = Option(args, "--size", 96), batch = Option(args, "--batch", 8), steps = Option(args, "--steps", 5), classes = Option(args, "--classes", 11);
        int channels = Option(args, "--channels", 0);
        DecoderChannels = channels > 0 ? channels : null;
        Console.WriteLine($"# {args[1]} at {size}², batch {batch}, {steps} measured steps, {classes} classes; {MachineInfo.Describe()}");
        if (Environment.GetEnvironmentVariable("GLIBC_TUNABLES") is { Length: > 0 } tunables)
            Console.WriteLine($"# GLIBC_TUNABLES={tunables}");
        if (Array.IndexOf(args, "--onednn") >= 0)
        {
            // The library switches oneDNN off when its first network is built; switch it back on after that.
            using (zeros(1)) Native.LibTorchRuntime.EnsureConfigured();
            Console.WriteLine($"# oneDNN convolutions on: {Native.LibTorchRuntime.SetOneDnnForBenchmark(true)}");
        }
        switch (args[1])
        {
            case "shares":
                int only = Array.IndexOf(args, "--head");
                bool inferenceShares = Array.IndexOf(args, "--inference") >= 0;
                if (!inferenceShares)
                    UseTrainersAllocator();
                foreach (var head in only < 0 ? Heads : [Enum.Parse<SegmentationDecoder>(args[only + 1])])
                {
                    if (inferenceShares)
                        InferenceShares(head, size, batch, steps, classes);
                    else
                        Shares(head, size, batch, steps, classes);
                }
                break;
            case "ratio":
                UseTrainersAllocator();
                Ratio(SegmentationDecoder.FreqFusion, SegmentationDecoder.Bilinear, size, batch, steps, classes, training: true);
                Ratio(SegmentationDecoder.FreqFusionFpn, SegmentationDecoder.BilinearFpn, size, batch, steps, classes, training: true);
                break;
            case "inference":
                Ratio(SegmentationDecoder.FreqFusion, SegmentationDecoder.Bilinear, size, batch, steps, classes, training: false);
                Ratio(SegmentationDecoder.FreqFusionFpn, SegmentationDecoder.BilinearFpn, size, batch, steps, classes, training: false);
                break;
            case "onednn-check":
                foreach (var head in Heads)
                    CompareOneDnnForward(head, size, batch, steps, classes);
                ScanOneDnnConvolutions();
                break;
            case "convolutions":
                // The trainer's allocator, or with --serving glibc's defaults, which a serving process keeps.
                if (Array.IndexOf(args, "--serving") < 0)
                    UseTrainersAllocator();
                ConvolutionProfile.Run(steps);
                break;
            case "carafe":
                UseTrainersAllocator();
                CarafeProfile.Run(steps);
                break;
            case "offsets":
                UseTrainersAllocator();
                OffsetGeneratorProfile.Run(steps);
                break;
            case "optimizer":
                foreach (var head in Heads)
                    OptimizerShare(head, size, batch, steps, classes);
                break;
            case "nan":
                FindNonFinite(Enum.Parse<SegmentationDecoder>(args[Array.IndexOf(args, "--head") + 1]), size, batch, steps, classes);
                break;
            case "module-ab":
                ModuleProfile.Alternate(args[Array.IndexOf(args, "--experiment") + 1].Split('+').Select(name => Experiments[name]).ToArray(), steps);
                break;
            case "ab":
                string experiment = args[Array.IndexOf(args, "--experiment") + 1];
                if (Array.IndexOf(args, "--inference") < 0)
                    UseTrainersAllocator();
                int only2 = Array.IndexOf(args, "--head");
                foreach (var head in only2 < 0 ? Heads : [Enum.Parse<SegmentationDecoder>(args[only2 + 1])])
                    AlternateVariants(head, size, batch, steps, classes, experiment, Array.IndexOf(args, "--inference") >= 0);
                break;
            default:
                throw new ArgumentException($"Unknown profile command '{args[1]}'; use shares, ratio or inference.");
        }
        Console.WriteLine($"# finished; load average {File.ReadAllText("/proc/loadavg").Trim()}");
        return true;
    }

    /// <summary>What TrainingRun sets before its first step (docs/decisions.md): training is timed with the trainer's allocator.</summary>
    static void UseTrainersAllocator()
    {
        Native.LibTorchRuntime.KeepFreedMemoryForTraining();
        Console.WriteLine("# glibc allocator as the trainer sets it (LibTorchRuntime.KeepFreedMemoryForTraining)");
    }

    static int Option(string[] args, string name, int fallback)
    {
        int at = Array.IndexOf(args, name);
        return at >= 0 && at + 1 < args.Length ? int.Parse(args[at + 1], CultureInfo.InvariantCulture) : fallback;
    }

    sealed class Setup : IDisposable
    {
        public Setup(SegmentationDecoder head, int size, int batch, int classes)
        {
            manual_seed(16);
            Network = BenchmarkNetwork.Create(SegmentationBackbone.ResNet18, head, classes, DecoderChannels);
            Optimizer = optim.AdamW(Network.parameters(), lr: 6e-5);
            foreach (var (name, p) in Network.named_parameters())
            {
                double max = p.abs().max().item<float>();
                if (!double.IsFinite(max) || max > 100)
                    Console.WriteLine($"# suspicious initial parameter {name}: max |value| {max}");
            }
            Images = rand(batch, 3, size, size) * 255;
            Labels = randint(0, classes, [batch, size, size], dtype: int64);
        }

        public SegmentationNetwork Network { get; }
        public AdamW Optimizer { get; }
        public Tensor Images { get; }
        public Tensor Labels { get; }

        public void Dispose()
        {
            Optimizer.Dispose();
            Network.Dispose();
            Images.Dispose();
            Labels.Dispose();
        }
    }

    /// <summary>Per-row forward and backward seconds and page faults of each step, then each row's median share of the step and median faults.</summary>
    static void Shares(SegmentationDecoder head, int size, int batch, int steps, int classes)
    {
        using var setup = new Setup(head, size, batch, classes);
        SectionHooks.Install(setup.Network);
        var perStep = new List<(Dictionary<string, StepTimeline.Cost> Forward, Dictionary<string, StepTimeline.Cost> Backward, double Total)>();
        for (int step = 0; step <= steps; step++)
        {
            var timeline = new StepTimeline();
            OperatorProfile.Recorder = timeline;
            StepTimeline.Mark t0, t1, t2, t3, t4;
            long guard;
            try
            {
                setup.Network.train();
                using (var scope = NewDisposeScope())
                {
                    setup.Optimizer.zero_grad();
                    t0 = StepTimeline.Mark.Now();
                    var logits = setup.Network.call(setup.Images);
                    int id = timeline.Begin(Loss);
                    var loss = timeline.End(id, nn.functional.cross_entropy(timeline.Input(id, logits), setup.Labels, ignore_index: 255));
                    t1 = StepTimeline.Mark.Now();
                    loss.backward();
                    t2 = StepTimeline.Mark.Now();
                    guard = DropNonFiniteGradients(setup.Network);
                    setup.Optimizer.step();
                    var end = StepTimeline.Mark.Now();
                    t3 = end with { Ticks = end.Ticks - guard };
                }
                Native.FinalizedScalars.AfterNetworkCall(setup.Images);
                var collected = StepTimeline.Mark.Now();
                t4 = collected with { Ticks = collected.Ticks - guard };
            }
            finally
            {
                OperatorProfile.Recorder = null;
            }
            if (step == 0)
                continue; // warm-up: first-call allocations and lazy initialisation
            var backward = timeline.Backward(t1, t2, SectionHooks.NetworkRest);
            backward[Optimizer] = new StepTimeline.Cost((t3.Ticks - t2.Ticks) / (double)Stopwatch.Frequency, t3.Faults - t2.Faults);
            backward[ScalarCollection] = new StepTimeline.Cost((t4.Ticks - t3.Ticks) / (double)Stopwatch.Frequency, t4.Faults - t3.Faults);
            perStep.Add((timeline.Forward(t0, t1, SectionHooks.NetworkRest), backward, (t4.Ticks - t0.Ticks) / (double)Stopwatch.Frequency));
        }

        var rows = perStep.SelectMany(s => s.Forward.Keys.Concat(s.Backward.Keys)).Distinct()
            .Select(row => (Row: row,
                Forward: Median(perStep.Select(s => s.Forward.GetValueOrDefault(row).Seconds / s.Total)),
                Backward: Median(perStep.Select(s => s.Backward.GetValueOrDefault(row).Seconds / s.Total)),
                Faults: Median(perStep.Select(s => (double)(s.Forward.GetValueOrDefault(row).Faults + s.Backward.GetValueOrDefault(row).Faults)))))
            .OrderByDescending(r => r.Forward + r.Backward)
            .ToList();
        Console.WriteLine();
        Console.WriteLine($"## ResNet-18 + {head}: step median {Median(perStep.Select(s => s.Total)) * 1000:F0} ms (under load: only the shares mean anything); load {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine();
        Console.WriteLine("| Row | Forward | Backward | Step share | Page faults a step |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        foreach (var (row, forward, backwardShare, faults) in rows)
            Console.WriteLine($"| {row} | {forward:P1} | {backwardShare:P1} | **{forward + backwardShare:P1}** | {faults:F0} |");
    }

    /// <summary>Per-row seconds and page faults of an eval-mode forward without autograd, then each row's median share of it and median faults.</summary>
    static void InferenceShares(SegmentationDecoder head, int size, int batch, int steps, int classes)
    {
        using var setup = new Setup(head, size, batch, classes);
        SectionHooks.Install(setup.Network);
        setup.Network.eval();
        var perCall = new List<(Dictionary<string, StepTimeline.Cost> Forward, double Total)>();
        for (int step = 0; step <= steps; step++)
        {
            var timeline = new StepTimeline();
            OperatorProfile.Recorder = timeline;
            StepTimeline.Mark t0, t1, t2;
            try
            {
                using (var scope = NewDisposeScope())
                using (var noGrad = no_grad())
                {
                    t0 = StepTimeline.Mark.Now();
                    _ = setup.Network.call(setup.Images);
                    t1 = StepTimeline.Mark.Now();
                }
                Native.FinalizedScalars.AfterNetworkCall(setup.Images);
                t2 = StepTimeline.Mark.Now();
            }
            finally
            {
                OperatorProfile.Recorder = null;
            }
            if (step == 0)
                continue;
            var forward = timeline.Forward(t0, t1, SectionHooks.NetworkRest);
            forward[ScalarCollection] = new StepTimeline.Cost((t2.Ticks - t1.Ticks) / (double)Stopwatch.Frequency, t2.Faults - t1.Faults);
            perCall.Add((forward, (t2.Ticks - t0.Ticks) / (double)Stopwatch.Frequency));
        }
        var rows = perCall.SelectMany(c => c.Forward.Keys).Distinct()
            .Select(row => (Row: row, Share: Median(perCall.Select(c => c.Forward.GetValueOrDefault(row).Seconds / c.Total)),
                Seconds: Median(perCall.Select(c => c.Forward.GetValueOrDefault(row).Seconds)),
                Faults: Median(perCall.Select(c => (double)c.Forward.GetValueOrDefault(row).Faults))))
            .OrderByDescending(r => r.Share)
            .ToList();
        Console.WriteLine();
        Console.WriteLine($"## ResNet-18 + {head}, inference: median {Median(perCall.Select(c => c.Total)) * 1000:F0} ms; load {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine();
        Console.WriteLine("| Row | Median time | Share | Page faults a call |");
        Console.WriteLine("|---|---:|---:|---:|");
        foreach (var (row, share, seconds, faults) in rows)
            Console.WriteLine($"| {row} | {seconds * 1000:F0} ms | **{share:P1}** | {faults:F0} |");
    }

    /// <summary>Alternates steps (or inference calls) of the two heads; prints the median of the per-pair ratios.</summary>
    static void Ratio(SegmentationDecoder a, SegmentationDecoder b, int size, int batch, int steps, int classes, bool training)
    {
        using var first = new Setup(a, size, batch, classes);
        using var second = new Setup(b, size, batch, classes);
        var ratios = new List<double>();
        var times = (A: new List<double>(), B: new List<double>());
        var faults = (A: new List<double>(), B: new List<double>());
        for (int step = 0; step <= steps; step++)
        {
            long f0 = StepTimeline.MinorPageFaults();
            double ta = Time(first, training);
            long f1 = StepTimeline.MinorPageFaults();
            double tb = Time(second, training);
            long f2 = StepTimeline.MinorPageFaults();
            if (step == 0)
                continue;
            times.A.Add(ta);
            times.B.Add(tb);
            faults.A.Add(f1 - f0);
            faults.B.Add(f2 - f1);
            ratios.Add(ta / tb);
        }
        string what = training ? "training step" : "inference (eval, no autograd)";
        Console.WriteLine($"| {a} / {b} | {what} | {size}² batch {batch} | {Median(times.A) * 1000:F0} ms | {Median(times.B) * 1000:F0} ms | " +
            $"**{Median(ratios):F2}** (min {ratios.Min():F2}, max {ratios.Max():F2}, {ratios.Count} pairs) | " +
            $"{Median(faults.A):F0} / {Median(faults.B):F0} | {File.ReadAllText("/proc/loadavg").Trim()} |");
    }

    /// <summary>
    /// Formulation experiments of issue 16: each switches one operator between the current formulation (false) and a
    /// candidate (true) that must compute the same function.
    /// </summary>
    static readonly Dictionary<string, Action<bool>> Experiments = new()
    {
        ["threads"] = on => set_num_threads(on ? 2 : 1),
        ["none"] = _ => { },
        // B = oneDNN convolutions on (the library switches them off; docs/decisions.md): the price of that switch.
        ["onednn"] = on => Native.LibTorchRuntime.SetOneDnnForBenchmark(on),
        // B = convolutions to few channels back on ATen's im2col or bands instead of tap products (§13): what they save.
        ["no-tap-products"] = on => SpatialConvolution.TapProductsOffForBenchmark = on,
        // B = 1×1 convolutions back on ATen's convolution instead of batched matrix products (§16): what they save.
        ["no-pointwise-products"] = on => SpatialConvolution.PointwiseProductsOffForBenchmark = on,
        // B = CARAFE ×1 back on ATen's k² passes instead of the AVX2 loops (§14): what they save.
        ["no-carafe-loops"] = on => CarafeLoops.OffForBenchmark = on,
        // B = CARAFE's kernel gradient summing each group's channels in one pass instead of blocks of 8 (§19).
        ["no-kernel-gradient-blocks"] = on => CarafeLoops.KernelGradientBlocksOffForBenchmark = on,
        // B = grid_sample back on ATen's kernel instead of the AVX2 loops (§15): what they save.
        ["no-grid-sample-loops"] = on => GridSampleLoops.OffForBenchmark = on,
        // B = local similarity back on ATen's bands instead of the AVX2 loops (§15).
        ["no-local-similarity-loops"] = on => LocalSimilarityLoops.OffForBenchmark = on,
        // B = tap products' shifted additions (and their gradient's shifted copies) as ATen slices instead of loops.
        ["no-tap-shift-loops"] = on => TapConvolution.ShiftLoopsOffForBenchmark = on,
        // B = the SegFormer-style heads' projections as Linear on pixel rows (channels-last maps) instead of products.
        ["channels-last-projections"] = on => Decoders.Mlp.PixelRowsForBenchmark = on,
        // B = CARAFE's loops reading kernels (×2 forward) and writing the kernel gradient as planes instead of rows per map row (§22).
        ["planar-carafe-layouts"] = on => CarafeLoops.PlanarLayoutsForBenchmark = on,
        // B = CARAFE ×2's feature gradient reading a zero-rimmed copy of the incoming gradient instead of masked edges (§22).
        ["rimmed-carafe-gradient"] = on => CarafeLoops.RimmedGradientForBenchmark = on,
        // B = tap products only up to half as many outputs as inputs, whatever the map (§13's rule).
        ["no-wide-tap-outputs"] = on => TapConvolution.WideOutputsOffForBenchmark = on,
        // B = FreqFusion's hr compressor on the concat head's projected stage instead of on the projection's narrower input (§22).
        ["no-composed-projections"] = on => SpatialConvolution.ComposedProjectionsOffForBenchmark = on,
        // B = the concat head's fuse layer on the concatenated 1/4-scale map instead of its lr part before FreqFusion's up-sampling (§22).
        ["fuse-after-upsampling"] = on => Decoders.FreqFusionHead.FuseAfterUpsamplingForBenchmark = on,
        // B = stride-1 convolutions back on tap products, bands or ATen instead of the direct AVX-512 loops (§23).
        ["no-direct-convolutions"] = on => DirectConvolution.OffForBenchmark = on,
        // B = FreqFusion's high-pass filter as CARAFE ×1 then a subtraction and an addition instead of one pass (§23).
        ["high-pass-after"] = on => Carafe.HighPassAfterForBenchmark = on,
        // B = CARAFE ×2's forward in AVX2 pairs of channels only, instead of AVX-512 blocks of four on rows of whole 16-pixel vectors (§24).
        ["no-avx512-carafe"] = on => CarafeLoops.Avx512UpsamplingOffForBenchmark = on,
        // B = local similarity's channel norms summed pixel by pixel across the planes instead of plane by plane over a row (§24).
        ["pixel-major-similarity-norms"] = on => LocalSimilarityLoops.PixelMajorNormsForBenchmark = on,
        // B = predictions build the offset generator's grid from ATen operations instead of one pass (§24).
        ["no-position-loop"] = on => Fusion.LocalSimGuidedSampler.PositionLoopOffForBenchmark = on,
        // B = the lr mixing's groups up-sampled and resampled as one map of all their channels, then summed (§23).
        ["all-groups-at-once"] = on => Fusion.FreqFusion.AllGroupsAtOnceForBenchmark = on,
        // B = each convolution of a shared input on its own instead of one convolution to all their channels.
        ["no-merged-convolutions"] = on => SpatialConvolution.MergingOffForBenchmark = on,
        // B = the reference's softmax, window product, sum and quotient instead of one softmax of shifted logits.
        ["reference-normaliser"] = on => KernelNormalizer.ReferenceOrderForBenchmark = on,
    };

    /// <summary>
    /// One network, steps alternating between the current formulation (A) and the candidate (B); experiments joined by
    /// '+' switch together.
    /// </summary>
    static void AlternateVariants(SegmentationDecoder head, int size, int batch, int steps, int classes, string experiment, bool inference)
    {
        var toggles = experiment.Split('+').Select(name => Experiments[name]).ToArray();
        Action<bool> toggle = on => Array.ForEach(toggles, t => t(on));
        using var setup = new Setup(head, size, batch, classes);
        var ratios = new List<double>();
        var times = (A: new List<double>(), B: new List<double>());
        for (int step = 0; step <= steps; step++)
        {
            toggle(false);
            double ta = Time(setup, !inference);
            toggle(true);
            double tb = Time(setup, !inference);
            toggle(false);
            if (step == 0)
                continue;
            times.A.Add(ta);
            times.B.Add(tb);
            ratios.Add(tb / ta);
        }
        foreach (var (name, p) in setup.Network.named_parameters())
        {
            if (!double.IsFinite(p.abs().max().item<float>()))
                Console.WriteLine($"# non-finite parameter after training: {name}");
        }
        Console.WriteLine($"| {experiment} | {head} | {(inference ? "inference" : "training step")} | {size}² batch {batch} | A {Median(times.A) * 1000:F0} ms | B {Median(times.B) * 1000:F0} ms | " +
            $"B/A **{Median(ratios):F3}** (min {ratios.Min():F3}, max {ratios.Max():F3}, {ratios.Count} pairs; mean {ratios.Average():F3} ± {StandardError(ratios):F3}) | {File.ReadAllText("/proc/loadavg").Trim()} |");
    }

    /// <summary>The standard error of the mean: how far the mean ratio of this many pairs may sit from the true one.</summary>
    static double StandardError(List<double> values)
    {
        double mean = values.Average();
        return Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / Math.Max(1, values.Count - 1) / values.Count);
    }

    /// <summary>
    /// Whole-network logits of eval-mode forwards with oneDNN's convolutions against ATen's, on a network with random
    /// weights and on one with the ImageNet backbone (pretrained-like activations), for <paramref name="inputs"/> random
    /// images each: the largest absolute difference, relative to the largest logit, the share of pixels whose argmax
    /// differs, and non-finite values of either.
    /// </summary>
    static void CompareOneDnnForward(SegmentationDecoder head, int size, int batch, int inputs, int classes)
    {
        foreach (bool pretrained in new[] { false, true })
        {
            manual_seed(16);
            var architecture = new SegmentationArchitecture
            {
                Backbone = pretrained ? SegmentationBackbone.ResNet18ImageNet : SegmentationBackbone.ResNet18,
                Decoder = head, NumberOfClasses = classes, DecoderChannels = DecoderChannels,
            };
            using var network = SegmentationNetwork.Create(architecture, loadPretrainedWeights: pretrained);
            network.eval();
            double worstAbs = 0, worstRel = 0, worstLabels = 0;
            int nonFinite = 0;
            for (int i = 0; i < inputs; i++)
            {
                using var scope = NewDisposeScope();
                using var noGrad = no_grad();
                var images = rand(batch, 3, size, size) * 255;
                Native.LibTorchRuntime.SetOneDnnForBenchmark(false);
                var aten = network.call(images);
                Native.LibTorchRuntime.SetOneDnnForBenchmark(true);
                var onednn = network.call(images);
                Native.LibTorchRuntime.SetOneDnnForBenchmark(false);
                nonFinite += (int)(~aten.isfinite()).sum().item<long>() + (int)(~onednn.isfinite()).sum().item<long>();
                double abs = (aten - onednn).abs().max().item<float>(), scale = aten.abs().max().item<float>();
                worstAbs = Math.Max(worstAbs, abs);
                worstRel = Math.Max(worstRel, abs / scale);
                worstLabels = Math.Max(worstLabels, aten.argmax(1).ne(onednn.argmax(1)).to(float32).mean().item<float>());
            }
            Console.WriteLine($"| {head} | {(pretrained ? "ImageNet backbone" : "random")} | {size}² batch {batch} × {inputs} | max |Δ| {worstAbs:G3} | " +
                $"relative to max |logit| {worstRel:G3} | argmax differs {worstLabels:P4} | non-finite {nonFinite} | {File.ReadAllText("/proc/loadavg").Trim()} |");
        }
    }

    /// <summary>
    /// Time of the optimizer step alone against the whole training step, with the trainer's four AdamW groups
    /// ({backbone, head} × {decayed, not decayed}); steps alternate whole step, optimizer step.
    /// </summary>
    static void OptimizerShare(SegmentationDecoder head, int size, int batch, int steps, int classes)
    {
        using var setup = new Setup(head, size, batch, classes);
        using var optimizer = TrainerLikeAdamW(setup.Network);
        var whole = new List<double>();
        var optimizerOnly = new List<double>();
        var flatOnly = new List<double>();
        var overheadOnly = new List<double>();
        // What a multi-tensor AdamW could save: TorchSharp's arithmetic on one contiguous buffer of all the values
        // (the memory traffic without the per-tensor calls), and TorchSharp's AdamW on as many one-value tensors as
        // the network has parameter tensors (the per-tensor calls without the memory traffic).
        long values = setup.Network.parameters().Sum(p => p.numel());
        using var flatParameters = randn(values);
        using var flatGradients = randn(values);
        using var flatAverage = zeros(values);
        using var flatSquares = zeros(values);
        var tiny = setup.Network.parameters().Select(_ => new Parameter(randn(1))).ToList();
        using var tinyOptimizer = optim.AdamW(tiny, lr: 1e-3);
        using (var tinyScope = NewDisposeScope())
            stack(tiny).square().sum().backward();
        for (int step = 0; step <= steps; step++)
        {
            setup.Network.train();
            using var scope = NewDisposeScope();
            long t0 = Stopwatch.GetTimestamp();
            optimizer.zero_grad();
            nn.functional.cross_entropy(setup.Network.call(setup.Images), setup.Labels, ignore_index: 255).backward();
            long t1 = Stopwatch.GetTimestamp();
            optimizer.step();
            long t2 = Stopwatch.GetTimestamp();
            using (no_grad())
            {
                flatParameters.mul_(1 - 1e-5);
                flatAverage.mul_(0.9).add_(flatGradients, alpha: 0.1);
                flatSquares.mul_(0.999).addcmul_(flatGradients, flatGradients, value: 0.001);
                flatParameters.addcdiv_(flatAverage, (flatSquares.sqrt() / 0.5).add_(1e-8), value: -1e-3);
            }
            long t3 = Stopwatch.GetTimestamp();
            tinyOptimizer.step();
            long t4 = Stopwatch.GetTimestamp();
            if (step == 0)
                continue;
            overheadOnly.Add((t4 - t3) / (double)Stopwatch.Frequency);
            flatOnly.Add((t3 - t2) / (double)Stopwatch.Frequency);
            whole.Add((t2 - t0) / (double)Stopwatch.Frequency);
            optimizerOnly.Add((t2 - t1) / (double)Stopwatch.Frequency);
        }
        var parameters = setup.Network.parameters().ToList();
        Console.WriteLine($"| {head} | width {DecoderChannels?.ToString(CultureInfo.InvariantCulture) ?? "default"} | {parameters.Count} tensors, {parameters.Sum(p => p.numel()) / 1e6:F2} M values | " +
            $"step {Median(whole) * 1000:F0} ms | AdamW {Median(optimizerOnly) * 1000:F1} ms (min {optimizerOnly.Min() * 1000:F1}) | **{Median(optimizerOnly) / Median(whole):P1}** | " +
            $"one flat buffer {Median(flatOnly) * 1000:F1} ms (min {flatOnly.Min() * 1000:F1}) | " +
            $"one-value tensors {Median(overheadOnly) * 1000:F2} ms (min {overheadOnly.Min() * 1000:F2}) | {File.ReadAllText("/proc/loadavg").Trim()} |");
    }

    /// <summary>TorchSharp's AdamW with the trainer's groups: {backbone, head} × {decayed, not decayed} (TrainingRun.BuildOptimizer).</summary>
    static optim.Optimizer TrainerLikeAdamW(SegmentationNetwork network)
    {
        var groups = new List<AdamW.ParamGroup>();
        foreach (var parameters in new[] { network.BackboneParameters().ToArray(), network.DecoderParameters().ToArray() })
        {
            groups.Add(new AdamW.ParamGroup(parameters.Where(p => p.dim() > 1), lr: 1e-3, weight_decay: 0.01));
            groups.Add(new AdamW.ParamGroup(parameters.Where(p => p.dim() <= 1), lr: 1e-3, weight_decay: 0));
        }
        return optim.AdamW(groups, lr: 1e-3);
    }

    /// <summary>
    /// Single convolutions (random weights and inputs) run by oneDNN and by ATen: prints every shape whose outputs
    /// differ by more than 1e-4 of the largest output. On the AVX-512 host of docs/decisions.md (libtorch 2.10,
    /// oneDNN 3.7.1) the 3×3 ones with 20, 24 or 40 input channels differ by 14–56 % (2026-12-06).
    /// </summary>
    static void ScanOneDnnConvolutions()
    {
        using var noGrad = no_grad();
        int wrong = 0, shapes = 0;
        foreach (int kernel in new[] { 1, 3 })
        foreach (int size in new[] { 8, 16, 33 })
        foreach (int inChannels in new[] { 3, 8, 12, 16, 20, 24, 32, 40, 48, 64, 96 })
        foreach (int outChannels in new[] { 8, 25, 32 })
        foreach (int batch in new[] { 1, 2, 8 })
        {
            using var scope = NewDisposeScope();
            manual_seed(inChannels * 100 + outChannels);
            using var conv = nn.Conv2d(inChannels, outChannels, kernel, padding: kernel / 2);
            var x = randn(batch, inChannels, size, size);
            Native.LibTorchRuntime.SetOneDnnForBenchmark(false);
            var aten = conv.call(x);
            Native.LibTorchRuntime.SetOneDnnForBenchmark(true);
            var onednn = conv.call(x);
            Native.LibTorchRuntime.SetOneDnnForBenchmark(false);
            double relative = (aten - onednn).abs().max().item<float>() / aten.abs().max().item<float>();
            shapes++;
            if (relative > 1e-4 || !double.IsFinite(relative))
            {
                wrong++;
                Console.WriteLine($"| conv {kernel}×{kernel} | {inChannels} → {outChannels} | {batch}×{size}² | oneDNN differs by {relative:P1} of the largest output |");
            }
        }
        Console.WriteLine($"# oneDNN convolutions: {wrong} of {shapes} shapes differ from ATen's by more than 1e-4 of the largest output");
    }

    static void FindNonFinite(SegmentationDecoder head, int size, int batch, int steps, int classes)
    {
        using var setup = new Setup(head, size, batch, classes);
        foreach (var (path, module) in setup.Network.named_modules())
        {
            if (module is nn.Module<Tensor, Tensor> m)
                m.register_forward_hook((_, x, y) =>
                {
                    if (!y.isfinite().all().item<bool>())
                        Console.WriteLine($"# non-finite output of {path} (input finite: {x.isfinite().all().item<bool>()}, max |y| {y.abs().max().item<float>()})");
                    return y;
                });
        }
        for (int step = 0; step < steps; step++)
        {
            setup.Network.train();
            using var scope = NewDisposeScope();
            setup.Optimizer.zero_grad();
            var loss = nn.functional.cross_entropy(setup.Network.call(setup.Images), setup.Labels, ignore_index: 255);
            Console.WriteLine($"# step {step} loss {loss.item<float>()}");
            loss.backward();
            foreach (var (name, p) in setup.Network.named_parameters())
            {
                if (p.grad is Tensor g && !g.isfinite().all().item<bool>())
                    Console.WriteLine($"# non-finite gradient of {name}");
            }
            setup.Optimizer.step();
        }
    }

    static double Time(Setup setup, bool training)
    {
        long start = Stopwatch.GetTimestamp();
        if (training)
        {
            setup.Network.train();
            using var scope = NewDisposeScope();
            setup.Optimizer.zero_grad();
            nn.functional.cross_entropy(setup.Network.call(setup.Images), setup.Labels, ignore_index: 255).backward();
            start += DropNonFiniteGradients(setup.Network);
            setup.Optimizer.step();
        }
        else
        {
            setup.Network.eval();
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            _ = setup.Network.call(setup.Images);
        }
        Native.FinalizedScalars.AfterNetworkCall(setup.Images);
        return (Stopwatch.GetTimestamp() - start) / (double)Stopwatch.Frequency;
    }

    /// <summary>Non-finite gradient steps seen so far (see <see cref="DropNonFiniteGradients"/>).</summary>
    static int s_nonFiniteSteps;

    /// <summary>
    /// Zeroes the gradients of a step whose backward produced a non-finite value, so that the parameters stay finite:
    /// at 96² with random weights, about one run in three produces NaN gradients in the finest FreqFusion stage's hr
    /// path at some step (not reproducible with the same seed), and the next forward then crashes in grid_sample's
    /// CPU backward (libtorch indexes with the NaN coordinates). Returns the ticks the check took, to leave out of the timing.
    /// </summary>
    static long DropNonFiniteGradients(SegmentationNetwork network)
    {
        long start = Stopwatch.GetTimestamp();
        using var noGrad = no_grad();
        var grads = network.parameters().Select(p => p.grad).OfType<Tensor>().ToList();
        if (grads.Any(g => !g.isfinite().all().item<bool>()))
        {
            s_nonFiniteSteps++;
            Console.WriteLine($"# non-finite gradients in a step (number {s_nonFiniteSteps} in this run); zeroed");
            grads.ForEach(g => g.zero_());
        }
        return Stopwatch.GetTimestamp() - start;
    }

    internal static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? 0 : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
