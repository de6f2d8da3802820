using System.Globalization;
using Engine.Core.Backends;
using Engine.Core.Tensors;
using Engine.Models;
using Engine.Models.Lora;
using Engine.Training.Rl.Ppo;

namespace Engine.Training.Rl.Memory;

/// <summary>The memory of one role of an RL run (or of one shared item: the rollout's buffers, the backend's workspace), in bytes.</summary>
/// <param name="Role">actor, critic, reference, reward, policy, rollout or workspace.</param>
/// <param name="Parameters">Number of parameters (0 for shared items).</param>
/// <param name="Weights">Parameter values.</param>
/// <param name="Gradients">Parameter gradients (trained roles only).</param>
/// <param name="OptimizerState">AdamW's two moments (trained roles only).</param>
/// <param name="Activations">
/// The activation plan the model keeps: the larger of its training plan (B = minibatch) and its inference plan
/// (B = scoring batch), since a model holds one plan at a time (<see cref="Transformer.ActivationBytesFor"/>).
/// </param>
/// <param name="LogProbScratch">The per-token buffers of the fused token log-prob pass (targets, mask, log-probs, row statistics, their gradients).</param>
/// <param name="KvCache">The KV cache of rollout sampling with its decode and prefill plans (<see cref="KvCache.ByteLengthFor"/>).</param>
/// <param name="Note">Why a role holds nothing, or what a shared item is.</param>
public sealed record RoleMemory(
    string Role, long Parameters, long Weights, long Gradients, long OptimizerState, long Activations, long LogProbScratch, long KvCache, string? Note = null)
{
    /// <summary>Everything the role holds.</summary>
    public long Total => Weights + Gradients + OptimizerState + Activations + LogProbScratch + KvCache;
}

/// <summary>
/// What an RLHF run will hold in memory before it starts: per role (PPO: actor, critic, reference, reward model;
/// online DPO: policy, reference, reward model) its weights, gradients and AdamW moments (trained roles only),
/// activations at the shapes of <see cref="RlMemoryShape"/>, the KV cache of rollout sampling, the fused log-prob
/// buffers; plus the rollout's per-token buffers and the backend's log-prob workspace. Sizes come from the same layouts
/// the models allocate and element sizes from <see cref="DType"/>. <see cref="EnsureFits"/> refuses a run that will not
/// fit; <see cref="ToTable"/> is what trainers print and <c>engine info --plan</c> shows.
/// </summary>
public sealed class MemoryPlan
{
    // Per-token buffers the PPO rollout keeps for every (b, t): tokens and targets (i32); mask, old log-probs, reference
    // log-probs, values, rewards, advantages and returns (f32).
    private const int PpoRolloutI32 = 2, PpoRolloutF32 = 7;

    // Online DPO keeps tokens and targets (i32) and the mask (f32) of every sampled row.
    private const int DpoRolloutI32 = 2, DpoRolloutF32 = 1;

    // The GRPO family keeps tokens and targets (i32); mask, loss mask, old and reference log-probs and advantages (f32).
    private const int GrpoRolloutI32 = 2, GrpoRolloutF32 = 5;

    private readonly Func<RlMemoryShape, MemoryPlan> replan;

    private MemoryPlan(string method, RlMemoryShape shape, string device, Func<RlMemoryShape, MemoryPlan> replan, IReadOnlyList<RoleMemory> roles)
    {
        this.replan = replan;
        Method = method;
        Shape = shape;
        Device = device;
        Roles = roles;
    }

    /// <summary><c>ppo</c>, <c>online-dpo</c>, <c>grpo</c>, <c>dpo</c> or <c>kto</c>.</summary>
    public string Method { get; }

    /// <summary>The shapes the plan was made for.</summary>
    public RlMemoryShape Shape { get; }

    /// <summary>The device the plan was made for (its log-prob workspace differs per backend).</summary>
    public string Device { get; }

    /// <summary>The roles and shared items, in table order.</summary>
    public IReadOnlyList<RoleMemory> Roles { get; }

    /// <summary>Everything together.</summary>
    public long Total => Roles.Sum(r => r.Total);

    /// <summary>The role (not a shared item) that holds the most.</summary>
    public RoleMemory Largest => Roles.Where(r => r.Parameters > 0).MaxBy(r => r.Total) ?? Roles[0];

    /// <summary>
    /// The plan of PPO: the actor trained from <paramref name="actor"/> (LM head), the critic trained from
    /// <paramref name="critic"/> (a scalar head), the frozen reference (<paramref name="reference"/>, default the actor's
    /// config; not resident when its log-probs are cached) and the frozen reward model <paramref name="reward"/> (scalar head).
    /// With <see cref="RlMemoryShape.Lora"/> the reference is the actor's base with adapters off (no weights of its own)
    /// unless <paramref name="separateReference"/> says it is a model of its own (<c>--ref</c>).
    /// </summary>
    public static MemoryPlan Ppo(
        TransformerConfig actor, TransformerConfig critic, TransformerConfig reward, RlMemoryShape shape, Backend backend, TransformerConfig? reference = null,
        bool separateReference = false)
    {
        ArgumentNullException.ThrowIfNull(actor);
        ArgumentNullException.ThrowIfNull(critic);
        ArgumentNullException.ThrowIfNull(reward);
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(backend);
        var lm = actor with { Head = HeadKind.LanguageModel };
        var value = critic with { Head = HeadKind.Scalar };
        var frozen = (reference ?? actor) with { Head = HeadKind.LanguageModel };
        var rm = reward with { Head = HeadKind.Scalar };
        return Plan(shape);

        MemoryPlan Plan(RlMemoryShape s)
        {
            s.Validate();
            return new MemoryPlan("ppo", s, backend.Device.ToString(), Plan, [
                Role("actor", Fit(lm, "actor", s), s, trainingRows: Math.Max(s.Minibatch, s.PretrainingRows), scoringRows: s.ScoringRows, logProbs: true, extraTokenInputs: 2, sampling: true, s.Lora),
                Role("critic", Fit(value, "critic", s), s, trainingRows: s.Minibatch, scoringRows: s.ScoringRows, logProbs: false, extraTokenInputs: 0, sampling: false),
                Reference(Fit(frozen, "reference", s), s, s.ScoringRows, separateReference),
                Role("reward", Fit(rm, "reward model", s), s, trainingRows: 0, scoringRows: s.ScoringRows, logProbs: false, extraTokenInputs: 0, sampling: false),
                Rollout(s, PpoRolloutI32, PpoRolloutF32),
                Workspace(backend, lm, (long)Math.Max(s.Minibatch, s.ScoringRows) * s.Time),
            ]);
        }
    }

    /// <summary>
    /// The plan of the PPO run <paramref name="run"/> describes (<see cref="PpoTrainer.BeforeRun"/> passes it before the
    /// run allocates anything): rollouts of <see cref="PpoRunShape.RolloutBatch"/> prompts generated and scored
    /// <see cref="PpoRunShape.ForwardBatch"/> rows at a time, training forwards of <see cref="PpoRunShape.MicroBatch"/>
    /// rows (and <see cref="PpoRunShape.PtxRows"/> of pretraining text), the reference not resident when it is loaded per rollout
    /// and counted in full when it is a model of its own beside a LoRA actor (<see cref="PpoRunShape.SeparateReference"/>).
    /// </summary>
    public static MemoryPlan Ppo(PpoRunShape run, Backend backend)
    {
        ArgumentNullException.ThrowIfNull(run);
        var shape = new RlMemoryShape
        {
            RolloutBatch = run.RolloutBatch,
            GenerationBatch = run.ForwardBatch,
            ScoringBatch = run.ForwardBatch,
            Minibatch = run.MicroBatch,
            PretrainingRows = run.PtxRows,
            PromptLength = run.MaxPromptLength,
            ResponseLength = run.MaxLength - run.MaxPromptLength,
            CachedReferenceLogProbs = !run.ReferenceResident,
            Lora = run.ActorLora,
        };
        return Ppo(run.Actor, run.Critic, run.RewardModel, shape, backend, run.Reference, run.SeparateReference);
    }

    /// <summary>
    /// The plan of online DPO: the policy trained from <paramref name="policy"/> (LM head; it samples the rollout, so it
    /// holds the KV cache), the frozen reference (default the policy's config) run on each DPO micro-batch of
    /// <see cref="RlMemoryShape.Minibatch"/> rows, and the frozen reward model <paramref name="reward"/> scoring the samples.
    /// With <see cref="RlMemoryShape.Lora"/> the reference is the policy's base with adapters off (no weights of its own)
    /// unless <paramref name="separateReference"/> says it is a model of its own (<c>--ref</c>).
    /// </summary>
    public static MemoryPlan OnlineDpo(
        TransformerConfig policy, TransformerConfig reward, RlMemoryShape shape, Backend backend, TransformerConfig? reference = null, bool separateReference = false)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(reward);
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(backend);
        var lm = policy with { Head = HeadKind.LanguageModel };
        var frozen = (reference ?? policy) with { Head = HeadKind.LanguageModel };
        var rm = reward with { Head = HeadKind.Scalar };
        return Plan(shape);

        MemoryPlan Plan(RlMemoryShape s)
        {
            s.Validate();
            return new MemoryPlan("online-dpo", s, backend.Device.ToString(), Plan, [
                Role("policy", Fit(lm, "policy", s), s, trainingRows: s.Minibatch, scoringRows: 0, logProbs: true, extraTokenInputs: 0, sampling: true, s.Lora),
                Reference(Fit(frozen, "reference", s), s, s.Minibatch, separateReference),
                Role("reward", Fit(rm, "reward model", s), s, trainingRows: 0, scoringRows: s.ScoringRows, logProbs: false, extraTokenInputs: 0, sampling: false),
                Rollout(s, DpoRolloutI32, DpoRolloutF32),
                Workspace(backend, lm, (long)Math.Max(s.Minibatch, s.ScoringRows) * s.Time),
            ]);
        }
    }

    /// <summary>
    /// The plan of the GRPO family: the policy trained from <paramref name="policy"/> (LM head; it samples, so it holds
    /// the KV cache), no critic and no reward model (rewards are functions), and the frozen reference
    /// (<paramref name="reference"/>) only when there is one (β &gt; 0), run on <see cref="RlMemoryShape.ScoringBatch"/> rows.
    /// With <see cref="RlMemoryShape.Lora"/> the reference is the policy's base with adapters off (no weights of its own)
    /// unless <paramref name="separateReference"/> says it is a model of its own (<c>--ref</c>).
    /// </summary>
    public static MemoryPlan Grpo(TransformerConfig policy, RlMemoryShape shape, Backend backend, TransformerConfig? reference, bool separateReference = false)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(backend);
        var lm = policy with { Head = HeadKind.LanguageModel };
        var frozen = reference is null ? null : reference with { Head = HeadKind.LanguageModel };
        return Plan(shape);

        MemoryPlan Plan(RlMemoryShape s)
        {
            s.Validate();
            var roles = new List<RoleMemory>
            {
                Role("policy", Fit(lm, "policy", s), s, trainingRows: s.Minibatch, scoringRows: s.ScoringRows, logProbs: true, extraTokenInputs: 3, sampling: true, s.Lora),
            };
            if (frozen is not null)
            {
                roles.Add(Reference(Fit(frozen, "reference", s), s, s.ScoringRows, separateReference));
            }

            roles.Add(Rollout(s, GrpoRolloutI32, GrpoRolloutF32));
            roles.Add(Workspace(backend, lm, (long)Math.Max(s.Minibatch, s.ScoringRows) * s.Time));
            return new MemoryPlan("grpo", s, backend.Device.ToString(), Plan, roles);
        }
    }

    /// <summary>
    /// The plan of offline DPO: the policy trained from <paramref name="policy"/> on micro-batches of
    /// <see cref="RlMemoryShape.Minibatch"/> rows (chosen plus rejected) of <see cref="RlMemoryShape.Time"/> tokens, and the
    /// frozen reference (default the policy's config) run on the same rows (not resident with precomputed log-probs,
    /// <see cref="RlMemoryShape.CachedReferenceLogProbs"/>). With <see cref="RlMemoryShape.Lora"/> the reference is the
    /// policy's base with adapters off unless <paramref name="separateReference"/> says it is a model of its own (<c>--ref</c>).
    /// No sampling: no rollout buffers, no KV cache. A <paramref name="referenceFree"/> loss list (SimPO, CPO, ORPO, SFT) has
    /// no reference row; <paramref name="method"/> is <c>dpo</c> or <c>kto</c> (whose rows are its examples and their KL rows).
    /// </summary>
    public static MemoryPlan Dpo(
        TransformerConfig policy, RlMemoryShape shape, Backend backend, TransformerConfig? reference = null, bool separateReference = false, bool referenceFree = false,
        string method = "dpo")
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(backend);
        var lm = policy with { Head = HeadKind.LanguageModel };
        var frozen = (reference ?? policy) with { Head = HeadKind.LanguageModel };
        return Plan(shape);

        MemoryPlan Plan(RlMemoryShape s)
        {
            s.Validate();
            var roles = new List<RoleMemory>
            {
                Role("policy", Fit(lm, "policy", s), s, trainingRows: s.Minibatch, scoringRows: 0, logProbs: true, extraTokenInputs: 0, sampling: false, s.Lora),
            };
            if (!referenceFree)
            {
                roles.Add(Reference(Fit(frozen, "reference", s), s, s.Minibatch, separateReference, "log-probs precomputed once: not resident"));
            }

            roles.Add(Workspace(backend, lm, (long)s.Minibatch * s.Time));
            return new MemoryPlan(method, s, backend.Device.ToString(), Plan, roles);
        }
    }

    /// <summary>
    /// Throws <see cref="MemoryPlanException"/> when the plan needs more than the device can hold: what is available plus
    /// what this process already holds there (the roles already loaded are part of the plan). The message gives both
    /// figures, the largest role and how much each lever would save.
    /// </summary>
    public void EnsureFits(DeviceMemoryInfo memory)
    {
        ArgumentNullException.ThrowIfNull(memory);
        long usable = memory.AvailableBytes + memory.AllocatedBytes;
        if (Total <= usable)
        {
            return;
        }

        var big = Largest;
        var levers = Levers().Select(l => $"{l.Lever} (saves {FormatBytes(l.Saves)})").ToList();
        string message =
            $"{Method} needs {FormatBytes(Total)} but {Device} has {FormatBytes(usable)} ({FormatBytes(memory.AvailableBytes)} available by {memory.Source}" +
            $"{(memory.AllocatedBytes > 0 ? $" + {FormatBytes(memory.AllocatedBytes)} already held by this process" : "")}); " +
            $"the largest role is the {big.Role} at {FormatBytes(big.Total)} (weights {FormatBytes(big.Weights)}, gradients {FormatBytes(big.Gradients)}, " +
            $"optimizer {FormatBytes(big.OptimizerState)}, activations {FormatBytes(big.Activations + big.LogProbScratch)}, KV cache {FormatBytes(big.KvCache)}); " +
            (levers.Count > 0 ? $"levers: {string.Join("; ", levers)}" : "no batch lever is left: use a smaller model or a device with more memory");
        throw new MemoryPlanException(message, this, memory);
    }

    /// <summary>
    /// What each lever would save: halving the rollout (or generation) batch, halving the minibatch and scoring batch,
    /// and caching the reference log-probs (when not already); only levers that save something are listed.
    /// </summary>
    public IReadOnlyList<(string Lever, long Saves)> Levers()
    {
        var s = Shape;
        var candidates = new List<(string, RlMemoryShape)>();
        if (s.GenerationRows > 1)
        {
            candidates.Add(($"generation batch {s.GenerationRows} → {s.GenerationRows / 2} (KV cache; or a smaller rollout batch than {s.RolloutBatch})", s with { GenerationBatch = s.GenerationRows / 2 }));
        }

        if (s.Minibatch > 1 || s.ScoringRows > 1)
        {
            candidates.Add(($"minibatch {s.Minibatch} → {Math.Max(1, s.Minibatch / 2)} and scoring batch {s.ScoringRows} → {Math.Max(1, s.ScoringRows / 2)} (activations)", s with { Minibatch = Math.Max(1, s.Minibatch / 2), ScoringBatch = Math.Max(1, s.ScoringRows / 2) }));
        }

        if (!s.CachedReferenceLogProbs)
        {
            candidates.Add(("cached reference log-probs (the reference is not resident)", s with { CachedReferenceLogProbs = true }));
        }

        var result = new List<(string, long)>();
        foreach (var (lever, shape) in candidates)
        {
            long saves = Total - With(shape).Total;
            if (saves > 0)
            {
                result.Add((lever, saves));
            }
        }

        return result;
    }

    /// <summary>The plan as a table: one row per role and shared item, the total, and the memory available when given.</summary>
    public string ToTable(DeviceMemoryInfo? memory = null)
    {
        var s = Shape;
        var w = new StringWriter(CultureInfo.InvariantCulture);
        w.WriteLine(Method is "dpo" or "kto"
            ? string.Create(
                CultureInfo.InvariantCulture,
                $"memory plan: {Method} on {Device}: micro-batch of {s.Minibatch} rows ({(Method == "kto" ? "examples + KL rows" : "chosen + rejected")}) × {s.Time} tokens; weights {s.WeightType.Name()}, gradients {s.GradientType.Name()}, moments {s.MomentType.Name()}")
            : string.Create(
                CultureInfo.InvariantCulture,
                $"memory plan: {Method} on {Device}: rollout {s.RolloutBatch} × (prompt {s.PromptLength} + response {s.ResponseLength}), generation batch {s.GenerationRows}, minibatch {s.Minibatch}, scoring batch {s.ScoringRows}; weights {s.WeightType.Name()}, gradients {s.GradientType.Name()}, moments {s.MomentType.Name()}"));
        w.WriteLine($"  {"role",-10} {"params",9} {"weights",11} {"grads",11} {"optimizer",11} {"activations",11} {"kv cache",11} {"total",11}");
        foreach (var r in Roles)
        {
            string parameters = r.Parameters > 0 ? string.Create(CultureInfo.InvariantCulture, $"{r.Parameters / 1e6:F2}M") : "-";
            w.WriteLine($"  {r.Role,-10} {parameters,9} {Cell(r.Weights)} {Cell(r.Gradients)} {Cell(r.OptimizerState)} {Cell(r.Activations + r.LogProbScratch)} {Cell(r.KvCache)} {Cell(r.Total)}{(r.Note is null ? "" : "  " + r.Note)}");
        }

        w.WriteLine($"  {"total",-10} {"",9} {"",11} {"",11} {"",11} {"",11} {"",11} {Cell(Total)}");
        if (memory is not null)
        {
            long usable = memory.AvailableBytes + memory.AllocatedBytes;
            w.WriteLine($"  available: {FormatBytes(memory.AvailableBytes)} ({memory.Source}){(memory.AllocatedBytes > 0 ? $" + {FormatBytes(memory.AllocatedBytes)} held by this process" : "")}; {(Total <= usable ? "fits" : "does NOT fit")}");
        }

        return w.ToString();
    }

    /// <summary>Bytes in the largest binary unit that keeps the number at least 1: B, KiB, MiB or GiB, two decimals.</summary>
    public static string FormatBytes(long bytes) => bytes switch
    {
        >= 1L << 30 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):F2} GiB"),
        >= 1L << 20 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 20):F2} MiB"),
        >= 1L << 10 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:F2} KiB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bytes} B"),
    };

    /// <summary>The bytes of the fused log-prob buffers for <paramref name="rows"/> rows of <paramref name="time"/> tokens.</summary>
    /// <remarks>
    /// Forward: targets (i32), mask, token log-probs and two row statistics per token, and one sequence sum per row (f32).
    /// Training adds the token log-prob gradient and <paramref name="extraTokenInputs"/> more per-token loss inputs
    /// (PPO's old log-probs and advantages) per token, and the sequence gradient per row.
    /// </remarks>
    public static long LogProbBytes(int rows, int time, bool training, int extraTokenInputs)
    {
        long n = (long)rows * time, i32 = DType.I32.SizeOf(), f32 = DType.F32.SizeOf();
        long forward = (n * (i32 + (4 * f32))) + (rows * f32);
        return training ? forward + (n * (1 + extraTokenInputs) * f32) + (rows * f32) : forward;
    }

    private static string Cell(long bytes) => bytes == 0 ? $"{"-",11}" : $"{FormatBytes(bytes),11}";

    private static TransformerConfig Fit(TransformerConfig config, string role, RlMemoryShape shape)
    {
        config.Validate();
        if (shape.Time > config.MaxSequenceLength)
        {
            throw new ArgumentException(
                $"prompt length {shape.PromptLength} + response length {shape.ResponseLength} = {shape.Time} exceeds the {role}'s maximum sequence length of {config.MaxSequenceLength}");
        }

        return config;
    }

    private static RoleMemory Role(
        string name, TransformerConfig config, RlMemoryShape shape, int trainingRows, int scoringRows, bool logProbs, int extraTokenInputs, bool sampling,
        LoraConfig? lora = null)
    {
        if (lora is not null && trainingRows > 0)
        {
            return LoraRole(name, config, shape, trainingRows, scoringRows, logProbs, extraTokenInputs, sampling, lora);
        }

        bool trained = trainingRows > 0;
        long p = Transformer.ParameterCount(config);
        int t = shape.Time;
        long training = trained ? Transformer.ActivationBytesFor(config, trainingRows, t, training: true, shape.GradientCheckpointing) : 0;
        long inference = scoringRows > 0 ? Transformer.ActivationBytesFor(config, scoringRows, t, training: false) : 0;
        long scratch = !logProbs ? 0 : Math.Max(
            trained ? LogProbBytes(trainingRows, t, training: true, extraTokenInputs) : 0,
            scoringRows > 0 ? LogProbBytes(scoringRows, t, training: false, 0) : 0);
        long kv = sampling ? KvCache.ByteLengthFor(config, shape.GenerationRows, t, shape.PromptLength) : 0;
        return new RoleMemory(
            name, p, p * shape.WeightType.SizeOf(), trained ? p * shape.GradientType.SizeOf() : 0, trained ? 2 * p * shape.MomentType.SizeOf() : 0,
            Math.Max(training, inference), scratch, kv);
    }

    // A LoRA-trained role: its frozen base (no gradients, no moments) plus the adapters with their gradients and moments,
    // and the adapters' per-row buffers beside the training activations.
    private static RoleMemory LoraRole(
        string name, TransformerConfig config, RlMemoryShape shape, int trainingRows, int scoringRows, bool logProbs, int extraTokenInputs, bool sampling, LoraConfig lora)
    {
        var full = Role(name, config, shape, trainingRows, scoringRows, logProbs, extraTokenInputs, sampling);
        var sites = LoraSite.Targeted(config, lora, "--lora");
        long a = LoraAdapters.ParameterCount(lora, sites), f32 = DType.F32.SizeOf();
        long activations = Math.Max(
            Transformer.ActivationBytesFor(config, trainingRows, shape.Time, training: true) + LoraAdapters.ActivationBytesFor(lora, sites, (long)trainingRows * shape.Time),
            full.Activations);
        return full with
        {
            Parameters = a, Weights = full.Weights + (a * f32), Gradients = a * f32, OptimizerState = 2 * a * f32, Activations = activations,
            Note = $"LoRA r={lora.Rank}: {full.Parameters:N0} frozen base parameters, {a:N0} trained",
        };
    }

    // The frozen reference: nothing resident when its log-probs are cached; beside a LoRA policy, the policy's own base with
    // adapters off (activations only) unless it is a model of its own (--ref), whose weights are then counted in full.
    private static RoleMemory Reference(
        TransformerConfig config, RlMemoryShape shape, int rows, bool separate, string cachedNote = "log-probs cached per rollout: not resident")
    {
        if (shape.CachedReferenceLogProbs)
        {
            return new RoleMemory("reference", Transformer.ParameterCount(config), 0, 0, 0, 0, 0, 0, cachedNote);
        }

        var resident = Role("reference", config, shape, trainingRows: 0, scoringRows: rows, logProbs: true, extraTokenInputs: 0, sampling: false);
        return shape.Lora is null || separate ? resident : resident with { Weights = 0, Note = "the policy's base with adapters off: no weights of its own" };
    }

    private static RoleMemory Rollout(RlMemoryShape shape, int i32PerToken, int f32PerToken) => new(
        "rollout", 0, 0, 0, 0, (long)shape.RolloutBatch * shape.Time * ((i32PerToken * DType.I32.SizeOf()) + (f32PerToken * DType.F32.SizeOf())), 0, 0,
        "per-token buffers of the sampled sequences");

    private static RoleMemory Workspace(Backend backend, TransformerConfig lm, long rows) => new(
        "workspace", 0, 0, 0, 0, 0, backend.TokenLogProbWorkspaceBytes(rows, lm.VocabSize), 0, "the backend's fused log-prob chunk");

    /// <summary>The same run planned at other shapes.</summary>
    public MemoryPlan With(RlMemoryShape shape) => replan(shape ?? throw new ArgumentNullException(nameof(shape)));
}

/// <summary>A run refused before it starts because its <see cref="MemoryPlan"/> does not fit the device.</summary>
public sealed class MemoryPlanException : Engine.Core.InputException
{
    /// <summary>A refusal with no message.</summary>
    public MemoryPlanException()
    {
    }

    /// <summary>A refusal with a message only.</summary>
    public MemoryPlanException(string message)
        : base(message)
    {
    }

    /// <summary>A refusal wrapping another error.</summary>
    public MemoryPlanException(string message, Exception inner)
        : base(message, inner)
    {
    }

    /// <summary>The refusal with its one-paragraph explanation.</summary>
    public MemoryPlanException(string message, MemoryPlan plan, DeviceMemoryInfo memory)
        : base(message)
    {
        Plan = plan;
        Memory = memory;
    }

    /// <summary>The plan that does not fit.</summary>
    public MemoryPlan? Plan { get; }

    /// <summary>What the device reported.</summary>
    public DeviceMemoryInfo? Memory { get; }
}
