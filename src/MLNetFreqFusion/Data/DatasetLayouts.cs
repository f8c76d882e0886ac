using System.Text;

namespace MLNetFreqFusion.Data;

/// <summary>
/// Finds the (image, mask) pairs of the data set layouts users already have. Every path returned is absolute, and a
/// file without its partner is an error listing the files, never a silently dropped row.
/// </summary>
internal static class DatasetLayouts
{
    internal static readonly string[] ImageExtensions = [".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"];
    const int MaxListed = 20;

    /// <summary>A CSV/TSV whose rows name an image and a mask, relative to the text file's folder or absolute.</summary>
    internal static List<ImageMaskPair> FromTextFile(string path, char separator, bool hasHeader)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"Pair list '{path}' does not exist.", path);
        var root = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var lines = File.ReadAllLines(path);
        int imageColumn = 0, maskColumn = 1, first = 0;
        if (hasHeader)
        {
            if (lines.Length == 0)
                throw new InvalidDataException($"Pair list '{path}' is empty; expected a header line.");
            var header = Split(lines[0], separator);
            imageColumn = Array.FindIndex(header, h => h.Equals("ImagePath", StringComparison.OrdinalIgnoreCase));
            maskColumn = Array.FindIndex(header, h => h.Equals("MaskPath", StringComparison.OrdinalIgnoreCase));
            if (imageColumn < 0 || maskColumn < 0)
            {
                if (header.Length < 2)
                    throw new InvalidDataException($"Pair list '{path}': the header '{lines[0]}' has fewer than two columns for separator '{separator}'.");
                (imageColumn, maskColumn) = (0, 1);
            }
            first = 1;
        }

        var pairs = new List<ImageMaskPair>();
        var missing = new List<string>();
        for (int i = first; i < lines.Length; i++)
        {
            if (string.IsNullOrWhiteSpace(lines[i]))
                continue;
            var cells = Split(lines[i], separator);
            if (cells.Length <= Math.Max(imageColumn, maskColumn))
                throw new InvalidDataException($"Pair list '{path}', line {i + 1}: expected an image and a mask column separated by '{separator}', got '{lines[i]}'.");
            var image = Path.GetFullPath(cells[imageColumn], root);
            var mask = Path.GetFullPath(cells[maskColumn], root);
            if (!File.Exists(image))
                missing.Add($"line {i + 1}: image {image}");
            if (!File.Exists(mask))
                missing.Add($"line {i + 1}: mask {mask}");
            pairs.Add(new ImageMaskPair { ImagePath = image, MaskPath = mask });
        }
        if (missing.Count > 0)
            throw new FileNotFoundException($"Pair list '{path}' names {missing.Count} missing file(s) (relative paths are read from '{root}'):{List(missing)}");
        if (pairs.Count == 0)
            throw new InvalidDataException($"Pair list '{path}' has no rows.");
        return pairs;
    }

    /// <summary>
    /// Two folders (searched recursively) whose files pair by relative folder and file name without extension, after
    /// removing the optional name suffixes (Cityscapes: "_leftImg8bit" and "_gtFine_labelIds"). With a suffix, files not
    /// ending in it are not part of the data set (Cityscapes keeps colour and instance masks beside the label masks).
    /// </summary>
    internal static List<ImageMaskPair> FromFolders(string imageFolder, string maskFolder, string imageNameSuffix = "", string maskNameSuffix = "")
    {
        var images = Index(imageFolder, imageNameSuffix, "image");
        var masks = Index(maskFolder, maskNameSuffix, "mask");
        var lonelyImages = images.Keys.Where(k => !masks.ContainsKey(k)).Select(k => images[k]).ToList();
        var lonelyMasks = masks.Keys.Where(k => !images.ContainsKey(k)).Select(k => masks[k]).ToList();
        if (lonelyImages.Count > 0 || lonelyMasks.Count > 0)
        {
            var message = new StringBuilder($"Images in '{imageFolder}' and masks in '{maskFolder}' do not pair up by file name");
            if (imageNameSuffix.Length > 0 || maskNameSuffix.Length > 0)
                message.Append($" (after removing the suffixes '{imageNameSuffix}' and '{maskNameSuffix}')");
            message.Append('.');
            if (lonelyImages.Count > 0)
                message.Append($" {lonelyImages.Count} image(s) without a mask:{List(lonelyImages)}");
            if (lonelyMasks.Count > 0)
                message.Append($"{(lonelyImages.Count > 0 ? Environment.NewLine : " ")}{lonelyMasks.Count} mask(s) without an image:{List(lonelyMasks)}");
            throw new InvalidDataException(message.ToString());
        }
        if (images.Count == 0)
            throw new InvalidDataException($"No image files ({string.Join(", ", ImageExtensions)}) found in '{imageFolder}'.");
        return images.Keys.Order(StringComparer.Ordinal)
            .Select(k => new ImageMaskPair { ImagePath = images[k], MaskPath = masks[k] })
            .ToList();
    }

    /// <summary>
    /// PASCAL VOC: <c>ImageSets/Segmentation/{split}.txt</c> lists ids; images are <c>JPEGImages/{id}.jpg</c>, masks
    /// <c>SegmentationClass/{id}.png</c> (palette PNGs).
    /// </summary>
    internal static List<ImageMaskPair> FromPascalVoc(string root, string split)
    {
        ArgumentNullException.ThrowIfNull(root);
        ArgumentException.ThrowIfNullOrWhiteSpace(split);
        root = Path.GetFullPath(root);
        var list = Path.Combine(root, "ImageSets", "Segmentation", split + ".txt");
        if (!File.Exists(list))
        {
            var hint = Directory.Exists(Path.Combine(root, "VOC2012"))
                ? $" '{root}' looks like VOCdevkit; pass '{Path.Combine(root, "VOC2012")}'."
                : " Pass the VOC2012 folder, which holds JPEGImages, SegmentationClass and ImageSets.";
            throw new FileNotFoundException($"PASCAL VOC split list '{list}' does not exist.{hint}", list);
        }
        var pairs = new List<ImageMaskPair>();
        var missing = new List<string>();
        foreach (var line in File.ReadLines(list))
        {
            var id = line.Trim();
            if (id.Length == 0)
                continue;
            var image = Path.Combine(root, "JPEGImages", id + ".jpg");
            var mask = Path.Combine(root, "SegmentationClass", id + ".png");
            if (!File.Exists(image))
                missing.Add(image);
            if (!File.Exists(mask))
                missing.Add(mask);
            pairs.Add(new ImageMaskPair { ImagePath = image, MaskPath = mask });
        }
        if (missing.Count > 0)
            throw new FileNotFoundException($"PASCAL VOC split '{list}' names {missing.Count} missing file(s):{List(missing)}");
        if (pairs.Count == 0)
            throw new InvalidDataException($"PASCAL VOC split list '{list}' is empty.");
        return pairs;
    }

    /// <summary>ADE20K (ADEChallengeData2016): <c>images/{split}/*.jpg</c> with <c>annotations/{split}/*.png</c>.</summary>
    internal static List<ImageMaskPair> FromAde20k(string root, string split)
    {
        ArgumentNullException.ThrowIfNull(root);
        ArgumentException.ThrowIfNullOrWhiteSpace(split);
        var folder = split.ToLowerInvariant() switch
        {
            "train" or "training" => "training",
            "val" or "validation" => "validation",
            _ => throw new ArgumentException($"ADE20K splits are 'training' and 'validation' (or 'train' and 'val'); got '{split}'.", nameof(split)),
        };
        root = Path.GetFullPath(root);
        var images = Path.Combine(root, "images", folder);
        var masks = Path.Combine(root, "annotations", folder);
        if (!Directory.Exists(images) || !Directory.Exists(masks))
            throw new DirectoryNotFoundException($"'{root}' is not an ADE20K root: expected '{images}' and '{masks}'. Pass the ADEChallengeData2016 folder.");
        return FromFolders(images, masks);
    }

    static Dictionary<string, string> Index(string folder, string suffix, string what)
    {
        ArgumentNullException.ThrowIfNull(folder);
        ArgumentNullException.ThrowIfNull(suffix);
        var full = Path.GetFullPath(folder);
        if (!Directory.Exists(full))
            throw new DirectoryNotFoundException($"The {what} folder '{folder}' does not exist.");
        var index = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(full, "*", SearchOption.AllDirectories))
        {
            if (!ImageExtensions.Contains(Path.GetExtension(file), StringComparer.OrdinalIgnoreCase))
                continue;
            var relative = Path.GetRelativePath(full, file);
            var stem = Path.Combine(Path.GetDirectoryName(relative)!, Path.GetFileNameWithoutExtension(relative));
            if (suffix.Length > 0)
            {
                if (!stem.EndsWith(suffix, StringComparison.Ordinal))
                    continue;
                stem = stem[..^suffix.Length];
            }
            if (!index.TryAdd(stem, file))
                throw new InvalidDataException($"Two {what} files share the name '{stem}': '{index[stem]}' and '{file}'. Keep one per name.");
        }
        return index;
    }

    static string List(List<string> items)
    {
        var text = new StringBuilder();
        foreach (var item in items.Take(MaxListed))
            text.Append(Environment.NewLine).Append("  ").Append(item);
        if (items.Count > MaxListed)
            text.Append(Environment.NewLine).Append($"  ... and {items.Count - MaxListed} more");
        return text.ToString();
    }

    static string[] Split(string line, char separator) =>
        line.Split(separator).Select(c => c.Trim().Trim('"')).ToArray();
}
