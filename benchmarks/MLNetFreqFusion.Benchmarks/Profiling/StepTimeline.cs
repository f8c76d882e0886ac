using System.Diagnostics;
using MLNetFreqFusion.Operators;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Benchmarks.Profiling;

/// <summary>
/// Records when each timed section of one training step begins and ends, in the forward pass (directly) and in the
/// backward pass (through identity autograd nodes: the node on a section's output runs when the output's gradient is
/// complete, so the section's backward starts; the nodes on its inputs run once its backward has produced their
/// gradients). Times are then attributed exclusively: a nested section's time is not counted in its parent's.
/// </summary>
sealed class StepTimeline : IOperatorRecorder
{
    enum Kind { ForwardBegin, ForwardEnd, BackwardStart, BackwardEnd }

    readonly record struct Event(long Ticks, int Id, Kind Kind);

    readonly List<Event> _events = new();
    readonly List<string> _names = new();

    public int Begin(string section)
    {
        _names.Add(section);
        int id = _names.Count - 1;
        _events.Add(new Event(Stopwatch.GetTimestamp(), id, Kind.ForwardBegin));
        return id;
    }

    // Inputs without a gradient (the images) get no node: their section's backward then ends with the pass.
    public Tensor Input(int id, Tensor input) => input.requires_grad ? Marker.apply(input, this, id, Kind.BackwardEnd) : input;

    public Tensor End(int id, Tensor output)
    {
        var marked = output.requires_grad ? Marker.apply(output, this, id, Kind.BackwardStart) : output;
        _events.Add(new Event(Stopwatch.GetTimestamp(), id, Kind.ForwardEnd));
        return marked;
    }

    void Backward(int id, Kind kind) => _events.Add(new Event(Stopwatch.GetTimestamp(), id, kind));

    /// <summary>Exclusive forward seconds per section name between <paramref name="from"/> and <paramref name="to"/>; the rest goes to <paramref name="outside"/>.</summary>
    public Dictionary<string, double> Forward(long from, long to, string outside)
    {
        var events = _events.Where(e => e.Kind is Kind.ForwardBegin or Kind.ForwardEnd && e.Ticks >= from && e.Ticks <= to)
            .Select(e => (e.Ticks, e.Id, Push: e.Kind == Kind.ForwardBegin));
        return Attribute(events, from, to, outside);
    }

    /// <summary>
    /// Exclusive backward seconds per section name. A section's backward starts when its last output gradient is
    /// complete and ends when its first input gradient is: with several outputs (the backbone's feature maps) the
    /// autograd engine cannot start it earlier, and its input gradients are all produced by its own last node.
    /// </summary>
    public Dictionary<string, double> Backward(long from, long to, string outside)
    {
        var inRange = _events.Where(e => e.Ticks >= from && e.Ticks <= to).ToList();
        var start = inRange.Where(e => e.Kind == Kind.BackwardStart).GroupBy(e => e.Id).ToDictionary(g => g.Key, g => g.Max(e => e.Ticks));
        var end = inRange.Where(e => e.Kind == Kind.BackwardEnd).GroupBy(e => e.Id).ToDictionary(g => g.Key, g => g.Min(e => e.Ticks));
        var events = start.Select(kv => (Ticks: kv.Value, Id: kv.Key, Push: true))
            .Concat(end.Where(kv => start.ContainsKey(kv.Key)).Select(kv => (Ticks: kv.Value, Id: kv.Key, Push: false)))
            .OrderBy(e => e.Ticks).ThenBy(e => e.Push ? 1 : 0);
        return Attribute(events, from, to, outside);
    }

    Dictionary<string, double> Attribute(IEnumerable<(long Ticks, int Id, bool Push)> events, long from, long to, string outside)
    {
        var seconds = new Dictionary<string, double>();
        var open = new List<int>();
        long last = from;
        void Charge(long until)
        {
            string name = open.Count == 0 ? outside : _names[open[^1]];
            seconds[name] = seconds.GetValueOrDefault(name) + (until - last) / (double)Stopwatch.Frequency;
            last = until;
        }
        foreach (var (ticks, id, push) in events)
        {
            Charge(ticks);
            if (push)
                open.Add(id);
            else
                open.Remove(id);
        }
        Charge(to);
        return seconds;
    }

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
