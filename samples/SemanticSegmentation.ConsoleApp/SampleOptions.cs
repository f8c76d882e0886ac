using System.Globalization;
using MLNetFreqFusion;
using MLNetFreqFusion.Backbones;
using MLNetFreqFusion.Decoders;

namespace SemanticSegmentation.ConsoleApp;

/// <summary>What the sample does, from the command line. The defaults are the settings the README's numbers come from.</summary>
public sealed class SampleOptions
{
    public enum DataLayout { Default, Csv, Folders, Voc, Ade20k }

    public DataLayout Layout = DataLayout.Default;
    public string? TrainPath, ValPath, TestPath;           // CSV files, or the root of VOC / ADE20K
    public string? ImagesFolder, MasksFolder;              // --folders
    public int? NumberOfClasses;
    public string[]? ClassNames;
    public int IgnoreIndex = 255;
    public bool ReduceZeroLabel;

    // The library's defaults where it has them (null: the trainer's recipe and the crop from the images' size); the
    // rest chosen by the sweep of docs/benchmarks.md §10 to learn digits-seg in a few minutes on 2 CPU cores.
    public SegmentationBackbone Backbone = SegmentationBackbone.ResNet18ImageNet;
    public SegmentationDecoder Decoder = SegmentationDecoder.FreqFusionFpn;
    public int? DecoderChannels = 128;
    public int Epochs = 14;
    public int? CropSize;
    public int BatchSize = 8;
    public double? LearningRate;
    public double? HeadLearningRateMultiplier;
    public double DiceLossWeight;
    public float? BackgroundWeight;
    public bool? Flip;
    public int Seed = 1;
    // Every core, as PyTorch does: on an idle 2-core machine one epoch of the sample took 20 s with 2 threads and 31 s
    // with 1 (docs/benchmarks.md §11). On cores other work holds, libtorch's spinning OpenMP threads make a step many
    // times slower (1 thread 1.6–3.3 s a step, 2 threads 17–19 s, measured on 2 busy cores): --threads 1 there.
    public int Threads = Environment.ProcessorCount;

    public string OutputFolder = "output";
    public string? ModelPath;
    public List<string> PredictImages = new();
    public bool Evaluate;
    public bool Figure;
    public int PredictionsToWrite = 4;
    public bool Help;

    public const string Usage = """
        SemanticSegmentation.ConsoleApp — train, evaluate and use a FreqFusion segmentation model with ML.NET.

        With no arguments: trains on the digits-seg subset shipped in Data/digits-seg (300 train, 60 val, 100 test
        images), prints progress and the test metrics, saves output/model.zip and writes prediction PNGs to output/.

        Your own data (pick one layout):
          --csv TRAIN.csv [--val-csv VAL.csv] [--test-csv TEST.csv]
                                 CSV of pairs: columns ImagePath,MaskPath (header row), paths relative to the CSV.
                                 Without --val-csv / --test-csv, 10% of the training rows are held out for each.
          --folders IMAGES MASKS  parallel folders: image and mask share relative path and name (any extensions);
                                 10% held out for validation and 10% for test.
          --voc VOC2012          PASCAL VOC: ImageSets/Segmentation/train.txt, val.txt (val is also the test set).
          --ade20k ROOT          ADE20K ADEChallengeData2016: training / validation; implies --reduce-zero-label, 150 classes.
          --classes N            number of classes, background included (read from classes.json next to the CSV if
                                 there is one; 21 for VOC, 150 for ADE20K).
          --class-names a,b,c    class names (sets --classes).
          --ignore-index N       label value that counts nowhere (default 255).
          --reduce-zero-label    0 becomes the ignore index and every other value moves down by one (ADE20K).

        Model and training:
          --backbone NAME        ResNet18ImageNet (default; ImageNet weights from the NuGet package), ResNet18, ResNet34,
                                 ResNet50, ResNet101, MiTB0 … MiTB5
          --decoder NAME         FreqFusionFpn (default), FreqFusion, Bilinear, BilinearFpn
          --decoder-channels N   width of the decode head (default 128; the library's default is 256)
          --epochs N             passes over the training data (default 14)
          --crop N               side of square training crops (default: whole images, their sides rounded up to
                                 a multiple of 32, at most 512)
          --batch N              images per step (default 8)
          --lr X                 backbone learning rate (default: the trainer's recipe, 1e-3 for runs under 10 000 steps)
          --head-lr-multiplier X the head's learning rate as a multiple of --lr (default: the recipe's, 1 for short runs)
          --dice X               weight of an added soft Dice loss (default 0)
          --background-weight X  loss weight of class 0 relative to the others (default 1)
          --flip / --no-flip     random horizontal flips (default: on, off for the built-in digits)
          --seed N               MLContext seed (default 1)
          --threads N            libtorch CPU threads (default: every core; use 1 on a machine other work keeps busy)
          --output DIR           where model.zip and the PNGs go (default output)
          --predictions N        test images whose predictions are written as PNGs (default 4)

        Using a trained model:
          --model FILE.zip --predict IMAGE...   write index mask, colourised mask and overlay PNGs for each image
          --model FILE.zip --evaluate           print the metrics on the test data (default or given as above)
          --model FILE.zip --figure             write figure.png: input / label / prediction for test images, and the
                                                low-pass / high-pass effect of the trained FreqFusion stages
          --help                 this text
        """;

    public static SampleOptions Parse(string[] args)
    {
        var o = new SampleOptions();
        for (int i = 0; i < args.Length; i++)
        {
            string arg = args[i];
            string Next()
            {
                if (i + 1 >= args.Length || args[i + 1].StartsWith("--", StringComparison.Ordinal))
                    throw new ArgumentException($"{arg} needs a value. Run with --help for the options.");
                return args[++i];
            }
            int Int() => int.TryParse(Next(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v > 0
                ? v : throw new ArgumentException($"{arg} needs a positive whole number; got '{args[i]}'.");
            switch (arg)
            {
                case "--help" or "-h" or "/?": o.Help = true; break;
                case "--csv": o.Layout = DataLayout.Csv; o.TrainPath = Next(); break;
                case "--val-csv": o.ValPath = Next(); break;
                case "--test-csv": o.TestPath = Next(); break;
                case "--folders": o.Layout = DataLayout.Folders; o.ImagesFolder = Next(); o.MasksFolder = Next(); break;
                case "--voc": o.Layout = DataLayout.Voc; o.TrainPath = Next(); break;
                case "--ade20k": o.Layout = DataLayout.Ade20k; o.TrainPath = Next(); o.ReduceZeroLabel = true; break;
                case "--classes": o.NumberOfClasses = Int(); break;
                case "--class-names":
                    o.ClassNames = Next().Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
                    o.NumberOfClasses = o.ClassNames.Length;
                    break;
                case "--ignore-index":
                    o.IgnoreIndex = int.TryParse(Next(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int ignore) && ignore is >= 0 and <= ushort.MaxValue
                        ? ignore : throw new ArgumentException($"--ignore-index needs a value in 0..65535; got '{args[i]}'.");
                    break;
                case "--reduce-zero-label": o.ReduceZeroLabel = true; break;
                case "--backbone": o.Backbone = EnumValue<SegmentationBackbone>(arg, Next()); break;
                case "--decoder": o.Decoder = EnumValue<SegmentationDecoder>(arg, Next()); break;
                case "--decoder-channels": o.DecoderChannels = Int(); break;
                case "--epochs": o.Epochs = Int(); break;
                case "--crop": o.CropSize = Int(); break;
                case "--batch": o.BatchSize = Int(); break;
                case "--lr":
                    o.LearningRate = double.TryParse(Next(), NumberStyles.Float, CultureInfo.InvariantCulture, out double lr) && lr > 0
                        ? lr : throw new ArgumentException($"--lr needs a positive number such as 2e-4; got '{args[i]}'.");
                    break;
                case "--head-lr-multiplier":
                    o.HeadLearningRateMultiplier = double.TryParse(Next(), NumberStyles.Float, CultureInfo.InvariantCulture, out double m) && m > 0
                        ? m : throw new ArgumentException($"--head-lr-multiplier needs a positive number; got '{args[i]}'.");
                    break;
                case "--dice":
                    o.DiceLossWeight = double.TryParse(Next(), NumberStyles.Float, CultureInfo.InvariantCulture, out double dice) && dice >= 0
                        ? dice : throw new ArgumentException($"--dice needs a number ≥ 0; got '{args[i]}'.");
                    break;
                case "--background-weight":
                    o.BackgroundWeight = float.TryParse(Next(), NumberStyles.Float, CultureInfo.InvariantCulture, out float bw) && bw > 0
                        ? bw : throw new ArgumentException($"--background-weight needs a positive number; got '{args[i]}'.");
                    break;
                case "--flip": o.Flip = true; break;
                case "--no-flip": o.Flip = false; break;
                case "--seed": o.Seed = Int(); break;
                case "--threads": o.Threads = Int(); break;
                case "--output": o.OutputFolder = Next(); break;
                case "--predictions": o.PredictionsToWrite = Int(); break;
                case "--model": o.ModelPath = Next(); break;
                case "--predict":
                    while (i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal))
                        o.PredictImages.Add(args[++i]);
                    if (o.PredictImages.Count == 0)
                        throw new ArgumentException("--predict needs at least one image path.");
                    break;
                case "--evaluate": o.Evaluate = true; break;
                case "--figure": o.Figure = true; break;
                default: throw new ArgumentException($"Unknown argument '{arg}'. Run with --help for the options.");
            }
        }
        if ((o.PredictImages.Count > 0 || o.Evaluate || o.Figure) && o.ModelPath is null)
            throw new ArgumentException("--predict, --evaluate and --figure use a trained model: add --model path/to/model.zip.");
        if (o.Layout != DataLayout.Csv && (o.ValPath is not null || o.TestPath is not null))
            throw new ArgumentException("--val-csv and --test-csv go with --csv.");
        return o;
    }

    static T EnumValue<T>(string arg, string value) where T : struct, Enum
        => Enum.TryParse<T>(value, ignoreCase: true, out var v) && Enum.IsDefined(v)
            ? v : throw new ArgumentException($"{arg} '{value}' is not one of: {string.Join(", ", Enum.GetNames<T>())}.");
}
