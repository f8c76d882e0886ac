namespace MLNetFreqFusion.Decoders;

/// <summary>Builds the randomly initialised decode head for a <see cref="SegmentationDecoder"/> over the chosen backbone stages.</summary>
internal static class DecoderFactory
{
    public static DecodeHead Create(SegmentationDecoder decoder, IReadOnlyList<int> inChannels, int channels, int classes, double dropoutRatio, int compressRatio) => decoder switch
    {
        SegmentationDecoder.Bilinear => new SegFormerHead(inChannels, channels, classes, dropoutRatio),
        SegmentationDecoder.BilinearFpn => FpnHead.Bilinear(inChannels, channels, classes, dropoutRatio),
        SegmentationDecoder.FreqFusion => new FreqFusionHead(inChannels, channels, classes, dropoutRatio, compressRatio),
        SegmentationDecoder.FreqFusionFpn => FpnHead.WithFreqFusion(inChannels, channels, classes, dropoutRatio, compressRatio),
        _ => throw new ArgumentOutOfRangeException(nameof(decoder), decoder, "Unknown segmentation decoder."),
    };
}
