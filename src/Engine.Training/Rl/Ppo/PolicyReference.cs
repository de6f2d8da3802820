using Engine.Models;
using Engine.Training.Rl.Sampling;

namespace Engine.Training.Rl.Ppo;

/// <summary>
/// Where PPO gets the frozen reference policy's per-token log-probs of a rollout (for the KL penalty): a model kept in
/// memory for the whole run, or one loaded for each rollout and released as soon as its log-probs are computed.
/// </summary>
public abstract class PolicyReference : IDisposable
{
    /// <summary>Whether the reference model stays in memory through the run (a memory plan counts it).</summary>
    public abstract bool IsResident { get; }

    /// <summary>The reference model's configuration.</summary>
    public abstract TransformerConfig Config { get; }

    /// <summary>
    /// A reference kept in memory (created with trainable: false, ideally); the caller keeps ownership of the model. A model
    /// with LoRA adapters is run with them disabled, so a LoRA actor passed here is its own reference (one copy of the base).
    /// </summary>
    public static PolicyReference Resident(Transformer model) => new ResidentReference(model);

    /// <summary>
    /// A reference loaded by <paramref name="open"/> for each rollout and disposed after its log-probs are computed;
    /// <paramref name="config"/> is the configuration it loads (e.g. <c>HfCheckpoint.ReadConfig</c> of its directory).
    /// </summary>
    public static PolicyReference LoadedPerRollout(Func<Transformer> open, TransformerConfig config) => new LoadedReference(open, config);

    /// <summary>
    /// Whether this reference is <paramref name="policy"/>'s own frozen base run with its LoRA adapters off (a resident
    /// reference made from the LoRA policy itself), so it holds no weights of its own.
    /// </summary>
    public virtual bool IsBaseOf(Transformer policy) => false;

    /// <summary>The log-probs log π_ref/τ of each response token, at its predicting position [B·T] (0 elsewhere).</summary>
    public abstract float[] LogProbs(RolloutBatch batch, float temperature, int rowsPerPass);

    /// <inheritdoc/>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases what the reference owns.</summary>
    protected virtual void Dispose(bool disposing)
    {
    }

    private sealed class ResidentReference : PolicyReference
    {
        private readonly RolloutPasses pass;
        private readonly Transformer model;

        public ResidentReference(Transformer model)
        {
            this.model = model ?? throw new ArgumentNullException(nameof(model));
            RolloutPasses.RequireLanguageModel(model, "the reference");
            pass = new RolloutPasses(model.Backend);
        }

        public override bool IsResident => true;

        public override TransformerConfig Config => model.Config;

        public override bool IsBaseOf(Transformer policy) => ReferenceEquals(model, policy) && policy.Lora is not null;

        public override float[] LogProbs(RolloutBatch batch, float temperature, int rowsPerPass)
        {
            using var baseOnly = model.AdaptersDisabled();
            return pass.Compute(model, batch, temperature, rowsPerPass).LogProbs;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                pass.Dispose();
            }

            base.Dispose(disposing);
        }
    }

    private sealed class LoadedReference(Func<Transformer> open, TransformerConfig config) : PolicyReference
    {
        private readonly Func<Transformer> open = open ?? throw new ArgumentNullException(nameof(open));

        public override bool IsResident => false;

        public override TransformerConfig Config { get; } = config ?? throw new ArgumentNullException(nameof(config));

        public override float[] LogProbs(RolloutBatch batch, float temperature, int rowsPerPass)
        {
            using var model = open();
            RolloutPasses.RequireLanguageModel(model, "the reference");
            if (model.Config != Config)
            {
                throw new InvalidOperationException("the reference loaded for this rollout has another configuration than the one it was declared with");
            }

            using var pass = new RolloutPasses(model.Backend);
            return pass.Compute(model, batch, temperature, rowsPerPass).LogProbs;
        }
    }
}
