using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNetFreqFusion.Networks;

namespace MLNetFreqFusion;

// Saving to and loading from an ML.NET model zip.
public sealed partial class SemanticSegmentationTransformer
{
    static VersionInfo GetVersionInfo() => new(
        modelSignature: "FFSEGMNT",
        // verWrittenCur: 0x00010001, // Initial
        // verWrittenCur: 0x00010002, // Inference batch size
        // verWrittenCur: 0x00010003, // SHA-256 of the weights
        verWrittenCur: 0x00010004, // The FreqFusion concat head projects every stage first
        verReadableCur: 0x00010004,
        verWeCanReadBack: 0x00010001,
        loaderSignature: LoaderSignature,
        loaderAssemblyName: typeof(SemanticSegmentationTransformer).Assembly.FullName);

    /// <summary>ML.NET plumbing (internal in ML.NET; public here only because overrides must match the compile-time signature).</summary>
    [System.ComponentModel.EditorBrowsable(System.ComponentModel.EditorBrowsableState.Never)]
    public override void SaveModel(ModelSaveContext ctx)
    {
        Host.CheckValue(ctx, nameof(ctx));
        ctx.CheckAtModel();
        ctx.SetVersionInfo(GetVersionInfo());

        // *** Binary format ***
        // SegmentationModelSettings (see its Write)
        // byte[32]: SHA-256 of the TSModel stream's bytes (format 0x00010003 on)
        // stream "TSModel": the network's TorchSharp state dict
        _settings.Write(ctx.Writer);
        using var weights = new MemoryStream();
        using (var w = new BinaryWriter(weights, System.Text.Encoding.UTF8, leaveOpen: true))
            _predictor.WithNetwork(network => network.save(w));
        ctx.Writer.Write(System.Security.Cryptography.SHA256.HashData(weights.ToArray()));
        ctx.SaveBinaryStream(WeightsStream, w => w.Write(weights.ToArray()));
    }

    static SemanticSegmentationTransformer Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        Contracts.CheckValue(env, nameof(env));
        var host = env.Register(nameof(SemanticSegmentationTransformer));
        host.CheckValue(ctx, nameof(ctx));
        if (ctx.Header.ModelVerReadable > GetVersionInfo().VerWrittenCur)
            throw host.Except($"This model was saved by a newer MLNetFreqFusion (format 0x{ctx.Header.ModelVerReadable:X8}); this one reads " +
                $"up to 0x{GetVersionInfo().VerWrittenCur:X8}. Update the MLNetFreqFusion package to load it.");
        ctx.CheckAtModel(GetVersionInfo());

        // *** Binary format ***
        // SegmentationModelSettings (see its Write)
        // byte[32]: SHA-256 of the TSModel stream's bytes (format 0x00010003 on)
        // stream "TSModel": the network's TorchSharp state dict
        var settings = SegmentationModelSettings.Read(ctx.Reader, host, hasInferenceBatchSize: ctx.Header.ModelVerWritten >= 0x00010002);
        // .NET does not verify a zip entry's CRC, so flipped bits in the weights would load as a different model.
        byte[]? checksum = ctx.Header.ModelVerWritten >= 0x00010003 ? ctx.Reader.ReadBytes(32) : null;
        host.CheckDecode(checksum is null || checksum.Length == 32, "the weights checksum is cut short");
        if (ctx.Header.ModelVerWritten < 0x00010004 && settings.Architecture.Decoder == SegmentationDecoder.FreqFusion)
            throw host.Except($"This model was saved (format 0x{ctx.Header.ModelVerWritten:X8}) with the first FreqFusion concat head, which fused " +
                "the raw backbone widths; the head now projects every stage to DecoderChannels first (the authors' SegFormer + FreqFusion design, " +
                "docs/decisions.md), and the old weights do not fit it. Train the model again with this package, or load it with the package that saved it.");
        var network = SegmentationNetwork.Create(settings.Architecture, loadPretrainedWeights: false);
        bool loaded = ctx.TryLoadBinaryStream(WeightsStream, r =>
        {
            using var bytes = new MemoryStream();
            r.BaseStream.CopyTo(bytes);
            if (checksum is not null && !System.Security.Cryptography.SHA256.HashData(bytes.ToArray()).AsSpan().SequenceEqual(checksum))
                throw host.Except("The model's network weights (stream TSModel) do not match the checksum saved with them: the model file " +
                    "is damaged (a bad disk, copy or download). Restore it from a good copy or train it again.");
            bytes.Position = 0;
            using var reader = new BinaryReader(bytes);
            network.load(reader, strict: true);
        });
        host.CheckDecode(loaded, "the model has no network weights (stream TSModel)");
        return new SemanticSegmentationTransformer(env, settings, network);
    }

    static IRowMapper Create(IHostEnvironment env, ModelLoadContext ctx, DataViewSchema inputSchema)
        => Create(env, ctx).MakeRowMapper(inputSchema);
}
