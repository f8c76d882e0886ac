using MLNetFreqFusion.Fusion;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Operators;

/// <summary>
/// CARAFE content-aware reassembly (Wang et al., ICCV 2019) as FreqFusion uses it: output pixel (y, x) is the
/// weighted sum of the k×k window of <c>x</c> centred on source pixel (y / up, x / up), with weights
/// <c>kernels[:, g·k² + t, y, x]</c> for the channel group g. Channels are split into G equal groups, G = kernels
/// channels / k² (mmcv's <c>group_size</c>; FreqFusion's <c>up_group</c>).
/// </summary>
internal static class Carafe
{
    /// <summary>
    /// The memory-lean formulation, with its own backward pass that saves only the two inputs. In float32 on AVX2 hosts,
    /// for maps at least 8 pixels wide and up factors 1 and 2, forward and backward run as <see cref="CarafeLoops"/>;
    /// otherwise (float64, narrower maps, other CPUs) as ATen operations: without up-sampling it
    /// accumulates over the k² window offsets, each a view of the padded input. When up-sampling, it works on bands of
    /// source rows and channels: it gathers each pixel's k×k window channels-last, multiplies it by the pixel's up²
    /// sub-pixel kernels in one batched matrix product and writes the products straight into the output. Extra memory
    /// is the padded input and one block's windows (at most <see cref="GemmBlockBytes"/> unless a single channel's row
    /// needs more), never the k²·up²-times larger unfolded tensor.
    /// </summary>
    /// <param name="x">Source features [B, C, h, w].</param>
    /// <param name="kernels">Normalised reassembly kernels [B, G·k², up·h, up·w].</param>
    /// <param name="kernelSize">Odd window size k.</param>
    /// <param name="upFactor">Up-sampling factor (1 keeps the resolution).</param>
    /// <param name="padding">What the window reads outside the map.</param>
    /// <param name="blockBytes">Upper bound of one block's gathered windows when up-sampling; tests pass less to force many blocks.</param>
    /// <returns>The reassembled features [B, C, up·h, up·w].</returns>
    public static Tensor Lean(Tensor x, Tensor kernels, int kernelSize, int upFactor, CarafePadding padding, long blockBytes = GemmBlockBytes)
    {
        var (b, c, h, w, groups) = CheckShapes(x, kernels, kernelSize, upFactor, padding);
        var geometry = new Geometry(b, c, h, w, groups, kernelSize, upFactor, padding, blockBytes);
        // Measured (docs/benchmarks.md, profile): up-sampling is 2–12× faster as batched products over gathered windows;
        // at up 1 there is one kernel per pixel, the products degenerate to vectors and the k² passes win.
        return OperatorProfile.Section(upFactor == 1 ? "CARAFE ×1" : "CARAFE ×2", x, kernels, (features, weights) => LeanFunction.apply(features, weights, geometry));
    }

    /// <summary>
    /// FreqFusion's high-pass filter in one operator: <paramref name="residual"/> · x − CARAFE ×1(x) (the AHPF's
    /// complement of its low-pass kernels, plus x once more with <c>hr_residual</c>: residual 2, else 1). On the loops
    /// the centre term is added as each output is stored, which saves the two passes over the map (and their autograd
    /// nodes) a subtraction and an addition after <see cref="Lean"/> took; elsewhere it is that, computed after.
    /// </summary>
    public static Tensor HighPass(Tensor x, Tensor kernels, int kernelSize, float residual, CarafePadding padding)
    {
        if (!(residual > 0))
            throw new ArgumentOutOfRangeException(nameof(residual), residual, "The high-pass filter's residual factor is positive (1, or 2 with hr_residual).");
        var (b, c, h, w, groups) = CheckShapes(x, kernels, kernelSize, 1, padding);
        if (HighPassAfterForBenchmark)
            return residual * x - Lean(x, kernels, kernelSize, 1, padding);
        var geometry = new Geometry(b, c, h, w, groups, kernelSize, 1, padding, GemmBlockBytes, residual);
        return OperatorProfile.Section("CARAFE ×1", x, kernels, (features, weights) => LeanFunction.apply(features, weights, geometry));
    }

    /// <summary>Set by the benchmarks' <c>profile ab --experiment high-pass-after</c> only: <see cref="HighPass"/> as CARAFE ×1 and two element-wise passes.</summary>
    internal static bool HighPassAfterForBenchmark { get; set; }

    sealed record Geometry(long B, long C, long H, long W, long Groups, int K, int Up, CarafePadding Padding, long BlockBytes, float Residual = 0)
    {
        public long ChannelsPerGroup => C / Groups;
        public long Phases => (long)Up * Up;
        public int Pad => K / 2;
    }

    /// <summary>Autograd wrapper so that backward is the lean loop too instead of k² slice gradients of padded size.</summary>
    sealed class LeanFunction : autograd.SingleTensorFunction<LeanFunction>
    {
        public override string Name => "LeanCarafe";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var (x, kernels, geometry) = ((Tensor)vars[0], (Tensor)vars[1], (Geometry)vars[2]);
            ctx.save_for_backward(new List<Tensor> { x, kernels });
            ctx.save_data("geometry", geometry);
            ctx.save_data("needs", (x.requires_grad, kernels.requires_grad));
            if (!CarafeLoops.Fits(x, kernels, geometry.Up))
            {
                if (geometry.Up != 1)
                    return GemmForward(x, kernels, geometry);
                var lowPass = LeanForward(x, kernels, geometry);
                return geometry.Residual == 0 ? lowPass : lowPass.neg_().add_(x, geometry.Residual);
            }
            using var padded = Pad(x, geometry.Pad, geometry.Padding);
            return CarafeLoops.Reassemble(padded, kernels, geometry.K, geometry.Up, geometry.Residual);
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            var saved = ctx.get_saved_variables();
            var geometry = (Geometry)ctx.get_data("geometry");
            var (needX, needKernels) = ((bool, bool))ctx.get_data("needs");
            var (gradX, gradKernels) = CarafeLoops.Fits(saved[0], saved[1], geometry.Up) ? LoopsBackward(saved[0], saved[1], gradOutput, geometry, needX, needKernels)
                : geometry.Up == 1 ? LeanBackward(saved[0], saved[1], gradOutput, geometry, needX, needKernels)
                : GemmBackward(saved[0], saved[1], gradOutput, geometry, needX, needKernels);
            saved.ForEach(t => t.Dispose());
            if (geometry.Residual != 0)
            {
                // d(r·x − CARAFE(x)) = r·g − CARAFE's gradients.
                gradX = gradX?.neg_().add_(gradOutput, geometry.Residual);
                gradKernels = gradKernels?.neg_();
            }
            return new List<Tensor> { gradX!, gradKernels!, null! };
        }
    }

    static Tensor LeanForward(Tensor x, Tensor kernels, Geometry g)
    {
        using var scope = NewDisposeScope();
        long hp = g.H + 2 * g.Pad, wp = g.W + 2 * g.Pad;
        var grouped = Pad(x, g.Pad, g.Padding).view(g.B, g.Groups, g.ChannelsPerGroup, 1, hp, wp);
        // Phase-major kernels at source resolution: [B, G, 1, k², up², h, w]; for up = 1 only a view.
        var phased = PhaseMajor(kernels, g.Up).view(g.B, g.Groups, 1, (long)g.K * g.K, g.Phases, g.H, g.W);

        var acc = zeros(new[] { g.B, g.Groups, g.ChannelsPerGroup, g.Phases, g.H, g.W }, dtype: x.dtype, device: x.device);
        for (int i = 0; i < g.K; i++)
        {
            for (int j = 0; j < g.K; j++)
            {
                using var window = grouped[.., .., .., .., i..(i + (int)g.H), j..(j + (int)g.W)];
                using var weight = phased[.., .., .., i * g.K + j];
                acc.addcmul_(window, weight, 1);
            }
        }
        var result = g.Up == 1
            ? acc.view(g.B, g.C, g.H, g.W)
            : nn.functional.pixel_shuffle(acc.view(g.B, g.C * g.Phases, g.H, g.W), g.Up);
        return result.MoveToOuterDisposeScope();
    }

    static (Tensor? GradX, Tensor? GradKernels) LoopsBackward(Tensor x, Tensor kernels, Tensor gradOutput, Geometry g, bool needX, bool needKernels)
    {
        using var scope = NewDisposeScope();
        // A zero-padded input's gradient is the padded gradient's interior, which the loops compute alone.
        Tensor? gradX = !needX ? null
            : g.Padding == CarafePadding.Zeros ? CarafeLoops.PaddedGradient(kernels, gradOutput, g.K, g.Up, interiorOnly: true)
            : FoldPadding(CarafeLoops.PaddedGradient(kernels, gradOutput, g.K, g.Up, interiorOnly: false), g);
        Tensor? gradKernels = needKernels ? CarafeLoops.KernelGradient(Pad(x, g.Pad, g.Padding), gradOutput, g.K, g.Up, g.Groups) : null;
        return (gradX?.MoveToOuterDisposeScope(), gradKernels?.MoveToOuterDisposeScope());
    }

    static (Tensor? GradX, Tensor? GradKernels) LeanBackward(Tensor x, Tensor kernels, Tensor gradOutput, Geometry g, bool needX, bool needKernels)
    {
        using var scope = NewDisposeScope();
        long hp = g.H + 2 * g.Pad, wp = g.W + 2 * g.Pad, k2 = (long)g.K * g.K;
        var grad = PhaseMajor(gradOutput, g.Up).reshape(g.B, g.Groups, g.ChannelsPerGroup, g.Phases, g.H, g.W);
        var grouped = Pad(x, g.Pad, g.Padding).view(g.B, g.Groups, g.ChannelsPerGroup, hp, wp);
        var phased = PhaseMajor(kernels, g.Up).view(g.B, g.Groups, 1, k2, g.Phases, g.H, g.W);
        var gradPadded = needX ? zeros(new[] { g.B, g.Groups, g.ChannelsPerGroup, hp, wp }, dtype: x.dtype, device: x.device) : null;
        var gradPhased = needKernels ? empty(new[] { g.B, g.Groups, k2, g.Phases, g.H, g.W }, dtype: kernels.dtype, device: kernels.device) : null;
        for (int i = 0; i < g.K; i++)
        {
            for (int j = 0; j < g.K; j++)
            {
                int t = i * g.K + j;
                if (gradPadded is not null)
                {
                    // The window at offset t received Σ_phases grad · kernel_t; one fused update per phase.
                    using var target = gradPadded[.., .., .., i..(i + (int)g.H), j..(j + (int)g.W)];
                    for (int u = 0; u < g.Phases; u++)
                    {
                        using var gradPhase = grad[.., .., .., u];
                        using var weight = phased[.., .., .., t, u];
                        target.addcmul_(gradPhase, weight, 1);
                    }
                }
                if (gradPhased is not null)
                {
                    // Kernel tap t weighted the window at offset t for every channel of its group.
                    using var window = grouped[.., .., .., i..(i + (int)g.H), j..(j + (int)g.W)].unsqueeze(3);
                    using var product = grad * window;
                    using var tap = product.sum(2);
                    using var target = gradPhased[.., .., t];
                    target.copy_(tap);
                }
            }
        }
        Tensor? gradX = gradPadded is null ? null : FoldPadding(gradPadded.view(g.B, g.C, hp, wp), g);
        Tensor? gradKernels = gradPhased is null ? null
            : g.Up == 1 ? gradPhased.view(g.B, g.Groups * k2, g.H, g.W)
            : nn.functional.pixel_shuffle(gradPhased.view(g.B, g.Groups * k2 * g.Phases, g.H, g.W), g.Up);
        return (gradX?.MoveToOuterDisposeScope(), gradKernels?.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Upper bound of one block's gathered windows, in bytes. Measured with an allocator that reuses freed memory
    /// (docs/benchmarks.md §12), 8 MB blocks were fastest: smaller ones pay per-call overhead, above all the backward's
    /// k² window additions per block (1 MB: 1.7–2.1× the time of 8 MB forward and backward), and 16 MB gained nothing.
    /// </summary>
    internal const long GemmBlockBytes = 8L << 20;

    /// <summary>
    /// The blocks the GEMM formulation works on: a run of one kernel group's channels over a band of source rows, as
    /// many channels (all of the group's when they fit) and then as many rows as the geometry's block bytes
    /// (<see cref="GemmBlockBytes"/> unless a test asks for less) allow for the gathered windows, at least one of each.
    /// Blocks keep each pixel's channels contiguous, so every gather and scatter moves whole channel runs.
    /// </summary>
    static IEnumerable<Block> Blocks(Geometry g)
    {
        long perChannelRow = g.B * g.W * (long)g.K * g.K * sizeof(float);
        long channels = Math.Clamp(g.BlockBytes / perChannelRow, 1, g.ChannelsPerGroup);
        long rows = Math.Clamp(g.BlockBytes / (perChannelRow * channels), 1, g.H);
        for (long group = 0; group < g.Groups; group++)
            for (long row = 0; row < g.H; row += rows)
                for (long channel = 0; channel < g.ChannelsPerGroup; channel += channels)
                    yield return new Block((int)group, (int)(group * g.ChannelsPerGroup + channel), (int)Math.Min(channels, g.ChannelsPerGroup - channel),
                        (int)row, (int)Math.Min(rows, g.H - row));
    }

    readonly record struct Block(int Group, int Channel, int Channels, int Row, int Rows)
    {
        public Range ChannelRange => Channel..(Channel + Channels);
        public Range RowRange => Row..(Row + Rows);
    }

    /// <summary>The k×k windows of a block from the channels-last padded map: [B·rows·w, k², channels].</summary>
    static Tensor Windows(Tensor paddedLast, Geometry g, Block block)
    {
        long c = g.C, hp = g.H + 2 * g.Pad, wp = g.W + 2 * g.Pad;
        using var view = paddedLast.as_strided(
            new[] { g.B, block.Rows, g.W, g.K, g.K, block.Channels },
            new[] { hp * wp * c, wp * c, c, wp * c, c, 1 },
            paddedLast.storage_offset() + block.Row * wp * c + block.Channel);
        return view.reshape(g.B * block.Rows * g.W, (long)g.K * g.K, block.Channels);
    }

    /// <summary>[B, G·k², up·h, up·w] → [B, G, h, w, up², k²]: per source pixel, its up² sub-pixel kernels as rows.</summary>
    static Tensor KernelRows(Tensor kernels, Geometry g) =>
        kernels.view(g.B, g.Groups, (long)g.K * g.K, g.H, g.Up, g.W, g.Up).permute(0, 1, 3, 5, 4, 6, 2).contiguous();

    /// <summary>A block's kernel rows [B·rows·w, up², k²].</summary>
    static Tensor BlockRows(Tensor rows, Geometry g, Block block)
    {
        using var band = rows[.., block.Group, block.RowRange];
        return band.reshape(g.B * block.Rows * g.W, g.Phases, (long)g.K * g.K);
    }

    static Tensor GemmForward(Tensor x, Tensor kernels, Geometry g)
    {
        using var scope = NewDisposeScope();
        var paddedLast = Pad(x, g.Pad, g.Padding).permute(0, 2, 3, 1).contiguous();
        var rows = KernelRows(kernels, g);
        // Each block's products land in their place of the output through a channels-last view of it: a whole-size
        // product buffer and its transposition into the output would be two more allocations of the output's size,
        // which on the CI host cost more in page faults than the products themselves (docs/benchmarks.md §12).
        var output = empty(new[] { g.B, g.C, g.Up * g.H, g.Up * g.W }, dtype: x.dtype, device: x.device);
        using var outputLast = PhasesLast(output, g);
        foreach (var block in Blocks(g))
        {
            using var product = bmm(BlockRows(rows, g, block), Windows(paddedLast, g, block));
            using var target = outputLast[.., block.RowRange, .., .., .., block.ChannelRange];
            target.copy_(product.view(g.B, block.Rows, g.W, g.Up, g.Up, block.Channels));
        }
        return output.MoveToOuterDisposeScope();
    }

    /// <summary>[B, C, up·h, up·w] seen as [B, h, w, up, up, C]: per source pixel, its sub-pixel phases and channels.</summary>
    static Tensor PhasesLast(Tensor t, Geometry g) =>
        t.view(g.B, g.C, g.H, g.Up, g.W, g.Up).permute(0, 2, 4, 3, 5, 1);

    static (Tensor? GradX, Tensor? GradKernels) GemmBackward(Tensor x, Tensor kernels, Tensor gradOutput, Geometry g, bool needX, bool needKernels)
    {
        using var scope = NewDisposeScope();
        long k2 = (long)g.K * g.K, hp = g.H + 2 * g.Pad, wp = g.W + 2 * g.Pad;
        // The forward's product layout, gathered block by block rather than as a whole-size copy.
        var grad = PhasesLast(gradOutput, g);
        var paddedLast = needKernels ? Pad(x, g.Pad, g.Padding).permute(0, 2, 3, 1).contiguous() : null;
        var rows = needX ? KernelRows(kernels, g) : null;
        // Added to, because a group whose channels span several blocks collects its kernel gradient from each of them.
        var gradRows = needKernels ? zeros(new[] { g.B, g.Groups, g.H, g.W, g.Phases, k2 }, dtype: kernels.dtype, device: kernels.device) : null;
        var gradPaddedLast = needX ? zeros(new[] { g.B, hp, wp, g.C }, dtype: x.dtype, device: x.device) : null;
        foreach (var block in Blocks(g))
        {
            long n = g.B * block.Rows * g.W;
            using var gradBand = grad[.., block.RowRange, .., .., .., block.ChannelRange];
            using var gradBlock = gradBand.reshape(n, g.Phases, block.Channels);
            if (gradRows is not null)
            {
                // Kernel tap t of phase u weighted window row t for every channel of the group.
                using var windows = Windows(paddedLast!, g, block);
                using var tapGrad = bmm(gradBlock, windows.transpose(1, 2));
                using var target = gradRows[.., block.Group, block.RowRange];
                target.add_(tapGrad.view(g.B, block.Rows, g.W, g.Phases, k2));
            }
            if (gradPaddedLast is not null)
            {
                // Each window row received Σ_phases kernel · grad; the windows overlap, so they are added tap by tap.
                using var blockRows = BlockRows(rows!, g, block);
                using var windowGrad = bmm(blockRows.transpose(1, 2), gradBlock).view(g.B, block.Rows, g.W, g.K, g.K, block.Channels);
                for (int i = 0; i < g.K; i++)
                {
                    for (int j = 0; j < g.K; j++)
                    {
                        using var target = gradPaddedLast[.., (block.Row + i)..(block.Row + i + block.Rows), j..(j + (int)g.W), block.ChannelRange];
                        using var tap = windowGrad[.., .., .., i, j];
                        target.add_(tap);
                    }
                }
            }
        }
        Tensor? gradX = gradPaddedLast is null ? null : FoldPadding(gradPaddedLast.permute(0, 3, 1, 2), g).contiguous();
        Tensor? gradKernels = gradRows?.view(g.B, g.Groups, g.H, g.W, g.Up, g.Up, k2).permute(0, 1, 6, 2, 4, 3, 5)
            .reshape(g.B, g.Groups * k2, g.Up * g.H, g.Up * g.W);
        return (gradX?.MoveToOuterDisposeScope(), gradKernels?.MoveToOuterDisposeScope());
    }

    /// <summary>[B, N, up·h, up·w] → [B, N·up², h, w] with each channel's up² sub-pixel phases adjacent.</summary>
    static Tensor PhaseMajor(Tensor t, int up) => up == 1 ? t.alias() : nn.functional.pixel_unshuffle(t, up);

    /// <summary>The gradient of the padding: each padded position's gradient goes back to the pixel it copied.</summary>
    static Tensor FoldPadding(Tensor gradPadded, Geometry g)
    {
        int p = g.Pad;
        int h = (int)g.H, w = (int)g.W;
        if (p == 0)
            return gradPadded.alias();
        if (g.Padding == CarafePadding.Zeros)
            return gradPadded[.., .., p..(p + h), p..(p + w)].contiguous();
        // Reflection copies row p − q (for padded rows q < p) and row h − 2 − s (for padded rows h + p + s); likewise columns.
        var rows = gradPadded[.., .., p..(p + h), ..].clone();
        rows[.., .., 1..(p + 1), ..].add_(gradPadded[.., .., 0..p, ..].flip(2));
        rows[.., .., (h - 1 - p)..(h - 1), ..].add_(gradPadded[.., .., (h + p)..(h + 2 * p), ..].flip(2));
        var result = rows[.., .., .., p..(p + w)].clone();
        result[.., .., .., 1..(p + 1)].add_(rows[.., .., .., 0..p].flip(3));
        result[.., .., .., (w - 1 - p)..(w - 1)].add_(rows[.., .., .., (w + p)..(w + 2 * p)].flip(3));
        return result;
    }

    /// <summary>
    /// The unfold formulation of the reference's pure-PyTorch CARAFE: unfold the padded input into k² planes per
    /// channel, nearest-upsample them and weight. Memory k²·up² times the input; kept as the test oracle and the
    /// benchmark baseline.
    /// </summary>
    /// <param name="x">Source features [B, C, h, w].</param>
    /// <param name="kernels">Normalised reassembly kernels [B, G·k², up·h, up·w].</param>
    /// <param name="kernelSize">Odd window size k.</param>
    /// <param name="upFactor">Up-sampling factor (1 keeps the resolution).</param>
    /// <param name="padding">What the window reads outside the map.</param>
    /// <returns>The reassembled features [B, C, up·h, up·w].</returns>
    public static Tensor Unfold(Tensor x, Tensor kernels, int kernelSize, int upFactor, CarafePadding padding)
    {
        var (b, c, h, w, groups) = CheckShapes(x, kernels, kernelSize, upFactor, padding);
        long k2 = (long)kernelSize * kernelSize, outH = h * upFactor, outW = w * upFactor;
        using var scope = NewDisposeScope();
        var padded = Pad(x, kernelSize / 2, padding);
        var columns = nn.functional.unfold(padded, kernelSize).view(b, c * k2, h, w);
        if (upFactor > 1)
            columns = nn.functional.interpolate(columns, size: new[] { outH, outW }, mode: InterpolationMode.Nearest);
        var weighted = columns.view(b, groups, c / groups, k2, outH, outW) * kernels.view(b, groups, 1, k2, outH, outW);
        return weighted.sum(3).view(b, c, outH, outW).MoveToOuterDisposeScope();
    }

    static Tensor Pad(Tensor x, int pad, CarafePadding padding)
    {
        if (pad == 0)
            return x.alias();
        var sides = new long[] { pad, pad, pad, pad };
        return padding == CarafePadding.Reflect
            ? nn.functional.pad(x, sides, PaddingModes.Reflect)
            : nn.functional.pad(x, sides, PaddingModes.Constant, 0);
    }

    static (long B, long C, long H, long W, long Groups) CheckShapes(Tensor x, Tensor kernels, int kernelSize, int upFactor, CarafePadding padding)
    {
        if (kernelSize < 1 || kernelSize % 2 == 0)
            throw new ArgumentOutOfRangeException(nameof(kernelSize), kernelSize, "CARAFE needs an odd, positive kernel size.");
        if (upFactor < 1)
            throw new ArgumentOutOfRangeException(nameof(upFactor), upFactor, "CARAFE needs an up factor of at least 1.");
        if (x.dim() != 4 || kernels.dim() != 4)
            throw new ArgumentException($"CARAFE needs 4-D features and kernels [B, C, H, W]; got features {Shape(x)} and kernels {Shape(kernels)}.");
        long b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
        long k2 = (long)kernelSize * kernelSize;
        if (kernels.shape[0] != b || kernels.shape[2] != h * upFactor || kernels.shape[3] != w * upFactor || kernels.shape[1] % k2 != 0 || kernels.shape[1] == 0)
            throw new ArgumentException(
                $"CARAFE with a {kernelSize}×{kernelSize} kernel and up factor {upFactor} needs kernels [{b}, G·{k2}, {h * upFactor}, {w * upFactor}] for features {Shape(x)}; got kernels {Shape(kernels)}.");
        long groups = kernels.shape[1] / k2;
        if (c % groups != 0)
            throw new ArgumentException($"CARAFE splits the {c} feature channels into {groups} kernel groups, which needs the channel count to be a multiple of the group count (features {Shape(x)}, kernels {Shape(kernels)}).");
        int pad = kernelSize / 2;
        if (padding == CarafePadding.Reflect && (pad >= h || pad >= w))
            throw new ArgumentException($"Reflect padding by {pad} for a {kernelSize}×{kernelSize} CARAFE kernel needs features larger than {pad}×{pad}; got {Shape(x)}. Use larger inputs or CarafePadding.Zeros.");
        return (b, c, h, w, groups);
    }

    internal static string Shape(Tensor t) => "[" + string.Join(", ", t.shape) + "]";
}
