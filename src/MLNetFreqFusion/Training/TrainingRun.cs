using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNetFreqFusion.Data;
using MLNetFreqFusion.Inference;
using MLNetFreqFusion.Networks;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Training;

/// <summary>
/// The optimisation loop of <see cref="SemanticSegmentationTrainer"/>: shuffled augmented batches, AdamW with the
/// head at a multiple of the backbone's learning rate and no decay on 1-D parameters (norms, biases), poly schedule
/// with warmup, validation mean IoU after every epoch with the best weights kept, early stopping, progress, and
/// cancellation between steps.
/// </summary>
internal sealed partial class TrainingRun
{
    readonly IHost _host;
    readonly IChannel _ch;
    readonly TrainingSettings _o;
    readonly SegmentationPredictor _predictor;
    readonly SegmentationNetwork _network;
    readonly Device _device;
    readonly int _rows, _seed;
    readonly SegmentationLoss _loss;
    readonly Random _random;
    readonly ImageSourceCheck _imageCheck = new();

    public TrainingRun(IHost host, IChannel ch, TrainingSettings options, SegmentationPredictor predictor,
        SegmentationNetwork network, Device device, int rows, int seed)
    {
        _host = host;
        _ch = ch;
        _o = options;
        _predictor = predictor;
        _network = network;
        _device = device;
        _rows = rows;
        _seed = seed;
        _loss = new SegmentationLoss(options.IgnoreIndex, options.ClassWeights, options.DiceLossWeight);
        _random = new Random(seed);
    }

    public void Train(IDataView input)
    {
        Native.LibTorchRuntime.KeepFreedMemoryForTraining();
        int totalSteps = TotalSteps(_rows, _o.BatchSize, _o.MaxEpochs);
        var schedule = new LearningRateSchedule(totalSteps, Math.Min(_o.WarmupSteps, totalSteps / 10), _o.PolyPower);
        var (optimizer, groups) = BuildOptimizer();
        using var _ = optimizer;

        Dictionary<string, Tensor>? best = null;
        double bestMeanIoU = double.NegativeInfinity;
        int epochsWithoutImprovement = 0, step = 0;
        var clock = Stopwatch.StartNew();
        var lastLog = TimeSpan.Zero;
        var backbone = _network.BackboneParameters().ToArray();

        for (int epoch = 1; epoch <= _o.MaxEpochs; epoch++)
        {
            bool freezeBackbone = epoch <= _o.FreezeBackboneEpochs;
            foreach (var p in backbone)
                p.requires_grad = !freezeBackbone;
            _network.train();
            var epochClock = Stopwatch.StartNew();
            int images = 0;
            foreach (var batch in Batches(input, epoch))
            {
                _host.CheckAlive();
                double loss;
                using (var scope = NewDisposeScope())
                {
                    double factor = schedule.Factor(step);
                    foreach (var (group, multiplier) in groups)
                        group.LearningRate = _o.LearningRate * multiplier * factor;
                    optimizer.zero_grad();
                    var logits = _network.call(batch.Images);
                    var l = _loss.Compute(logits, batch.Labels);
                    loss = l.item<float>();
                    // Checked before backward: a non-finite loss only spreads NaN into every weight, and NaN sampling
                    // offsets have crashed libtorch's grid_sample backward.
                    if (double.IsFinite(loss))
                    {
                        l.backward();
                        optimizer.step();
                    }
                }
                Native.FinalizedScalars.AfterNetworkCall(batch.Images);
                batch.Dispose();
                if (!double.IsFinite(loss))
                    throw Diverged($"the training loss became {loss} at epoch {epoch}, step {step + 1}");
                step++;
                images += batch.Count;
                var report = new SemanticSegmentationProgress
                {
                    Epoch = epoch, MaxEpochs = _o.MaxEpochs, Step = step, TotalSteps = totalSteps, Loss = loss,
                    LearningRate = _o.LearningRate * schedule.Factor(step - 1),
                    ImagesPerSecond = images / Math.Max(1e-9, epochClock.Elapsed.TotalSeconds),
                    EstimatedTimeRemaining = TimeSpan.FromSeconds(clock.Elapsed.TotalSeconds / step * (totalSteps - step)),
                };
                _o.Progress?.Report(report);
                if (clock.Elapsed - lastLog >= TimeSpan.FromSeconds(10) || step == 1)
                {
                    lastLog = clock.Elapsed;
                    _ch.Info($"epoch {epoch}/{_o.MaxEpochs} step {step}/{totalSteps} loss {loss:F4} lr {report.LearningRate:G3} " +
                        $"{report.ImagesPerSecond:F1} img/s eta {report.EstimatedTimeRemaining:hh\\:mm\\:ss}");
                }
            }
            _ch.Info($"epoch {epoch}/{_o.MaxEpochs} done in {epochClock.Elapsed.TotalSeconds:F1} s");
            if (!WeightsAreFinite())
                throw Diverged($"the weights are no longer finite after epoch {epoch} (the last loss was finite)");

            if (_o.ValidationSet is null)
                continue;
            double meanIoU = Validate(_o.ValidationSet);
            _o.Progress?.Report(new SemanticSegmentationProgress
            {
                Epoch = epoch, MaxEpochs = _o.MaxEpochs, Step = step, TotalSteps = totalSteps, ValidationMeanIoU = meanIoU,
                LearningRate = _o.LearningRate * schedule.Factor(Math.Max(0, step - 1)),
                EstimatedTimeRemaining = TimeSpan.FromSeconds(clock.Elapsed.TotalSeconds / Math.Max(1, step) * (totalSteps - step)),
            });
            _ch.Info($"epoch {epoch}/{_o.MaxEpochs} validation mIoU {meanIoU:P2}");
            if (meanIoU > bestMeanIoU)
            {
                bestMeanIoU = meanIoU;
                epochsWithoutImprovement = 0;
                DisposeAll(best);
                best = Snapshot();
            }
            else if (_o.EarlyStoppingPatience is int patience && ++epochsWithoutImprovement >= patience)
            {
                _ch.Info($"early stopping after epoch {epoch}: no better validation mIoU for {patience} epochs");
                break;
            }
        }
        foreach (var p in backbone)
            p.requires_grad = true;
        if (best is not null)
        {
            _ch.Info($"keeping the weights of the best validation epoch (mIoU {bestMeanIoU:P2})");
            _network.load_state_dict(best);
            DisposeAll(best);
        }
        if (!WeightsAreFinite())
            throw Diverged("the weights are no longer finite at the end of training");
        _network.eval();
    }

    /// <summary>Optimizer steps of a run: every epoch ends with a batch of the rows left over.</summary>
    public static int TotalSteps(int rows, int batchSize, int epochs) => (rows + batchSize - 1) / batchSize * epochs;

    bool WeightsAreFinite()
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        return _network.parameters().All(p => p.isfinite().all().item<bool>());
    }

    // No model is better than one whose every probability is NaN.
    Exception Diverged(string what) => _host.Except($"Training diverged: {what}, so no model is returned. Lower LearningRate " +
        $"(now {_o.LearningRate}; try a tenth), check ClassWeights, or look for corrupt images.");

    (optim.Optimizer, List<(TorchSharp.Modules.AdamW.ParamGroup Group, double Multiplier)>) BuildOptimizer()
    {
        // AdamW with four groups: {backbone, head} × {decayed, not decayed}; 1-D tensors are norm weights and biases.
        var specs = new List<(IEnumerable<TorchSharp.Modules.Parameter> Parameters, double Multiplier, double Decay)>();
        foreach (var (parameters, multiplier) in new[] { (_network.BackboneParameters(), 1.0), (_network.DecoderParameters(), _o.HeadLearningRateMultiplier) })
        {
            var all = parameters.ToArray();
            specs.Add((all.Where(p => p.dim() > 1).ToArray(), multiplier, _o.WeightDecay));
            specs.Add((all.Where(p => p.dim() <= 1).ToArray(), multiplier, 0.0));
        }
        var groups = specs.Where(s => s.Parameters.Any())
            .Select(s => (Group: new TorchSharp.Modules.AdamW.ParamGroup(s.Parameters, lr: _o.LearningRate * s.Multiplier, weight_decay: s.Decay), s.Multiplier))
            .ToList();
        var optimizer = optim.AdamW(groups.Select(g => g.Group), lr: _o.LearningRate);
        return (optimizer, groups);
    }

    double Validate(IDataView data)
    {
        var accumulator = new SegmentationMetricsAccumulator(_o.NumberOfClasses, _o.IgnoreIndex);
        foreach (var (_, image, label) in SegmentationRows.ImagesAndMasks(_host, data, _o.ImageColumnName, _o.LabelColumnName, _imageCheck))
            accumulator.Update(_predictor.Predict(image, _host.CheckAlive).Labels, label.Labels, label.Width, label.Height);
        _network.train();
        return accumulator.Compute().MeanIoU;
    }

    Dictionary<string, Tensor> Snapshot()
    {
        using var _ = no_grad();
        return _network.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone().DetachFromDisposeScope());
    }

    static void DisposeAll(Dictionary<string, Tensor>? tensors)
    {
        if (tensors is null) return;
        foreach (var t in tensors.Values) t.Dispose();
    }
}
