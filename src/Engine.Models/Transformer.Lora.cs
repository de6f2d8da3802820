using Engine.Core;
using Engine.Core.Tensors;
using Engine.Models.Lora;
using Engine.Models.Parameters;

namespace Engine.Models;

// LoRA: adapters on the trunk's linear layers over a frozen base (see Lora/LoraAdapters). The passes call the two
// hooks below at each linear site; everything else lives in the Lora folder.
public sealed partial class Transformer
{
    // Mixed into the residual dropout seed so the adapters' masks never repeat the residual ones.
    private const ulong LoraSeedSalt = 0x4C6F_5241_4164_6170UL;

    private LoraAdapters? lora;
    private bool loraTraining;

    // Inference passes with the adapters disabled (the reference model) keep their activations here, apart from the
    // policy's: a reference pass may run between the policy's ForwardTraining and its backward (DPO does).
    private ActivationPlan? referencePlan;

    /// <summary>The LoRA adapters, or null for a model trained (or run) in full.</summary>
    public LoraAdapters? Lora => lora;

    /// <summary>Whether training passes are possible: the base has gradients, or adapters are attached over a frozen base.</summary>
    public bool IsTrainable => Parameters.Trainable || lora is not null;

    /// <summary>What the optimizer updates: the adapters when attached, else every parameter.</summary>
    public ParameterSet TrainableParameters => lora?.Parameters ?? Parameters;

    /// <summary>
    /// Attaches LoRA adapters on the linear layers <paramref name="config"/> targets, initialised as PEFT does from
    /// <paramref name="seed"/> (A Kaiming-uniform, B = 0). The base must have been created for inference
    /// (trainable: false): it stays frozen, with no gradients and no optimizer state; only the adapters train.
    /// </summary>
    public LoraAdapters AddLora(LoraConfig config, ulong seed, string source = "--lora")
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate(source);
        if (lora is not null)
        {
            throw new InvalidOperationException("this model already has LoRA adapters");
        }

        if (Parameters.Trainable)
        {
            throw new InvalidOperationException("LoRA trains adapters over a frozen base: load the base with trainable: false");
        }

        if (config.SavesScoreHead && !HasScalarHead)
        {
            throw new InputException(source, null, "modules_to_save", $"lists the scalar head ({LoraConfig.ScoreModule}), but this model has a language-model head");
        }

        var adapters = new LoraAdapters(Backend, config, LoraSite.Targeted(Config, config, source), config.SavesScoreHead ? Config.Channels : 0);
        adapters.Initialize(seed);
        if (config.SavesScoreHead)
        {
            // PEFT's modules_to_save: the trained copy starts as the model's head.
            Backend.Copy(adapters.Parameters.Value(Names.ScoreWeight), Parameters.Value(Names.ScoreWeight));
            Backend.Copy(adapters.Parameters.Value(Names.ScoreBias), Parameters.Value(Names.ScoreBias));
        }

        lora = adapters;
        return lora;
    }

    /// <summary>
    /// Runs the base model alone until the returned scope is disposed: <c>using (policy.AdaptersDisabled()) { … }</c>
    /// gives the reference model of DPO, PPO and GRPO without a second copy of the weights. A no-op without adapters.
    /// Inference passes inside the scope use an activation plan of their own, so they leave a pending training pass intact.
    /// </summary>
    public AdapterScope AdaptersDisabled() => new(lora);

    /// <summary>
    /// Folds the adapters into the base weights and removes them: W[c + o, :] += s·(B·A)[o, :] for every site (c its first
    /// row in the fused weight), one GEMM and one accumulate per site through the kernel contract. The model then runs
    /// as the adapted one did, with no adapter cost, and can be saved as a plain Hugging Face checkpoint.
    /// </summary>
    public void MergeLora()
    {
        var adapters = lora ?? throw new InvalidOperationException("this model has no LoRA adapters to merge");
        float s = (float)adapters.Config.Scale;
        foreach (var site in adapters.Sites)
        {
            var delta = Backend.AllocateTensor(DType.F32, site.OutFeatures, site.InFeatures);
            try
            {
                Backend.Gemm(delta, adapters.Parameters.Value(site.BName), adapters.Parameters.Value(site.AName), transposeA: false, transposeB: false, alpha: s);
                Backend.Accumulate(Parameters.Value(site.EngineWeight).Rows(site.Column, site.OutFeatures), delta);
            }
            finally
            {
                delta.Buffer?.Dispose();
            }
        }

        if (adapters.Config.SavesScoreHead)
        {
            Backend.Copy(Parameters.Value(Names.ScoreWeight), adapters.Parameters.Value(Names.ScoreWeight));
            Backend.Copy(Parameters.Value(Names.ScoreBias), adapters.Parameters.Value(Names.ScoreBias));
        }

        adapters.Dispose();
        lora = null;
    }

    // The set holding the scalar head in use: the adapters' trained copy (modules_to_save) while enabled, else the model's.
    private ParameterSet HeadParameters => lora is { ServesScoreHead: true } adapters ? adapters.Parameters : Parameters;

    // The scalar head's gradient: the adapters' copy, the model's when it trains in full, else none.
    private Tensor ScoreGradient(string name) => lora is { ServesScoreHead: true } adapters ? adapters.Parameters.Gradient(name) : BaseGradient(name);

    private ActivationPlan ReferencePlan(int batch, int time)
    {
        if (referencePlan is null || referencePlan.Batch != batch || referencePlan.Time != time)
        {
            referencePlan = ActivationPlan.Replace(referencePlan, Backend, Config, batch, time, training: false);
        }

        return referencePlan;
    }

    // The gradient of a base parameter, or the empty tensor when the base is frozen (backward then skips it).
    private Tensor BaseGradient(string name) => Parameters.Trainable ? Parameters.Gradient(name) : default;

    private void LoraForward(int layer, LinearKind linear, Tensor input, Tensor output)
    {
        if (lora is { } adapters && adapters.Adapts(layer, linear))
        {
            long t = Profiler.Begin();
            adapters.Forward(layer, linear, input, output, loraTraining, activeDropoutSeed ^ LoraSeedSalt);
            Profiler.End(t, OpKind.Matmul, backward: false);
        }
    }

    private void LoraBackward(int layer, LinearKind linear, Tensor inputGrad, Tensor outputGrad, Tensor input)
    {
        if (lora is { } adapters && adapters.Adapts(layer, linear))
        {
            long t = Profiler.Begin();
            adapters.Backward(layer, linear, inputGrad, outputGrad, input);
            Profiler.End(t, OpKind.Matmul, backward: true);
        }
    }

    // A reference pass (inference, adapters disabled) may run between the policy's training forward and its backward:
    // it runs without dropout, then gives the pending pass back the dropout state its backward (and recomputation) reuses.
    private PassStateScope KeepPendingTrainingState(bool training) =>
        !training && lora is { Enabled: false } ? new PassStateScope(this, activeDropout, activeDropoutSeed, loraTraining) : default;

    private readonly struct PassStateScope(Transformer? model, float dropout, ulong seed, bool loraTraining) : IDisposable
    {
        public void Dispose()
        {
            if (model is not null)
            {
                model.activeDropout = dropout;
                model.activeDropoutSeed = seed;
                model.loraTraining = loraTraining;
            }
        }
    }

    /// <summary>Disables a model's adapters for the lifetime of the scope and restores their previous state on dispose.</summary>
    public readonly struct AdapterScope : IDisposable
    {
        private readonly LoraAdapters? adapters;
        private readonly bool wasEnabled;

        internal AdapterScope(LoraAdapters? adapters)
        {
            this.adapters = adapters;
            wasEnabled = adapters?.Enabled ?? false;
            if (adapters is not null)
            {
                adapters.Enabled = false;
            }
        }

        /// <inheritdoc/>
        public void Dispose()
        {
            if (adapters is not null)
            {
                adapters.Enabled = wasEnabled;
            }
        }
    }
}
