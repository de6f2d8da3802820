using Engine.Core.Backends;
using Engine.Core.Numerics;
using Engine.Core.Tensors;
using Engine.Models.Parameters;

namespace Engine.Models;

/// <summary>
/// A decoder-only transformer (GPT-2 or Llama family) with explicit forward and backward passes per layer, no autograd
/// tape. Parameters, gradients and AdamW moments live in a <see cref="ParameterSet"/>; activations are planned once per
/// (B, T). Every computation goes through the <see cref="Backend"/> contract, so the model never knows which device runs it.
/// </summary>
public sealed partial class Transformer : IDisposable
{
    /// <summary>Largest logits chunk in bytes: the LM head and its loss run over row chunks so [N,V] is never held whole.</summary>
    public const long LogitsChunkBytes = 64L << 20;

    private readonly LayerWeights[] weights;
    private readonly LayerWeights[] gradients;
    private readonly Tensor ropeTable;
    private ActivationPlan? plan;

    /// <summary>Creates a model with zeroed parameters; call <see cref="InitializeWeights"/> or load weights next.</summary>
    public Transformer(TransformerConfig config, Backend backend, bool trainable = true)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(backend);
        config.Validate();
        Config = config;
        Backend = backend;
        Attention = new AttentionShape(config.Heads, config.KvHeadCount, config.HeadChannels);
        Parameters = new ParameterSet(backend, ParameterSpecs(config), trainable);
        Profiler = new OpProfiler(backend);
        weights = new LayerWeights[config.Layers];
        gradients = new LayerWeights[config.Layers];
        for (int l = 0; l < config.Layers; l++)
        {
            weights[l] = LayerWeights.From(Parameters.Value, Parameters.Contains, l);
            if (trainable)
            {
                gradients[l] = LayerWeights.From(Parameters.Gradient, Parameters.Contains, l);
            }
        }

        if (config.Architecture == Architecture.Llama)
        {
            var table = new float[config.MaxSequenceLength * config.HeadChannels];
            RopeTables.Fill(table, config.MaxSequenceLength, config.HeadChannels, config.RopeTheta);
            ropeTable = backend.AllocateTensor(DType.F32, config.MaxSequenceLength, config.HeadChannels);
            backend.CopyFromHost<float>(ropeTable, table);
        }
    }

    /// <summary>The architecture and sizes.</summary>
    public TransformerConfig Config { get; }

    /// <summary>The backend every op runs on.</summary>
    public Backend Backend { get; }

    /// <summary>Parameters, gradients and optimizer moments.</summary>
    public ParameterSet Parameters { get; }

    /// <summary>Per-op timing, off unless enabled.</summary>
    public OpProfiler Profiler { get; }

    /// <summary>Head layout of every attention layer.</summary>
    public AttentionShape Attention { get; }

    /// <summary>
    /// Bytes of the activation plan for the last (B, T) used, 0 before the first pass. The memory held can be larger: a
    /// plan for a shorter batch reuses the buffer of the longest one seen.
    /// </summary>
    public long ActivationBytes => plan?.ByteLength ?? 0;

    private bool IsLlama => Config.Architecture == Architecture.Llama;

    /// <summary>The LM head [V,C] (the embedding table when tied). A model with a scalar head has none and throws.</summary>
    public Tensor HeadWeight => Parameters.Value(LanguageModelHeadName);

    /// <summary>The gradient of the LM head [V,C] (the embedding table's when tied); empty when the base is frozen under LoRA.</summary>
    public Tensor HeadGradient => BaseGradient(LanguageModelHeadName);

    /// <summary>Total number of parameters of a configuration, counted without allocating anything.</summary>
    public static long ParameterCount(TransformerConfig config) => ParameterSpecs(config).Sum(p => p.Shape.ElementCount);

    /// <summary>
    /// Bytes of the activation buffer a model of <paramref name="config"/> plans for (B, T), training or inference only,
    /// computed from the same layout it allocates (nothing is allocated here). With
    /// <paramref name="gradientCheckpointing"/> a training plan keeps only each layer's input (see <see cref="GradientCheckpointing"/>).
    /// </summary>
    public static long ActivationBytesFor(TransformerConfig config, int batch, int time, bool training, bool gradientCheckpointing = false)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batch);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(time);
        return ActivationPlan.ByteLengthFor(config, batch, time, training, training && gradientCheckpointing);
    }

    /// <summary>
    /// The parameters a configuration has, in Engine's naming, shapes [out, in] for matrices. The qkv projection is one
    /// matrix with rows [q heads | k heads | v heads]; for the Llama family the MLP "up" matrix holds the gate rows then the up rows.
    /// </summary>
    public static IEnumerable<(string Name, Shape Shape, ParameterKind Kind)> ParameterSpecs(TransformerConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        int c = config.Channels, v = config.VocabSize, f = config.MlpChannels;
        var att = new AttentionShape(config.Heads, config.KvHeadCount, config.HeadChannels);
        bool gpt2 = config.Architecture == Architecture.Gpt2;
        yield return (Names.Embedding, new Shape(v, c), ParameterKind.Embedding);
        if (gpt2)
        {
            yield return (Names.PositionEmbedding, new Shape(config.MaxSequenceLength, c), ParameterKind.Embedding);
        }

        for (int l = 0; l < config.Layers; l++)
        {
            yield return (Names.Layer(l, Names.Norm1Weight), new Shape(c), ParameterKind.Norm);
            if (gpt2)
            {
                yield return (Names.Layer(l, Names.Norm1Bias), new Shape(c), ParameterKind.Bias);
            }

            yield return (Names.Layer(l, Names.QkvWeight), new Shape(att.QkvChannels, c), ParameterKind.Matrix);
            if (gpt2 || config.AttentionBias)
            {
                yield return (Names.Layer(l, Names.QkvBias), new Shape(att.QkvChannels), ParameterKind.Bias);
            }

            yield return (Names.Layer(l, Names.OutWeight), new Shape(c, att.OutChannels), ParameterKind.Matrix);
            if (gpt2)
            {
                yield return (Names.Layer(l, Names.OutBias), new Shape(c), ParameterKind.Bias);
            }

            yield return (Names.Layer(l, Names.Norm2Weight), new Shape(c), ParameterKind.Norm);
            if (gpt2)
            {
                yield return (Names.Layer(l, Names.Norm2Bias), new Shape(c), ParameterKind.Bias);
            }

            yield return (Names.Layer(l, Names.UpWeight), new Shape(gpt2 ? f : 2 * f, c), ParameterKind.Matrix);
            if (gpt2)
            {
                yield return (Names.Layer(l, Names.UpBias), new Shape(f), ParameterKind.Bias);
            }

            yield return (Names.Layer(l, Names.DownWeight), new Shape(c, f), ParameterKind.Matrix);
            if (gpt2)
            {
                yield return (Names.Layer(l, Names.DownBias), new Shape(c), ParameterKind.Bias);
            }
        }

        yield return (Names.FinalNormWeight, new Shape(c), ParameterKind.Norm);
        if (gpt2)
        {
            yield return (Names.FinalNormBias, new Shape(c), ParameterKind.Bias);
        }

        if (config.Head == HeadKind.Scalar)
        {
            yield return (Names.ScoreWeight, new Shape(1, c), ParameterKind.Matrix);
            yield return (Names.ScoreBias, new Shape(1), ParameterKind.Bias);
        }
        else if (!config.TiedEmbeddings)
        {
            yield return (Names.LmHead, new Shape(v, c), ParameterKind.Matrix);
        }
    }

    /// <summary>
    /// GPT-2 style initialisation from a seed: matrices and embeddings N(0, 0.02²), the two residual projections of each
    /// layer N(0, (0.02/√(2L))²), norm gains 1, biases 0; a scalar head N(0, 1/(C+1)) as Stiennon et al. (2020) initialise the reward head.
    /// </summary>
    public void InitializeWeights(ulong seed)
    {
        var rng = new RandomStream(seed);
        double residualStd = 0.02 / Math.Sqrt(2.0 * Config.Layers);
        foreach (var p in Parameters.Parameters)
        {
            var host = new float[p.ElementCount];
            switch (p.Kind)
            {
                case ParameterKind.Norm:
                    Array.Fill(host, 1f);
                    break;
                case ParameterKind.Bias:
                    break;
                default:
                    bool residual = p.Name.EndsWith(Names.OutWeight, StringComparison.Ordinal) || p.Name.EndsWith(Names.DownWeight, StringComparison.Ordinal);
                    rng.FillNormal(host, p.Name == Names.ScoreWeight ? ScoreHeadStd : residual ? residualStd : 0.02);
                    break;
            }

            Backend.CopyFromHost<float>(Parameters.Value(p.Name), host);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        plan?.Dispose();
        DisposePackedPositions();
        referencePlan?.Dispose();
        lora?.Dispose();
        Parameters.Dispose();
        ropeTable.Buffer?.Dispose();
    }

    private ActivationPlan Plan(int batch, int time, bool training)
    {
        if (batch <= 0 || time <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(batch), $"batch and time must be positive, got B={batch}, T={time}");
        }

        if (time > Config.MaxSequenceLength)
        {
            throw new ArgumentOutOfRangeException(nameof(time), $"sequence length {time} exceeds the model's maximum of {Config.MaxSequenceLength}");
        }

        if (training && !IsTrainable)
        {
            throw new InvalidOperationException("this model was created for inference: it has no gradients");
        }

        if (!training && lora is { Enabled: false })
        {
            return ReferencePlan(batch, time);
        }

        if (plan is null || plan.Batch != batch || plan.Time != time || (training && (!plan.Training || plan.Recompute != GradientCheckpointing)))
        {
            plan = ActivationPlan.Replace(plan, Backend, Config, batch, time, training, training && GradientCheckpointing);
        }

        return plan;
    }

    /// <summary>Views of one layer's parameters (or gradients); absent ones are the empty tensor.</summary>
    private readonly record struct LayerWeights(
        Tensor Norm1Weight, Tensor Norm1Bias, Tensor QkvWeight, Tensor QkvBias, Tensor OutWeight, Tensor OutBias,
        Tensor Norm2Weight, Tensor Norm2Bias, Tensor UpWeight, Tensor UpBias, Tensor DownWeight, Tensor DownBias)
    {
        public static LayerWeights From(Func<string, Tensor> get, Func<string, bool> has, int l)
        {
            Tensor Get(string suffix)
            {
                string name = Names.Layer(l, suffix);
                return has(name) ? get(name) : default;
            }

            return new LayerWeights(
                Get(Names.Norm1Weight), Get(Names.Norm1Bias), Get(Names.QkvWeight), Get(Names.QkvBias), Get(Names.OutWeight), Get(Names.OutBias),
                Get(Names.Norm2Weight), Get(Names.Norm2Bias), Get(Names.UpWeight), Get(Names.UpBias), Get(Names.DownWeight), Get(Names.DownBias));
        }
    }
}
