using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetFreqFusion;

/// <summary>
/// The class names of a <see cref="SegmentationMask"/> column, carried in the column's annotations as ML.NET's
/// <c>KeyValues</c> annotation carries the values of a key column. <c>LoadSegmentationMasks(..., classNames: ...)</c>
/// puts them on a label column, and a trained model puts its own on its predicted-label column; the trainer and
/// <c>Evaluate</c> read them, so the names (and with them the number of classes) are written once.
/// </summary>
public static class SegmentationAnnotations
{
    /// <summary>
    /// The annotation kind that holds the class names: a vector of text, one name per class index (index 0 first).
    /// </summary>
    public const string ClassNames = "ClassNames";

    /// <summary>The class names <paramref name="column"/> carries, index by index, or null when it carries none.</summary>
    /// <param name="column">A column of a data view's schema, such as <c>data.Schema["Label"]</c>.</param>
    /// <returns>The names, or null when the column has no <see cref="ClassNames"/> annotation.</returns>
    /// <exception cref="InvalidOperationException">The column has a <see cref="ClassNames"/> annotation that is not a vector of text.</exception>
    public static IReadOnlyList<string>? GetClassNames(this DataViewSchema.Column column)
    {
        var annotation = column.Annotations.Schema.GetColumnOrNull(ClassNames);
        if (annotation is null)
            return null;
        if (annotation.Value.Type is not VectorDataViewType { ItemType: TextDataViewType })
            throw new InvalidOperationException($"Column '{column.Name}' has a '{ClassNames}' annotation of type {annotation.Value.Type}; " +
                "class names are a vector of text, one name per class.");
        VBuffer<ReadOnlyMemory<char>> names = default;
        column.Annotations.GetValue(ClassNames, ref names);
        return names.DenseValues().Select(name => name.ToString()).ToArray();
    }

    /// <summary>The annotations of a mask column with <paramref name="names"/>; none when <paramref name="names"/> is null.</summary>
    internal static DataViewSchema.Annotations Of(IReadOnlyList<string>? names)
    {
        var builder = new DataViewSchema.Annotations.Builder();
        if (names is not null)
        {
            var values = names.Select(name => name.AsMemory()).ToArray();
            ValueGetter<VBuffer<ReadOnlyMemory<char>>> getter = (ref VBuffer<ReadOnlyMemory<char>> value) =>
                new VBuffer<ReadOnlyMemory<char>>(values.Length, values).CopyTo(ref value);
            builder.Add(ClassNames, new VectorDataViewType(TextDataViewType.Instance, values.Length), getter);
        }
        return builder.ToAnnotations();
    }

    /// <summary>An estimator's shape of a mask column, with the class-names annotation when <paramref name="hasNames"/>.</summary>
    internal static SchemaShape.Column MaskColumnShape(string name, bool hasNames) =>
        new(name, SchemaShape.Column.VectorKind.Scalar, SegmentationMaskDataViewType.Instance, false, hasNames
            ? new SchemaShape(new[] { new SchemaShape.Column(ClassNames, SchemaShape.Column.VectorKind.Vector, TextDataViewType.Instance, false) })
            : null);

    /// <summary>
    /// Why <paramref name="names"/> cannot name the classes of masks whose ignore index is <paramref name="ignoreIndex"/>,
    /// or null when they can: at least two names, none null or empty, fewer than 65 535, and none at the ignore index.
    /// </summary>
    internal static string? Problem(IReadOnlyList<string> names, int ignoreIndex)
    {
        if (names.Count < 2)
            return $"classNames has {names.Count} name(s); give one per class, at least 2 (background and one class).";
        int empty = names.ToList().FindIndex(string.IsNullOrEmpty);
        if (empty >= 0)
            return $"classNames[{empty}] is {(names[empty] is null ? "null" : "empty")}; give every class a name.";
        if (names.Count >= ushort.MaxValue)
            return $"classNames has {names.Count} names; masks hold at most {ushort.MaxValue - 1} classes.";
        if (ignoreIndex >= 0 && ignoreIndex < names.Count)
            return $"classNames has {names.Count} names, so class {ignoreIndex} would be the ignore index {ignoreIndex}; " +
                "use an ignore index outside the classes (MaskDecodeOptions.IgnoreIndex), or fewer names.";
        return null;
    }
}
