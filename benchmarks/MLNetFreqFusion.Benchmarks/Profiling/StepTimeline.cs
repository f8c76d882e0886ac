using System.Diagnostics;
using MLNetFreqFusion.Operators;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Benchmarks.Profiling;

/// <summary>
/// Records when each timed section of one training step begins and ends, in the forward pass (directly) and in the
/// backward pass (through identity autograd nodes: the node on a section's output runs when the output's gradient is
/// complete, so the section's backward starts; the nodes on its inputs run once its backward has produced their
/// gradients). Times, and the process's minor page faults in them, are then attributed exclusively: a nested section's
/// time is not counted in its parent's. Faults are counted process-wide, so those of libtorch's worker threads count in
/// the section that ran them (docs/benchmarks.md §12, §16).
/// </summary>
sealed class StepTimeline : IOperatorRecorder
{
    enum Kind { ForwardBegin, ForwardEnd, BackwardStart, BackwardEnd }

    /// <summary>A moment of the step: the clock and the process's fault counter.</summary>
    public readonly record struct Mark(long Ticks, long Faults)
    {
        public static Mark Now() => new(Stopwatch.GetTimestamp(), MinorPageFaults());
    }

    readonly record struct Event(Mark At, int Id, Kind Kind);

    /// <summary>A section's exclusive seconds and minor page faults.</summary>
    public readonly record struct Cost(double Seconds, long Faults);

    readonly List<Event> _events = new();
    readonly List<string> _names = new();

    public int Begin(string section)
    {
        _names.Add(section);
        int id = _names.Count - 1;
        _events.Add(new Event(Mark.Now(), id, Kind.ForwardBegin));
        return id;
    }

    // Inputs without a gradient (the images) get no node: their section's backward then ends with the pass.
    public Tensor Input(int id, Tensor input) => input.requires_grad ? Marker.apply(input, this, id, Kind.BackwardEnd) : input;

    public Tensor End(int id, Tensor output)
    {
        var marked = output.requires_grad ? Marker.apply(output, this, id, Kind.BackwardStart) : output;
        _events.Add(new Event(Mark.Now(), id, Kind.ForwardEnd));
        return marked;
    }

    void Backward(int id, Kind kind) => _events.Add(new Event(Mark.Now(), id, kind));

    /// <summary>Exclusive forward cost per section name between <paramref name="from"/> and <paramref name="to"/>; the rest goes to <paramref name="outside"/>.</summary>
    public Dictionary<string, Cost> Forward(Mark from, Mark to, string outside)
    {
        var events = _events.Where(e => e.Kind is Kind.ForwardBegin or Kind.ForwardEnd && e.At.Ticks >= from.Ticks && e.At.Ticks <= to.Ticks)
            .Select(e => (e.At, e.Id, Push: e.Kind == Kind.ForwardBegin));
        return Attribute(events, from, to, outside);
    }

    /// <summary>
    /// Exclusive backward cost per section name. A section's backward starts when its last output gradient is
    /// complete and ends when its first input gradient is: with several outputs (the backbone's feature maps) the
    /// autograd engine cannot start it earlier, and its input gradients are all produced by its own last node.
    /// </summary>
    public Dictionary<string, Cost> Backward(Mark from, Mark to, string outside)
    {
        var inRange = _events.Where(e => e.At.Ticks >= from.Ticks && e.At.Ticks <= to.Ticks).ToList();
        var start = inRange.Where(e => e.Kind == Kind.BackwardStart).GroupBy(e => e.Id).ToDictionary(g => g.Key, g => g.MaxBy(e => e.At.Ticks).At);
        var end = inRange.Where(e => e.Kind == Kind.BackwardEnd).GroupBy(e => e.Id).ToDictionary(g => g.Key, g => g.MinBy(e => e.At.Ticks).At);
        var events = start.Select(kv => (At: kv.Value, Id: kv.Key, Push: true))
            .Concat(end.Where(kv => start.ContainsKey(kv.Key)).Select(kv => (At: kv.Value, Id: kv.Key, Push: false)))
            .OrderBy(e => e.At.Ticks).ThenBy(e => e.Push ? 1 : 0);
        return Attribute(events, from, to, outside);
    }

    Dictionary<string, Cost> Attribute(IEnumerable<(Mark At, int Id, bool Push)> events, Mark from, Mark to, string outside)
    {
        var costs = new Dictionary<string, Cost>();
        var open = new List<int>();
        var last = from;
        void Charge(Mark until)
        {
            string name = open.Count == 0 ? outside : _names[open[^1]];
            var cost = costs.GetValueOrDefault(name);
            costs[name] = new Cost(cost.Seconds + (until.Ticks - last.Ticks) / (double)Stopwatch.Frequency, cost.Faults + until.Faults - last.Faults);
            last = until;
        }
        foreach (var (at, id, push) in events)
        {
            Charge(at);
            if (push)
                open.Add(id);
            else
                open.Remove(id);
        }
        Charge(to);
        return costs;
    }

    /// <summary>
    /// The process's minor page faults so far: on the CI host's VM each costs microseconds, so a step that maps fresh
    /// memory for its large tensors pays for it in faults (docs/benchmarks.md §12). From getrusage, one system call,
    /// cheap enough for every event.
    /// </summary>
    public static long MinorPageFaults()
    {
        Span<long> usage = stackalloc long[18]; // struct rusage: two timevals (longs 0–3), maxrss, ixrss, idrss, isrss, then minflt
        if (getrusage(0, ref usage[0]) != 0)
            throw new InvalidOperationException("getrusage(RUSAGE_SELF) failed.");
        return usage[8];
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    static extern int getrusage(int who, ref long usage);

    /// <summary>An identity node whose backward tells the timeline when a gradient passed.</summary>
    sealed class Marker : autograd.SingleTensorFunction<Marker>
    {
        public override string Name => "ProfileMarker";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            ctx.save_data("timeline", vars[1]);
            ctx.save_data("id", vars[2]);
            ctx.save_data("kind", vars[3]);
            return ((Tensor)vars[0]).alias();
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            ((StepTimeline)ctx.get_data("timeline")).Backward((int)ctx.get_data("id"), (Kind)ctx.get_data("kind"));
            return new List<Tensor> { gradOutput.alias(), null!, null!, null! };
        }
    }
}
