using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNetFreqFusion.Data;

namespace MLNetFreqFusion;

// The row mapper: what a PredictionEngine and ML.NET's row-by-row transform use.
public sealed partial class SemanticSegmentationTransformer
{
    sealed class Mapper : MapperBase
    {
        readonly SemanticSegmentationTransformer _owner;
        readonly int _imageColumn;

        public Mapper(SemanticSegmentationTransformer parent, DataViewSchema inputSchema)
            : base(parent.Host.Register(nameof(Mapper)), inputSchema, parent)
        {
            _owner = parent;
            var name = parent._settings.ImageColumnName;
            SchemaChecks.CheckImageColumn(Host, SchemaShape.Create(inputSchema), name);
            _imageColumn = inputSchema[name].Index;
        }

        public override DataViewSchema.DetachedColumn[] GetOutputColumnsCore() =>
            RowPrediction.OutputColumns(_owner._settings.PredictedLabelColumnName, _owner._settings.ScoreColumnName, _owner._settings.ClassNames);

        public override Func<int, bool> GetDependenciesCore(Func<int, bool> activeOutput)
            => column => column == _imageColumn && (activeOutput(0) || (_owner._settings.ScoreColumnName is not null && activeOutput(1)));

        public override void SaveModel(ModelSaveContext ctx) => _owner.SaveModel(ctx);

        /// <summary>Both output columns come from one prediction per row, so the getters share it.</summary>
        public override Delegate[] CreateGetters(DataViewRow input, Func<int, bool> activeOutput, out Action disposer)
        {
            disposer = () => { };
            var getters = new Delegate[OutputColumnCount];
            bool wantMask = activeOutput(0), wantProbabilities = OutputColumnCount > 1 && activeOutput(1);
            if (!wantMask && !wantProbabilities)
                return getters;
            var getImage = input.GetGetter<MLImage>(input.Schema[_imageColumn]);
            MLImage image = null!;
            var images = new ImageSourceCheck();
            var prediction = new RowPrediction(input, position =>
            {
                try
                {
                    images.Read(getImage, ref image, position, _owner._settings.ImageColumnName);
                }
                catch (InvalidDataException e)
                {
                    throw Host.Except(e, e.Message);
                }
                if (image is null)
                    throw RowPrediction.NoImage(Host, _owner._settings.ImageColumnName, position);
                return _owner._predictor.Predict(image, wantProbabilities, Host.CheckAlive);
            });
            for (int i = 0; i < getters.Length; i++)
                if (activeOutput(i))
                    getters[i] = prediction.Getter(i);
            return getters;
        }

        int OutputColumnCount => _owner._settings.ScoreColumnName is null ? 1 : 2;

        public override Delegate MakeGetter(DataViewRow input, int iinfo, Func<int, bool> activeOutput, out Action disposer)
            => throw Contracts.ExceptNotSupp("CreateGetters makes every getter of this mapper.");
    }
}
