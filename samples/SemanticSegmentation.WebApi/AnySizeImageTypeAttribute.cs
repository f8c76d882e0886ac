using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace SemanticSegmentation.WebApi;

/// <summary>
/// Marks an <see cref="MLImage"/> member of a POCO as an image column of any size. ML.NET 5.0.1 recognises an
/// MLImage member only with an attribute, and its size-less <c>[ImageType]</c> (no height and width) fails with
/// "Must be positive. (Parameter 'height')" because it asks for a 0 × 0 image type; this one registers ML.NET's
/// size-less <see cref="ImageDataViewType"/>, the type <c>LoadImages</c> produces and the segmenter reads.
/// </summary>
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
