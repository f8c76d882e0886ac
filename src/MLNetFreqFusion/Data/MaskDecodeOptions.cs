namespace MLNetFreqFusion;

/// <summary>How the pixels of a mask file encode class indices.</summary>
public enum MaskFormat
{
    /// <summary>
    /// Decided per file: with a <see cref="MaskDecodeOptions.ColorMap"/>, every file is read as colours through the map;
    /// otherwise palette PNGs give their palette indices, grayscale files their gray values (8 or 16 bit), and colour
    /// files are accepted only when every pixel is gray (R = G = B), as some tools save index masks.
    /// </summary>
    Auto,

    /// <summary>Gray values are class indices (ADE20K, Cityscapes labelIds); 16-bit values are kept exactly.
    /// Colour files must have R = G = B everywhere.</summary>
    Grayscale,

    /// <summary>The palette indices of a palette PNG are class indices (PASCAL VOC), whatever the palette's colours.</summary>
    Palette,

    /// <summary>Each pixel's RGB colour is looked up in <see cref="MaskDecodeOptions.ColorMap"/> (CamVid style).</summary>
    RgbColorMap,
}

/// <summary>Options for reading segmentation masks from image files (<see cref="SegmentationMask.FromFile"/>).</summary>
/// <remarks>
/// Values are transformed in mmsegmentation's order: the file's indices (or colour-map classes), then
/// <see cref="ValueMap"/>, then <see cref="ReduceZeroLabel"/>.
/// </remarks>
public sealed class MaskDecodeOptions
{
    /// <summary>How pixels encode classes. Default: <see cref="MaskFormat.Auto"/>.</summary>
    public MaskFormat Format = MaskFormat.Auto;

    /// <summary>
    /// Colour → class index, for colour-coded masks. Required by <see cref="MaskFormat.RgbColorMap"/>; with
    /// <see cref="MaskFormat.Auto"/> its presence selects colour decoding. A colour not in the map is an error naming the
    /// file, the pixel and the colour; map "void" colours to <see cref="IgnoreIndex"/>. Default: null.
    /// </summary>
    public IReadOnlyDictionary<(byte R, byte G, byte B), ushort>? ColorMap;

    /// <summary>
    /// Value → value remapping applied to the decoded indices, e.g. {255 → 1} for binary masks saved as 0/255.
    /// Values not in the map are kept. Default: null.
    /// </summary>
    public IReadOnlyDictionary<ushort, ushort>? ValueMap;

    /// <summary>
    /// ADE20K's convention: 0 ("other") becomes <see cref="IgnoreIndex"/> and every other value moves down by one;
    /// pixels already equal to <see cref="IgnoreIndex"/> stay ignored. Default: false.
    /// </summary>
    public bool ReduceZeroLabel;

    /// <summary>The label of pixels excluded from the loss and the metrics. Default: 255.</summary>
    public ushort IgnoreIndex = 255;
}
