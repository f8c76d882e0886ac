using MLNetFreqFusion.Operators;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MLNetFreqFusion.Backbones;

/// <summary>
/// torchvision's ResNet (v1.5: the stride sits on the 3×3 convolution of a bottleneck) without its pooling and
/// classifier, returning the outputs of layer1..layer4. Field names follow torchvision so its checkpoints load.
/// </summary>
internal sealed class ResNet : Backbone
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Sequential layer1;
    private readonly Sequential layer2;
    private readonly Sequential layer3;
    private readonly Sequential layer4;

    private readonly int[] _outChannels;
    private readonly InputNormalization _normalization;

    /// <param name="bottleneck">Bottleneck blocks (ResNet-50/101) instead of basic blocks (ResNet-18/34).</param>
    /// <param name="depths">Blocks per stage; four positive numbers.</param>
    /// <param name="baseWidth">Width of the stem and of the first stage; 64 in every torchvision ResNet.</param>
    /// <param name="freezeBatchNorm">Keep batch norm in eval mode during training.</param>
    /// <param name="normalization">The input convention of the weights that will be loaded.</param>
    public ResNet(bool bottleneck, IReadOnlyList<int> depths, int baseWidth, bool freezeBatchNorm, InputNormalization normalization)
        : base(nameof(ResNet), freezeBatchNorm)
    {
        if (depths.Count != 4 || depths.Any(d => d < 1))
            throw new ArgumentException($"A ResNet needs four stage depths of at least 1, got [{string.Join(", ", depths)}].", nameof(depths));
        if (baseWidth < 1)
            throw new ArgumentOutOfRangeException(nameof(baseWidth), baseWidth, "The base width must be positive.");

        _normalization = normalization;
        int expansion = bottleneck ? 4 : 1;
        conv1 = Conv2d(3, baseWidth, 7, stride: 2, padding: 3, bias: false);
        bn1 = BatchNorm2d(baseWidth);

        int inChannels = baseWidth;
        var layers = new Sequential[4];
        for (int stage = 0; stage < 4; stage++)
        {
            int width = baseWidth << stage;
            int stride = stage == 0 ? 1 : 2;
            var blocks = new List<Module<Tensor, Tensor>>();
            for (int i = 0; i < depths[stage]; i++)
            {
                blocks.Add(bottleneck
                    ? new Bottleneck(inChannels, width, i == 0 ? stride : 1)
                    : new BasicBlock(inChannels, width, i == 0 ? stride : 1));
                inChannels = width * expansion;
            }
            layers[stage] = Sequential(blocks);
        }
        (layer1, layer2, layer3, layer4) = (layers[0], layers[1], layers[2], layers[3]);
        _outChannels = Enumerable.Range(0, 4).Select(s => (baseWidth << s) * expansion).ToArray();

        RegisterComponents();

        foreach (var module in modules())
        {
            switch (module)
            {
                case Conv2d conv:
                    init.kaiming_normal_(conv.weight, mode: init.FanInOut.FanOut, nonlinearity: init.NonlinearityType.ReLU);
                    break;
                case BatchNorm2d bn:
                    init.ones_(bn.weight);
                    init.zeros_(bn.bias);
                    break;
            }
        }
    }

    public override IReadOnlyList<int> OutChannels => _outChannels;

    public override InputNormalization Normalization => _normalization;

    public override Tensor[] forward(Tensor x)
    {
        x = functional.relu(bn1.call(SpatialConvolution.Forward(conv1, x)));
        x = functional.max_pool2d(x, 3, stride: 2, padding: 1);
        var c1 = layer1.call(x);
        var c2 = layer2.call(c1);
        var c3 = layer3.call(c2);
        var c4 = layer4.call(c3);
        return [c1, c2, c3, c4];
    }

    private static Sequential? Downsample(int inChannels, int outChannels, int stride) =>
        stride == 1 && inChannels == outChannels
            ? null
            : Sequential(Conv2d(inChannels, outChannels, 1, stride: stride, bias: false), BatchNorm2d(outChannels));

    private sealed class BasicBlock : Module<Tensor, Tensor>
    {
        private readonly Conv2d conv1;
        private readonly BatchNorm2d bn1;
        private readonly Conv2d conv2;
        private readonly BatchNorm2d bn2;
        private readonly Sequential? downsample;

        public BasicBlock(int inChannels, int width, int stride) : base(nameof(BasicBlock))
        {
            conv1 = Conv2d(inChannels, width, 3, stride: stride, padding: 1, bias: false);
            bn1 = BatchNorm2d(width);
            conv2 = Conv2d(width, width, 3, padding: 1, bias: false);
            bn2 = BatchNorm2d(width);
            downsample = Downsample(inChannels, width, stride);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            var y = functional.relu(bn1.call(SpatialConvolution.Forward(conv1, x)));
            y = bn2.call(SpatialConvolution.Forward(conv2, y));
            var identity = downsample is null ? x : downsample.call(x);
            return functional.relu(y + identity);
        }
    }

    private sealed class Bottleneck : Module<Tensor, Tensor>
    {
        private readonly Conv2d conv1;
        private readonly BatchNorm2d bn1;
        private readonly Conv2d conv2;
        private readonly BatchNorm2d bn2;
        private readonly Conv2d conv3;
        private readonly BatchNorm2d bn3;
        private readonly Sequential? downsample;

        public Bottleneck(int inChannels, int width, int stride) : base(nameof(Bottleneck))
        {
            conv1 = Conv2d(inChannels, width, 1, bias: false);
            bn1 = BatchNorm2d(width);
            conv2 = Conv2d(width, width, 3, stride: stride, padding: 1, bias: false);
            bn2 = BatchNorm2d(width);
            conv3 = Conv2d(width, width * 4, 1, bias: false);
            bn3 = BatchNorm2d(width * 4);
            downsample = Downsample(inChannels, width * 4, stride);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            var y = functional.relu(bn1.call(SpatialConvolution.Forward(conv1, x)));
            y = functional.relu(bn2.call(SpatialConvolution.Forward(conv2, y)));
            y = bn3.call(SpatialConvolution.Forward(conv3, y));
            var identity = downsample is null ? x : downsample.call(x);
            return functional.relu(y + identity);
        }
    }
}
