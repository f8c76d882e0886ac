namespace MLNetFreqFusion.Backbones;

/// <summary>
/// The encoder of a segmentation network. Every backbone returns four feature maps at strides 4, 8, 16 and 32.
/// </summary>
public enum SegmentationBackbone
{
    /// <summary>ResNet-18 (BasicBlock, stage depths 2-2-2-2, channels 64-128-256-512), torchvision layout.</summary>
    ResNet18,
    /// <summary>ResNet-34 (BasicBlock, stage depths 3-4-6-3, channels 64-128-256-512), torchvision layout.</summary>
    ResNet34,
    /// <summary>ResNet-50 (Bottleneck, stage depths 3-4-6-3, channels 256-512-1024-2048), torchvision layout.</summary>
    ResNet50,
    /// <summary>ResNet-101 (Bottleneck, stage depths 3-4-23-3, channels 256-512-1024-2048), torchvision layout.</summary>
    ResNet101,
    /// <summary>SegFormer's Mix Transformer B0 (channels 32-64-160-256, depths 2-2-2-2).</summary>
    MiTB0,
    /// <summary>SegFormer's Mix Transformer B1 (channels 64-128-320-512, depths 2-2-2-2).</summary>
    MiTB1,
    /// <summary>SegFormer's Mix Transformer B2 (channels 64-128-320-512, depths 3-4-6-3).</summary>
    MiTB2,
    /// <summary>SegFormer's Mix Transformer B3 (channels 64-128-320-512, depths 3-4-18-3).</summary>
    MiTB3,
    /// <summary>SegFormer's Mix Transformer B4 (channels 64-128-320-512, depths 3-8-27-3).</summary>
    MiTB4,
    /// <summary>SegFormer's Mix Transformer B5 (channels 64-128-320-512, depths 3-6-40-3).</summary>
    MiTB5,
    /// <summary>
    /// The ImageNet-trained ResNet-18 shipped by the NuGet package Microsoft.ML.DnnImageFeaturizer.ResNet18
    /// (stage depths 2-2-2-3, BGR input minus a per-channel mean). Its weights are read from that package's
    /// ResNet18.onnx; see <see cref="PretrainedModels.FindResNet18Onnx"/>.
    /// </summary>
    ResNet18ImageNet,
}
