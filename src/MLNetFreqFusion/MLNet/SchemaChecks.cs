using Microsoft.ML;
using Microsoft.ML.Runtime;
using Microsoft.ML.Transforms.Image;

namespace MLNetFreqFusion;

/// <summary>Schema errors that name the column, what was expected, what was found and how to get it right.</summary>
internal static class SchemaChecks
{
    public static void CheckImageColumn(IExceptionContext ectx, SchemaShape schema, string name, string? where = null)
    {
        if (!schema.TryFindColumn(name, out var column))
            throw ectx.ExceptSchemaMismatch(nameof(schema), "image", name,
                $"an image column of type {new ImageDataViewType()} (add mlContext.Transforms.LoadImages(\"{name}\", imageFolder, \"ImagePath\") to the pipeline)",
                Where(where) + "no such column");
        if (column.Kind != SchemaShape.Column.VectorKind.Scalar || column.ItemType is not ImageDataViewType)
            throw ectx.ExceptSchemaMismatch(nameof(schema), "image", name, new ImageDataViewType().ToString(), Where(where) + column.GetTypeString());
    }

    public static void CheckMaskColumn(IExceptionContext ectx, SchemaShape schema, string name, string role, string? where = null)
    {
        if (!schema.TryFindColumn(name, out var column))
            throw ectx.ExceptSchemaMismatch(nameof(schema), role, name,
                $"a {SegmentationMaskDataViewType.Instance} column (add mlContext.Transforms.LoadSegmentationMasks(\"{name}\", imageFolder, \"MaskPath\") to the pipeline)",
                Where(where) + "no such column");
        if (column.Kind != SchemaShape.Column.VectorKind.Scalar || column.ItemType is not SegmentationMaskDataViewType)
            throw ectx.ExceptSchemaMismatch(nameof(schema), role, name,
                $"{SegmentationMaskDataViewType.Instance} (masks are read with mlContext.Transforms.LoadSegmentationMasks, not LoadImages)",
                Where(where) + column.GetTypeString());
    }

    static string Where(string? where) => where is null ? "" : where + ": ";
}
