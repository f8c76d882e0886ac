using System.Text.Json;
using Microsoft.ML;
using MLNetFreqFusion;

namespace SemanticSegmentation.ConsoleApp;

/// <summary>The training, validation and test pairs (text columns ImagePath and MaskPath, absolute paths) and the classes.</summary>
public sealed record SampleData(IDataView Train, IDataView Validation, IDataView Test, int NumberOfClasses, string[]? ClassNames,
    MaskDecodeOptions MaskOptions, string Description)
{
    public static string DefaultRoot => Path.Combine(AppContext.BaseDirectory, "Data", "digits-seg");

    public static SampleData Load(MLContext ml, SampleOptions o)
    {
        var maskOptions = new MaskDecodeOptions { IgnoreIndex = (ushort)o.IgnoreIndex, ReduceZeroLabel = o.ReduceZeroLabel };
        IDataView train, val, test;
        string? classesJsonFolder = null;
        string description;
        switch (o.Layout)
        {
            case SampleOptions.DataLayout.Default:
            {
                // <snippet:load-csv>
                string root = DefaultRoot;   // train.csv: ImagePath,MaskPath relative to the CSV's folder
                train = ml.Data.LoadSegmentationPairsFromTextFile(Path.Combine(root, "train.csv"));
                val = ml.Data.LoadSegmentationPairsFromTextFile(Path.Combine(root, "val.csv"));
                test = ml.Data.LoadSegmentationPairsFromTextFile(Path.Combine(root, "test.csv"));
                // </snippet:load-csv>
                classesJsonFolder = root;
                description = $"built-in digits-seg subset ({root})";
                break;
            }
            case SampleOptions.DataLayout.Csv:
                train = ml.Data.LoadSegmentationPairsFromTextFile(o.TrainPath!);
                (val, test) = HeldOut(ml, ref train, o.ValPath, o.TestPath);
                classesJsonFolder = Path.GetDirectoryName(Path.GetFullPath(o.TrainPath!));
                description = $"CSV {o.TrainPath}";
                break;
            case SampleOptions.DataLayout.Folders:
                // <snippet:load-folders>
                train = ml.Data.LoadSegmentationPairsFromFolders(o.ImagesFolder!, o.MasksFolder!);
                // </snippet:load-folders>
                (val, test) = HeldOut(ml, ref train, null, null);
                description = $"folders {o.ImagesFolder} + {o.MasksFolder}";
                break;
            case SampleOptions.DataLayout.Voc:
                // <snippet:load-voc>
                train = ml.Data.LoadSegmentationPairsFromPascalVoc(o.TrainPath!, split: "train");
                val = ml.Data.LoadSegmentationPairsFromPascalVoc(o.TrainPath!, split: "val");
                // </snippet:load-voc>
                test = val;
                description = $"PASCAL VOC {o.TrainPath}";
                break;
            case SampleOptions.DataLayout.Ade20k:
                // <snippet:load-ade20k>
                train = ml.Data.LoadSegmentationPairsFromAde20k(o.TrainPath!, split: "training");
                val = ml.Data.LoadSegmentationPairsFromAde20k(o.TrainPath!, split: "validation");
                // </snippet:load-ade20k>
                test = val;
                description = $"ADE20K {o.TrainPath}";
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(o));
        }

        string[]? names = o.ClassNames;
        int? classes = o.NumberOfClasses;
        if (names is null && classesJsonFolder is not null && File.Exists(Path.Combine(classesJsonFolder, "classes.json")))
        {
            using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(classesJsonFolder, "classes.json")));
            names = json.RootElement.GetProperty("classes").EnumerateArray().Select(e => e.GetString()!).ToArray();
        }
        classes ??= names?.Length ?? o.Layout switch
        {
            SampleOptions.DataLayout.Voc => 21,
            SampleOptions.DataLayout.Ade20k => 150,
            _ => throw new ArgumentException("How many classes does the data have? Pass --classes N or --class-names a,b,c " +
                "(or put a classes.json with a \"classes\" array next to the CSV)."),
        };
        if (names is not null && names.Length != classes)
            throw new ArgumentException($"--classes {classes} but {names.Length} class names were given.");
        return new SampleData(train, val, test, classes.Value, names, maskOptions, description);
    }

    // 10% each for validation and test when the user gave only training data; seeded, so runs are repeatable.
    static (IDataView Val, IDataView Test) HeldOut(MLContext ml, ref IDataView train, string? valCsv, string? testCsv)
    {
        IDataView? val = valCsv is null ? null : ml.Data.LoadSegmentationPairsFromTextFile(valCsv);
        IDataView? test = testCsv is null ? null : ml.Data.LoadSegmentationPairsFromTextFile(testCsv);
        if (val is null)
        {
            var split = ml.Data.TrainTestSplit(train, testFraction: test is null ? 0.2 : 0.1, seed: 1);
            train = split.TrainSet;
            if (test is null)
            {
                var halves = ml.Data.TrainTestSplit(split.TestSet, testFraction: 0.5, seed: 2);
                (val, test) = (halves.TrainSet, halves.TestSet);
            }
            else
                val = split.TestSet;
        }
        else if (test is null)
        {
            var split = ml.Data.TrainTestSplit(train, testFraction: 0.1, seed: 1);
            (train, test) = (split.TrainSet, split.TestSet);
        }
        return (val, test!);
    }
}
