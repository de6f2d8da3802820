using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Engine.Core;
using Engine.Core.Backends;
using Engine.Models;
using Engine.Models.Formats;
using Engine.Models.HuggingFace;
using Engine.Models.Lora;
using Engine.Training.Rl.Memory;

namespace Engine.Cli.Commands;

/// <summary><c>engine info MODEL_DIR</c>: a checkpoint's config, parameter count and the memory training it takes.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var path = new Argument<string?>("MODEL_DIR") { Description = "a Hugging Face checkpoint directory, or a config.json (not with --plan)", Arity = ArgumentArity.ZeroOrOne };
        var batch = new Option<int>("--batch") { Description = "B, sequences per step, for the memory estimate", DefaultValueFactory = _ => 1 };
        var seq = new Option<int>("--seq") { Description = "T, tokens per sequence (default: the model's maximum, at most 1024)" };
        var json = new Option<bool>("--json") { Description = "print one JSON object" };
        var plan = new PlanFlags();
        var lora = new Option<string?>("--lora") { Description = "also show the trainable parameters and memory of LoRA training with these settings (r=16,alpha=32,targets=all-linear; with --plan: the policy trains LoRA)" };
        var adapter = LoraCommand.AdapterOption();
        var command = new Command("info", "Show a model's config, parameter count and the memory AdamW training in fp32 needs; or, with --plan, the memory plan of an RL run.") { path, batch, seq, json, lora, adapter };
        plan.AddTo(command);
        command.SetAction(parse =>
        {
            string? model = parse.GetValue(path);
            if (parse.GetValue(plan.Method) is string method)
            {
                if (model is not null)
                {
                    throw new CommandException("--plan reads the roles' checkpoints from --actor, --critic and --reward; give no MODEL_DIR");
                }

                var (memoryPlan, memory) = plan.Plan(parse, method, LoraOf(parse.GetValue(lora), parse.GetValue(adapter)));
                Console.Out.Write(parse.GetValue(json) ? PlanJson(memoryPlan, memory) + Environment.NewLine : memoryPlan.ToTable(memory));
                return 0;
            }

            var info = Describe(model ?? throw new CommandException("give a MODEL_DIR (or --plan ppo|online-dpo|dpo)"), parse.GetValue(batch), parse.GetValue(seq));
            if (LoraOf(parse.GetValue(lora), parse.GetValue(adapter)) is { } loraConfig)
            {
                info = info with { Lora = loraConfig, LoraMemory = TrainingMemory.ForLora(info.Config.Model, loraConfig, info.Batch, info.Time), Adapter = parse.GetValue(adapter) };
            }

            Console.Out.Write(parse.GetValue(json) ? ToJson(info) + Environment.NewLine : ToText(info));
            return 0;
        });
        return command;
    }

    /// <summary>Largest B·T the memory estimate accepts (the activation layout indexes N = B·T positions with an int).</summary>
    public const int MaxTokensPerStep = 1 << 24;

    /// <summary>Everything the command prints; <c>Checkpointed</c> is <c>Memory</c> with activation recomputation (gradient_checkpointing).</summary>
    internal sealed record ModelInfo(
        string ConfigPath, HfModelConfig Config, string? WeightsDescription, int Batch, int Time, TrainingMemory Memory, TrainingMemory Checkpointed)
    {
        /// <summary>The LoRA settings of --lora or of the --adapter, if either was given.</summary>
        public LoraConfig? Lora { get; init; }

        /// <summary>The memory of LoRA training with <see cref="Lora"/>.</summary>
        public TrainingMemory? LoraMemory { get; init; }

        /// <summary>The --adapter directory, if given.</summary>
        public string? Adapter { get; init; }
    }

    // --lora SPEC or the settings of --adapter DIR (not both); null when neither was given.
    private static LoraConfig? LoraOf(string? spec, string? adapter)
    {
        if (spec is not null && adapter is not null)
        {
            throw new CommandException("give --lora or --adapter, not both (an adapter carries its own settings)");
        }

        return adapter is not null ? PeftAdapter.ReadConfig(ModelInputs.ExistingDirectory(adapter, "--adapter")).Config : spec is null ? null : LoraConfig.Parse(spec);
    }

    internal static ModelInfo Describe(string path, int batch, int seq)
    {
        if (batch <= 0 || seq < 0)
        {
            throw new CommandException($"--batch must be positive and --seq non-negative, got {batch} and {seq}");
        }

        // The config's sizes are bounded (TransformerConfig.Fault) and every figure below is arithmetic in long: nothing is allocated.
        var config = HfCheckpoint.ReadConfig(path);
        var model = config.Model;
        int time = seq > 0 ? seq : Math.Min(model.MaxSequenceLength, 1024);
        if (time > model.MaxSequenceLength)
        {
            throw new CommandException($"--seq {time} exceeds the model's maximum sequence length of {model.MaxSequenceLength}");
        }

        if ((long)batch * time > MaxTokensPerStep)
        {
            throw new CommandException($"--batch {batch} × --seq {time} = {(long)batch * time:N0} tokens per step, over the limit of {MaxTokensPerStep:N0}");
        }

        string configPath = Directory.Exists(path) ? Path.Combine(path, HfCheckpoint.ConfigFile) : path;
        return new ModelInfo(configPath, config, DescribeWeights(Path.GetDirectoryName(Path.GetFullPath(configPath))!), batch, time,
            TrainingMemory.For(model, batch, time), TrainingMemory.For(model, batch, time, gradientCheckpointing: true));
    }

    internal static string ToText(ModelInfo info)
    {
        var m = info.Config.Model;
        var mem = info.Memory;
        var w = new StringWriter(CultureInfo.InvariantCulture);
        w.WriteLine($"config: {info.ConfigPath}");
        w.WriteLine($"model_type: {info.Config.ModelType} ({m.Architecture})");
        w.WriteLine($"  vocab V={m.VocabSize}, layers L={m.Layers}, channels C={m.Channels}, heads NH={m.Heads}, kv heads NKV={m.KvHeadCount}, head size HS={m.HeadChannels}, MLP F={m.MlpChannels}");
        w.WriteLine($"  max sequence {m.MaxSequenceLength}, norm eps {m.NormEpsilon:R}{(m.Architecture == Architecture.Llama ? $", rope theta {m.RopeTheta:R}" : "")}, q/k/v bias {Yes(m.AttentionBias || m.Architecture == Architecture.Gpt2)}, tied embeddings {Yes(m.TiedEmbeddings)}");
        w.WriteLine($"  torch_dtype {info.Config.TorchDtype ?? "-"}, bos {info.Config.BosTokenId?.ToString(CultureInfo.InvariantCulture) ?? "-"}, eos {(info.Config.EosTokenIds.Count == 0 ? "-" : string.Join(",", info.Config.EosTokenIds))}");
        w.WriteLine($"weights: {info.WeightsDescription ?? "none (config only)"}");
        w.WriteLine($"parameters: {mem.Parameters:N0} ({mem.Parameters / 1e6:F2}M)");
        w.WriteLine($"training memory, AdamW in fp32, B={info.Batch} T={info.Time}:");
        w.WriteLine($"  weights      {Bytes(mem.Weights)}");
        w.WriteLine($"  gradients    {Bytes(mem.Gradients)}");
        w.WriteLine($"  moments      {Bytes(mem.Moments)}");
        w.WriteLine($"  activations  {Bytes(mem.Activations)}");
        w.WriteLine($"  total        {Bytes(mem.Total)}");
        w.WriteLine($"with gradient_checkpointing (each layer's input kept, the layer recomputed in backward):");
        w.WriteLine($"  activations  {Bytes(info.Checkpointed.Activations)}");
        w.WriteLine($"  total        {Bytes(info.Checkpointed.Total)}");
        if (info.Lora is { } lora && info.LoraMemory is { } lm)
        {
            w.WriteLine($"LoRA{(info.Adapter is null ? "" : $" ({info.Adapter})")}: r={lora.Rank}, alpha={lora.Alpha:R}, dropout={lora.Dropout:R}, targets {string.Join("+", lora.TargetModules)}{(lora.UseRsLora ? ", rsLoRA" : "")}");
            w.WriteLine($"  trainable parameters {lm.Parameters:N0} ({100.0 * lm.Parameters / mem.Parameters:F2}% of {mem.Parameters:N0})");
            w.WriteLine($"  weights      {Bytes(lm.Weights)}   (frozen base + adapters)");
            w.WriteLine($"  gradients    {Bytes(lm.Gradients)}");
            w.WriteLine($"  moments      {Bytes(lm.Moments)}");
            w.WriteLine($"  activations  {Bytes(lm.Activations)}");
            w.WriteLine($"  total        {Bytes(lm.Total)}   (full: {MemoryPlan.FormatBytes(mem.Total)})");
        }

        return w.ToString();
    }

    internal static string ToJson(ModelInfo info)
    {
        var m = info.Config.Model;
        var mem = info.Memory;
        return JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["config"] = info.ConfigPath,
            ["model_type"] = info.Config.ModelType,
            ["vocab_size"] = m.VocabSize,
            ["layers"] = m.Layers,
            ["channels"] = m.Channels,
            ["heads"] = m.Heads,
            ["kv_heads"] = m.KvHeadCount,
            ["head_size"] = m.HeadChannels,
            ["mlp_channels"] = m.MlpChannels,
            ["max_sequence_length"] = m.MaxSequenceLength,
            ["tied_embeddings"] = m.TiedEmbeddings,
            ["weights"] = info.WeightsDescription,
            ["parameters"] = mem.Parameters,
            ["batch"] = info.Batch,
            ["seq"] = info.Time,
            ["memory_bytes"] = new Dictionary<string, long>
            {
                ["weights"] = mem.Weights, ["gradients"] = mem.Gradients, ["moments"] = mem.Moments, ["activations"] = mem.Activations, ["total"] = mem.Total,
            },
            ["gradient_checkpointing_memory_bytes"] = new Dictionary<string, long>
            {
                ["activations"] = info.Checkpointed.Activations, ["total"] = info.Checkpointed.Total,
            },
            ["lora"] = info.Lora is not { } lora || info.LoraMemory is not { } lm ? null : new Dictionary<string, object?>
            {
                ["r"] = lora.Rank, ["lora_alpha"] = lora.Alpha, ["target_modules"] = lora.TargetModules, ["trainable_parameters"] = lm.Parameters,
                ["memory_bytes"] = new Dictionary<string, long>
                {
                    ["weights"] = lm.Weights, ["gradients"] = lm.Gradients, ["moments"] = lm.Moments, ["activations"] = lm.Activations, ["total"] = lm.Total,
                },
            },
        });
    }

    /// <summary>The plan as one JSON object: the shapes, every role's bytes, the total and what the device has.</summary>
    internal static string PlanJson(MemoryPlan plan, DeviceMemoryInfo memory)
    {
        var s = plan.Shape;
        return JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["plan"] = plan.Method,
            ["device"] = plan.Device,
            ["rollout_batch"] = s.RolloutBatch,
            ["generation_batch"] = s.GenerationRows,
            ["minibatch"] = s.Minibatch,
            ["scoring_batch"] = s.ScoringRows,
            ["prompt_length"] = s.PromptLength,
            ["response_length"] = s.ResponseLength,
            ["cached_reference_logprobs"] = s.CachedReferenceLogProbs,
            ["roles"] = plan.Roles.Select(r => new Dictionary<string, object?>
            {
                ["role"] = r.Role, ["parameters"] = r.Parameters, ["weights"] = r.Weights, ["gradients"] = r.Gradients,
                ["optimizer"] = r.OptimizerState, ["activations"] = r.Activations, ["logprob_scratch"] = r.LogProbScratch, ["kv_cache"] = r.KvCache,
                ["total"] = r.Total, ["note"] = r.Note,
            }).ToList(),
            ["total"] = plan.Total,
            ["available"] = memory.AvailableBytes,
            ["held_by_process"] = memory.AllocatedBytes,
            ["available_source"] = memory.Source,
            ["fits"] = plan.Total <= memory.AvailableBytes + memory.AllocatedBytes,
        });
    }

    private static string Yes(bool value) => value ? "yes" : "no";

    private static string Bytes(long bytes) => $"{MemoryPlan.FormatBytes(bytes),14}";

    // Reads only the safetensors headers: how the weights are stored, not whether they fit the config (loading checks that).
    private static string? DescribeWeights(string directory)
    {
        string single = Path.Combine(directory, HfCheckpoint.WeightsFile);
        string index = Path.Combine(directory, HfCheckpoint.IndexFile);
        string[] files = File.Exists(single)
            ? [single]
            : File.Exists(index) ? Directory.GetFiles(directory, "model-*-of-*.safetensors").Order(StringComparer.Ordinal).ToArray() : [];
        if (files.Length == 0)
        {
            return null;
        }

        var dtypes = new SortedSet<string>(StringComparer.Ordinal);
        long tensors = 0, bytes = 0;
        foreach (string f in files)
        {
            using var file = SafetensorsFile.Open(f);
            tensors += file.Tensors.Count;
            bytes += file.DataLength;
            foreach (var t in file.Tensors)
            {
                dtypes.Add(t.DType.HeaderName());
            }
        }

        return string.Create(CultureInfo.InvariantCulture, $"{(files.Length == 1 ? Path.GetFileName(files[0]) : $"{files.Length} shards")}, {tensors} tensors, {string.Join("/", dtypes)}, {Bytes(bytes).Trim()}");
    }
}

/// <summary>
/// The flags of <c>engine info --plan ppo|online-dpo</c>: the roles' checkpoints (only their config.json is read) and the
/// shapes of the run (<see cref="RlMemoryShape"/>, whose defaults they show).
/// </summary>
internal sealed class PlanFlags
{
    private static readonly RlMemoryShape Defaults = new();

    public Option<string?> Method { get; } = new Option<string?>("--plan")
    {
        Description = "show the memory plan of a run: ppo, online-dpo, grpo (--rollout-batch = prompts × num_generations; a reference only with --ref, i.e. beta > 0) or dpo",
    }.AcceptOnlyFromAmong("ppo", "online-dpo", "grpo", "dpo");

    public Option<string?> Actor { get; } = new("--actor", "--policy") { Description = "--plan: the policy's checkpoint (actor; reference too unless --ref)" };

    public Option<string?> Critic { get; } = new("--critic") { Description = "--plan ppo: the critic's checkpoint (default: --reward)" };

    public Option<string?> Reward { get; } = new("--reward") { Description = "--plan: the reward model's checkpoint" };

    public Option<string?> Reference { get; } = new("--ref") { Description = "--plan: the reference's checkpoint (default: --actor; with --lora and no --ref, the policy's base with adapters off, no weights of its own)" };

    public Option<int> RolloutBatch { get; } = new("--rollout-batch") { Description = "--plan: sequences sampled per rollout", DefaultValueFactory = _ => Defaults.RolloutBatch };

    public Option<int> GenerationBatch { get; } = new("--generation-batch") { Description = "--plan: sequences decoded together (0 = the whole rollout)", DefaultValueFactory = _ => Defaults.GenerationBatch };

    public Option<int> Minibatch { get; } = new("--minibatch") { Description = "--plan: rows per training forward/backward", DefaultValueFactory = _ => Defaults.Minibatch };

    public Option<int> ScoringBatch { get; } = new("--scoring-batch") { Description = "--plan: rows per scoring forward (0 = the whole rollout)", DefaultValueFactory = _ => Defaults.ScoringBatch };

    public Option<int> PromptLength { get; } = new("--prompt-length") { Description = $"--plan: longest prompt in tokens (default {Defaults.PromptLength}, at most half the actor's context)" };

    public Option<int> ResponseLength { get; } = new("--response-length") { Description = $"--plan: longest response in tokens (default {Defaults.ResponseLength}, at most half the actor's context)" };

    public Option<bool> CachedReference { get; } = new("--cached-ref") { Description = "--plan: reference log-probs cached per rollout (the reference is not resident)" };

    public Option<bool> GradientCheckpointing { get; } = new("--gradient-checkpointing") { Description = "--plan: trained roles recompute each layer in backward (gradient_checkpointing)" };

    public Option<string> Device { get; } = DeviceOption.Create();

    /// <summary>--tf32.</summary>
    public Option<bool> Tf32 { get; } = DeviceOption.CreateTf32();

    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { Method, Actor, Critic, Reward, Reference, RolloutBatch, GenerationBatch, Minibatch, ScoringBatch, PromptLength, ResponseLength, CachedReference, GradientCheckpointing, Device, Tf32 })
        {
            command.Add(option);
        }
    }

    /// <summary>The plan of <paramref name="method"/> from the roles' configs, and the memory the --device has.</summary>
    public (MemoryPlan Plan, DeviceMemoryInfo Memory) Plan(ParseResult parse, string method, LoraConfig? lora = null)
    {
        string actorDir = parse.GetValue(Actor) ?? throw new CommandException($"--plan {method} needs --actor (the policy's checkpoint)");
        string? rewardDir = parse.GetValue(Reward) ?? (method is "dpo" or "grpo" ? null : throw new CommandException($"--plan {method} needs --reward (the reward model's checkpoint)"));
        if (method == "grpo" && rewardDir is not null)
        {
            throw new CommandException("--reward does not apply to --plan grpo: its rewards are functions (a model:DIR reward is scored by a frozen copy not planned here)");
        }

        if (method != "ppo" && parse.GetValue(Critic) is not null)
        {
            throw new CommandException($"--critic applies to --plan ppo only; {method} trains no critic");
        }

        var actor = Config(actorDir, "--actor");
        var reward = rewardDir is null ? null : Config(rewardDir, "--reward");
        var reference = parse.GetValue(Reference) is string r ? Config(r, "--ref") : null;
        var shape = new RlMemoryShape
        {
            RolloutBatch = parse.GetValue(RolloutBatch),
            GenerationBatch = parse.GetValue(GenerationBatch),
            Minibatch = parse.GetValue(Minibatch),
            ScoringBatch = parse.GetValue(ScoringBatch),
            PromptLength = parse.GetValue(PromptLength) is > 0 and var prompt ? prompt : Math.Min(Defaults.PromptLength, actor.MaxSequenceLength / 2),
            ResponseLength = parse.GetValue(ResponseLength) is > 0 and var response ? response : Math.Min(Defaults.ResponseLength, actor.MaxSequenceLength / 2),
            CachedReferenceLogProbs = parse.GetValue(CachedReference),
            GradientCheckpointing = parse.GetValue(GradientCheckpointing),
            Lora = lora,
        };
        using var backend = DeviceOption.CreateBackend(parse.GetValue(Device), threads: 1, tf32: parse.GetValue(Tf32));
        var critic = method == "ppo" && parse.GetValue(Critic) is string c ? Config(c, "--critic") : reward;
        try
        {
            var plan = method switch
            {
                "ppo" => MemoryPlan.Ppo(actor, critic!, reward!, shape, backend, reference, separateReference: reference is not null),
                "online-dpo" => MemoryPlan.OnlineDpo(actor, reward!, shape, backend, reference, separateReference: reference is not null),
                "grpo" => MemoryPlan.Grpo(actor, shape, backend, reference, separateReference: reference is not null),
                _ => MemoryPlan.Dpo(actor, shape, backend, reference, separateReference: reference is not null),
            };
            return (plan, backend.QueryMemory());
        }
        catch (ArgumentException e)
        {
            // The shapes come from the --plan flags; MemoryPlan names the one out of range.
            throw new CommandException($"--plan {method}: {e.Message}", e);
        }
    }

    private static TransformerConfig Config(string path, string flag)
    {
        try
        {
            return HfCheckpoint.ReadConfig(path).Model;
        }
        catch (InputException e)
        {
            throw new CommandException($"{flag}: {e.Message}", e);
        }
    }
}
