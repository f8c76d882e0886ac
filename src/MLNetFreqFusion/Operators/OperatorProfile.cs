using static TorchSharp.torch;

namespace MLNetFreqFusion.Operators;

/// <summary>
/// What a profiler needs to time one operator inside a forward and backward pass: when its forward starts and ends,
/// and identity autograd nodes on its inputs and output whose backward calls mark when its backward ends and starts.
/// </summary>
internal interface IOperatorRecorder
{
    /// <summary>Called before the operator runs; returns the section's id.</summary>
    int Begin(string section);

    /// <summary>Returns <paramref name="input"/> behind a node whose backward ends the section's backward.</summary>
    Tensor Input(int id, Tensor input);

    /// <summary>Called after the operator ran; returns <paramref name="output"/> behind a node whose backward starts the section's backward.</summary>
    Tensor End(int id, Tensor output);
}

/// <summary>
/// Opt-in per-operator timing for the benchmark profile (docs/benchmarks.md): the functional operators that no module
/// hook can see (CARAFE, kernel normalisation, local similarity, grid sampling) run through <c>Section</c>,
/// which calls the operator directly unless a recorder is installed on the calling thread.
/// </summary>
internal static class OperatorProfile
{
    [ThreadStatic]
    static IOperatorRecorder? t_recorder;

    /// <summary>The recorder of the calling thread; null (the default) times nothing.</summary>
    public static IOperatorRecorder? Recorder
    {
        get => t_recorder;
        set => t_recorder = value;
    }

    static readonly System.Runtime.CompilerServices.ConditionalWeakTable<object, string> s_moduleSections = new();

    /// <summary>
    /// Names the section a module's hooks time it in, for operators that compute a module without calling it
    /// (<see cref="SpatialConvolution"/>), whose time the module's hooks would otherwise not see.
    /// </summary>
    public static void NameModuleSection(object module, string section) => s_moduleSections.AddOrUpdate(module, section);

    /// <summary>The section named for <paramref name="module"/>, or null when it has none.</summary>
    public static string? SectionOf(object module) => s_moduleSections.TryGetValue(module, out var section) ? section : null;

    public static Tensor Section(string name, Tensor a, Func<Tensor, Tensor> op)
    {
        var recorder = t_recorder;
        if (recorder is null)
            return op(a);
        int id = recorder.Begin(name);
        return recorder.End(id, op(recorder.Input(id, a)));
    }

    public static Tensor Section(string name, Tensor a, Tensor b, Func<Tensor, Tensor, Tensor> op)
    {
        var recorder = t_recorder;
        if (recorder is null)
            return op(a, b);
        int id = recorder.Begin(name);
        return recorder.End(id, op(recorder.Input(id, a), recorder.Input(id, b)));
    }
}
