using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace MLNetFreqFusion;

/// <summary>
/// Marks an <see cref="MLImage"/> member of a PredictionEngine input class as an image of any size, the type
/// <c>LoadImages</c> produces and the segmenter reads. Use it instead of ML.NET's <c>[ImageType(height, width)]</c>,
/// which needs a fixed size: its size-less form asks for a 0 × 0 image type and fails with
/// "Must be positive. (Parameter 'height')" (ML.NET 5.0).
/// </summary>
/// <example><code>
/// public sealed class ModelInput
/// {
///     [AnySizeImageType]
///     public MLImage Image { get; set; }
/// }
/// </code></example>
[AttributeUsage(AttributeTargets.Field | AttributeTargets.Property)]
public sealed class AnySizeImageTypeAttribute : DataViewTypeAttribute
{
    /// <inheritdoc />
    public override bool Equals(DataViewTypeAttribute other) => other is AnySizeImageTypeAttribute;

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is AnySizeImageTypeAttribute;

    /// <inheritdoc />
    public override int GetHashCode() => typeof(AnySizeImageTypeAttribute).GetHashCode();

    /// <inheritdoc />
    public override void Register() => DataViewTypeManager.Register(new ImageDataViewType(), typeof(MLImage), this);
}
