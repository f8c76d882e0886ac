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
        verWrittenCur: 0x00010002, // Inference batch size
        verReadableCur: 0x00010002,
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
        // stream "TSModel": the network's TorchSharp state dict
        _settings.Write(ctx.Writer);
        ctx.SaveBinaryStream(WeightsStream, w => _predictor.WithNetwork(network => network.save(w)));
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
        // stream "TSModel": the network's TorchSharp state dict
        var settings = SegmentationModelSettings.Read(ctx.Reader, host, hasInferenceBatchSize: ctx.Header.ModelVerWritten >= 0x00010002);
        var network = SegmentationNetwork.Create(settings.Architecture, loadPretrainedWeights: false);
        bool loaded = ctx.TryLoadBinaryStream(WeightsStream, r => network.load(r, strict: true));
        host.CheckDecode(loaded, "the model has no network weights (stream TSModel)");
        return new SemanticSegmentationTransformer(env, settings, network);
    }

    static IRowMapper Create(IHostEnvironment env, ModelLoadContext ctx, DataViewSchema inputSchema)
        => Create(env, ctx).MakeRowMapper(inputSchema);
}
