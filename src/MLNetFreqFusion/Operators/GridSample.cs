using TorchSharp;
using static TorchSharp.torch;

namespace MLNetFreqFusion.Operators;

/// <summary>
/// Bilinear sampling with border padding and align_corners = false, the <c>grid_sample</c> of FreqFusion's offset
/// generator (DySample): output [N, C, Ho, Wo] at (y, x) is the input [N, C, H, W] interpolated at the position
/// <c>grid[N, y, x]</c> = (x, y) in [−1, 1], −1 and 1 being the outer edges of the first and last pixel, positions
/// beyond the first or last pixel centre clipped to it.
/// </summary>
internal static class GridSample
{
    /// <summary>
    /// Samples <paramref name="input"/> at <paramref name="grid"/>. In float32 on the CPU, forward and backward run as
    /// <see cref="GridSampleLoops"/>; otherwise (float64, other devices) as ATen's
    /// <c>grid_sample</c>, which the loops are tested against.
    /// </summary>
    public static Tensor Bilinear(Tensor input, Tensor grid) =>
        GridSampleLoops.Fits(input, grid)
            ? LoopsFunction.apply(input, grid)
            : nn.functional.grid_sample(input, grid, GridSampleMode.Bilinear, GridSamplePaddingMode.Border, align_corners: false);

    sealed class LoopsFunction : autograd.SingleTensorFunction<LoopsFunction>
    {
        public override string Name => "GridSampleLoops";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var (input, grid) = ((Tensor)vars[0], (Tensor)vars[1]);
            ctx.save_for_backward(new List<Tensor> { input, grid });
            ctx.save_data("needs", (input.requires_grad, grid.requires_grad));
            return GridSampleLoops.Sample(input, grid);
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            var saved = ctx.get_saved_variables();
            var (needInput, needGrid) = ((bool, bool))ctx.get_data("needs");
            var (gradInput, gradGrid) = GridSampleLoops.Gradients(saved[0], saved[1], gradOutput, needInput, needGrid);
            saved.ForEach(t => t.Dispose());
            return new List<Tensor> { gradInput!, gradGrid! };
        }
    }
}
