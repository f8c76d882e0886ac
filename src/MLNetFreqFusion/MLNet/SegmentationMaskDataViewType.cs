using System.Runtime.CompilerServices;
using Microsoft.ML.Data;

namespace MLNetFreqFusion;

/// <summary>
/// The ML.NET column type of <see cref="SegmentationMask"/> values: label columns written by
/// <c>LoadSegmentationMasks</c> and the <c>PredictedLabel</c> column of a segmentation model. Registered with ML.NET's
/// type system when the library loads, so <see cref="SegmentationMask"/> fields work in POCOs for
/// <c>PredictionEngine</c> and <c>LoadFromEnumerable</c> with or without <see cref="SegmentationMaskTypeAttribute"/>.
/// </summary>
public sealed class SegmentationMaskDataViewType : StructuredDataViewType
{
    /// <summary>The one instance: masks of any size share the type, like ML.NET's size-less image type.</summary>
    public static SegmentationMaskDataViewType Instance { get; } = new();

    SegmentationMaskDataViewType() : base(typeof(SegmentationMask)) { }

    /// <inheritdoc />
    public override bool Equals(DataViewType? other) => other is SegmentationMaskDataViewType;

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is SegmentationMaskDataViewType;

    /// <inheritdoc />
    public override int GetHashCode() => typeof(SegmentationMaskDataViewType).GetHashCode();

    /// <inheritdoc />
    public override string ToString() => nameof(SegmentationMask);

    static int _registered;

    /// <summary>Registers the type once per process; every entry point of the library calls it.</summary>
    internal static void EnsureRegistered()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 0)
            DataViewTypeManager.Register(Instance, typeof(SegmentationMask));
    }

#pragma warning disable CA2255 // a library module initializer is the point: the type must be known before any POCO is read
    [ModuleInitializer]
    internal static void RegisterOnLoad() => EnsureRegistered();
#pragma warning restore CA2255
}

/// <summary>
/// Marks a <see cref="SegmentationMask"/> field or property of a POCO as a segmentation-mask column, the way
/// <c>[ImageType]</c> marks images. Optional: the type is also recognised without it.
/// </summary>
[AttributeUsage(AttributeTargets.Field | AttributeTargets.Property)]
public sealed class SegmentationMaskTypeAttribute : DataViewTypeAttribute
{
    /// <inheritdoc />
    public override bool Equals(DataViewTypeAttribute other) => other is SegmentationMaskTypeAttribute;

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is SegmentationMaskTypeAttribute;

    /// <inheritdoc />
    public override int GetHashCode() => typeof(SegmentationMaskTypeAttribute).GetHashCode();

    /// <inheritdoc />
    public override void Register()
    {
        SegmentationMaskDataViewType.EnsureRegistered();
        DataViewTypeManager.Register(SegmentationMaskDataViewType.Instance, typeof(SegmentationMask), this);
    }
}
