using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Decoders;
using Microsoft.ML;

namespace MLNetFreqFusion;

public sealed partial class SemanticSegmentationTrainer
{
    /// <summary>The default of every <see cref="Options"/> field that has one, written once.</summary>
    internal static class Defaults
    {
        public const string ImageColumnName = "Image";
        public const string LabelColumnName = "Label";
        public const string PredictedLabelColumnName = "PredictedLabel";
        public const string ScoreColumnName = "Score";
        public const int IgnoreIndex = 255;
        public const SegmentationBackbone Backbone = SegmentationBackbone.ResNet18;
        /// <summary>The short catalog overload's backbone: pretrained, and its weights arrive with a NuGet package.</summary>
        public const SegmentationBackbone ShortOverloadBackbone = SegmentationBackbone.ResNet18ImageNet;
        public const SegmentationDecoder Decoder = SegmentationDecoder.FreqFusion;
        public const int CompressRatio = 4;
        public const double DropoutRatio = 0.1;
        /// <summary>The largest side of a crop chosen from the data, and mmsegmentation's crop.</summary>
        public const int MaxCropSize = 512;
        public const int BatchSize = 8;
        public const int MaxEpochs = 20;
        public const TrainingRecipe Recipe = TrainingRecipe.Auto;
        /// <summary>Auto picks ShortRun below this many optimizer steps, MMSegmentation from there on.</summary>
        public const int ShortRunStepLimit = 10_000;
        public const double ShortRunLearningRate = 1e-3;
        public const double ShortRunHeadLearningRateMultiplier = 1;
        public const int ShortRunWarmupSteps = 50;
        public const float ShortRunFlipProbability = 0.5f;
        public const double MMSegmentationLearningRate = 6e-5;
        public const double MMSegmentationHeadLearningRateMultiplier = 10;
        public const int MMSegmentationWarmupSteps = 1500;
        public const double WeightDecay = 0.01;
        public const double PolyPower = 1.0;
        public const int SlidingWindowSize = 1024;
        public const double SlidingWindowOverlap = 1.0 / 3;
        public const int InferenceBatchSize = 8;
    }

    /// <summary>
    /// Options of <see cref="SemanticSegmentationTrainer"/>: AdamW (weight decay 0.01), poly schedule with linear
    /// warmup. The fields left null are chosen from the run (<see cref="Recipe"/>: the short-run recipe under 10 000
    /// steps, the paper's SegFormer/SegNeXt + FreqFusion recipe from there; the crop from the images' size); every field
    /// says its default. docs/training.md says when to change them.
    /// </summary>
    public sealed class Options
    {
        /// <summary>Input column of images (<see cref="Microsoft.ML.Data.MLImage"/>, any size). Default "Image".</summary>
        public string ImageColumnName = Defaults.ImageColumnName;

        /// <summary>Input column of label masks (<see cref="SegmentationMask"/>, as written by <c>LoadSegmentationMasks</c>). Default "Label".</summary>
        public string LabelColumnName = Defaults.LabelColumnName;

        /// <summary>Output column of predicted masks (<see cref="SegmentationMask"/>, the input image's size). Default "PredictedLabel".</summary>
        public string PredictedLabelColumnName = Defaults.PredictedLabelColumnName;

        /// <summary>
        /// Output column of per-class probabilities (vector of float, K × H × W, class-major, summing to 1 over the
        /// classes of each pixel), named like the per-class scores of ML.NET's other trainers. Default "Score". It is
        /// large, but costs nothing unless read: a prediction computes it only for a cursor that asks for it. Null
        /// leaves the column out (models saved before it was named Score did so by default and load unchanged).
        /// </summary>
        public string? ScoreColumnName = Defaults.ScoreColumnName;

        /// <summary>
        /// Number of classes K (at least 2). Label values must be below K or equal <see cref="IgnoreIndex"/>. Default 0:
        /// the number of <see cref="ClassNames"/> when they are given, else the number of class names the label column
        /// carries (<c>LoadSegmentationMasks(..., classNames: ...)</c>), otherwise inferred at Fit from the training labels
        /// as ML.NET's trainers infer it from a label column: the largest label value + 1, the ignore index left out. A
        /// value given here wins; a label value it does not cover is an error naming the row and file, and so is a value
        /// that differs from the number of the label column's class names when <see cref="ClassNames"/> is null.
        /// </summary>
        public int NumberOfClasses;

        /// <summary>Label value left out of the loss and the metrics. Default 255.</summary>
        public int IgnoreIndex = Defaults.IgnoreIndex;

        /// <summary>
        /// Class names, one per class, carried into predictions (the predicted column's
        /// <see cref="SegmentationAnnotations.ClassNames"/> annotation and each mask's names) and metrics. Default null: the
        /// class names of the label column (<c>LoadSegmentationMasks(..., classNames: ...)</c>) when it carries them,
        /// otherwise the indices ("0", "1", …). Names given here win over the column's.
        /// </summary>
        public IReadOnlyList<string>? ClassNames;

        /// <summary>The encoder. Default <see cref="SegmentationBackbone.ResNet18"/>.</summary>
        public SegmentationBackbone Backbone = Defaults.Backbone;

        /// <summary>The decode head. Default <see cref="SegmentationDecoder.FreqFusion"/>; the bilinear heads are the baselines.</summary>
        public SegmentationDecoder Decoder = Defaults.Decoder;

        /// <summary>
        /// Width of the decode head. Default null: 256 for the ResNets, MiT-B0/B1 and the FPN heads, 768 for MiT-B2…B5
        /// (SegFormer's widths). Smaller widths train faster on small data.
        /// </summary>
        public int? DecoderChannels;

        /// <summary>
        /// Backbone stages (0 = stride 4 … 3 = stride 32) that feed the head, increasing. Default null: all four.
        /// </summary>
        public int[]? DecoderInputStages;

        /// <summary>
        /// FreqFusion's channel compression: its compressed width is (hr + lr channels) / this ratio. Default 4, the
        /// SegNeXt/SegFormer + FreqFusion setting. Ignored by the bilinear heads.
        /// </summary>
        public int CompressRatio = Defaults.CompressRatio;

        /// <summary>Dropout probability (whole channels) before the classifier. Default 0.1.</summary>
        public double DropoutRatio = Defaults.DropoutRatio;

        /// <summary>
        /// Pretrained weights for the backbone: the path of the ML.NET ResNet-18 ONNX file for
        /// <see cref="SegmentationBackbone.ResNet18ImageNet"/> (when null, the copy that the package
        /// Microsoft.ML.DnnImageFeaturizer.ResNet18 puts in the application's build output is used), or a PyTorch checkpoint (.pt, .pth, .bin, .safetensors)
        /// of the chosen backbone. Default: none (random initialisation). docs/model.md lists the choices.
        /// </summary>
        public string? PretrainedWeightsPath;

        /// <summary>Keep batch-norm statistics frozen (eval mode) while training — the usual choice for small batches. Default false.</summary>
        public bool FreezeBatchNorm;

        /// <summary>Epochs at the start during which the backbone is not updated (only the head trains). Default 0.</summary>
        public int FreezeBackboneEpochs;

        /// <summary>
        /// Side of the square random training crops. Default null: the crop is the training images' largest height and
        /// width, each rounded up to a multiple of 32 and at most 512 — whole images when they are small, so no step
        /// spends its time on padding (a square 512 crop of a 84×64 image is 98 % padding).
        /// </summary>
        public int? CropSize;

        /// <summary>Images per optimizer step. Default 8.</summary>
        public int BatchSize = Defaults.BatchSize;

        /// <summary>Passes over the training data. Default 20.</summary>
        public int MaxEpochs = Defaults.MaxEpochs;

        /// <summary>
        /// Where the settings left null come from (<see cref="LearningRate"/>, <see cref="HeadLearningRateMultiplier"/>,
        /// <see cref="WarmupSteps"/>, <see cref="Augmentation"/>): the short-run recipe for runs under 10 000 steps, the
        /// paper's mmsegmentation recipe for longer ones. Default <see cref="TrainingRecipe.Auto"/>; set
        /// <see cref="TrainingRecipe.MMSegmentation"/> for the paper's recipe whatever the length.
        /// </summary>
        public TrainingRecipe Recipe = Defaults.Recipe;

        /// <summary>AdamW learning rate of the backbone. Default null: the recipe's (short run 1e-3, mmsegmentation 6e-5).</summary>
        public double? LearningRate;

        /// <summary>
        /// Multiplier of the learning rate for the decode head and its FreqFusion stages. Default null: the recipe's
        /// (short run 1, mmsegmentation 10).
        /// </summary>
        public double? HeadLearningRateMultiplier;

        /// <summary>AdamW weight decay; not applied to normalisation weights and biases. Default 0.01.</summary>
        public double WeightDecay = Defaults.WeightDecay;

        /// <summary>
        /// Linear warmup steps, capped at a tenth of all steps so that short runs are not all warmup. Default null: the
        /// recipe's (short run 50, mmsegmentation 1500, the paper's configurations).
        /// </summary>
        public int? WarmupSteps;

        /// <summary>Power of the polynomial decay after warmup. Default 1.0.</summary>
        public double PolyPower = Defaults.PolyPower;

        /// <summary>
        /// Per-class loss weights (length K; all 1 for none). Default null: the recipe's — for the short-run recipe
        /// √(median class frequency / class frequency) from the training labels' pixel counts, clamped to [0.1, 10]
        /// (a background covering 95 % of the pixels weighs about 0.1); none for the mmsegmentation recipe.
        /// </summary>
        public float[]? ClassWeights;

        /// <summary>Weight of an added soft Dice loss term. Default 0 (cross-entropy only).</summary>
        public double DiceLossWeight;

        /// <summary>
        /// Training augmentation (random resize, crop, flip, photometric distortion); <see cref="CropSize"/> sets the
        /// crop. Default null: the recipe's (short run: horizontal flips only; mmsegmentation: <c>new AugmentationOptions()</c>).
        /// </summary>
        public AugmentationOptions? Augmentation;

        /// <summary>Data to compute the mean IoU on after every epoch; the best epoch's weights are kept. Default: none.</summary>
        public IDataView? ValidationSet;

        /// <summary>Stop when validation mean IoU has not improved for this many epochs. Default: null (never).</summary>
        public int? EarlyStoppingPatience;

        /// <summary>Receives a report after every step and every validation, in addition to the ML.NET log. Default: none.</summary>
        public IProgress<SemanticSegmentationProgress>? Progress;

        /// <summary>Inference: images with a side longer than this are predicted by overlapping sliding windows of this size. Default 1024.</summary>
        public int SlidingWindowSize = Defaults.SlidingWindowSize;

        /// <summary>Inference: overlap between neighbouring sliding windows, as a fraction of the window. Default 1/3.</summary>
        public double SlidingWindowOverlap = Defaults.SlidingWindowOverlap;

        /// <summary>Inference: average the logits of the image and its horizontal mirror. Default false.</summary>
        public bool FlipTest;

        /// <summary>
        /// Inference: how many consecutive rows of one image size <c>Transform</c> sends through the network at once
        /// (a PredictionEngine predicts one image at a time). Lower it for large images on little memory. Default 8.
        /// </summary>
        public int InferenceBatchSize = Defaults.InferenceBatchSize;
    }
}
