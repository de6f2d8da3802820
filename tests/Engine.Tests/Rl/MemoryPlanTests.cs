using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Core.Tensors;
using Engine.Models;
using Engine.Models.Lora;
using Engine.Cuda;
using Engine.Tests.Support;
using Engine.Training.Rl.Memory;
using Engine.Training.Rl.Ppo;
using Xunit;

namespace Engine.Tests.Rl;

/// <summary>The RL memory plan against bytes computed by hand for a tiny GPT-2, and its refusal when a run will not fit.</summary>
public sealed class MemoryPlanTests : IDisposable
{
    // V = 64, context 16, L = 1, C = 16, NH = 2 (HS = 8), F = 64. Parameters by hand:
    // wte 64·16 + wpe 16·16 + ln1 2·16 + qkv 48·16 + 48 + out 16·16 + 16 + ln2 2·16 + up 64·16 + 64 + down 16·64 + 16 + ln_f 2·16 = 4592
    private const long LmParameters = 4592;
    private const long ScalarParameters = LmParameters + 16 + 1;   // score.weight [1,C] + score.bias

    // Activation plans (every region rounded up to 64 bytes). Training at B = 2, T = 8 (N = 16):
    //   tokens, targets, losses 3·64; residual 2·(16·16·4); layer: norm1 1024, mean1 64, rstd1 64, qkv 16·48·4, att 1024,
    //   lse 2·2·8·4 = 128, mid 1024, norm2 1024, mean2 64, rstd2 64, up 4096, act 4096 (= 15744); branch, final 1024 each,
    //   final mean and rstd 64 each, logits 16·64·4; gradients dResidual, dNorm 1024 each, dQkv 3072, dAtt 1024, dUp, dAct 4096 each.
    private const long TrainingPlan = (3 * 64) + 2048 + 15744 + 1024 + 1024 + 64 + 64 + 4096 + (1024 + 1024 + 3072 + 1024 + 4096 + 4096);
    private const long InferencePlanB2T8 = TrainingPlan - (1024 + 1024 + 3072 + 1024 + 4096 + 4096);

    // Inference at B = 4, T = 8 (N = 32): every per-position region doubles; lse 4·2·8·4 = 256.
    private const long InferencePlanB4T8 = (3 * 128) + 4096 + (2048 + 128 + 128 + 6144 + 2048 + 256 + 2048 + 2048 + 128 + 128 + 8192 + 8192) + 2048 + 2048 + 128 + 128 + 8192;

    // KV cache of B = 4 sequences of up to 8 tokens after a 4-token prefill: keys and values 2·L·4·NKV 2·8·HS 8·4 bytes,
    // positions (4 + 32)·4, learned position rows 32·16·4, last hidden and logits 4·(16 + 64)·4, the decode plan (4, 1)
    // and the prefill plan (4, 4) (N = 16 like (2, 8), same lse size: the inference plan above).
    private const long DecodePlan = (3 * 64) + (2 * 256) + (256 + 64 + 64 + 768 + 256 + 64 + 256 + 256 + 64 + 64 + 1024 + 1024) + 256 + 256 + 64 + 64 + 1024;
    private const long KvCacheBytes = 4096 + 144 + 2048 + 1280 + DecodePlan + InferencePlanB2T8;

    // A reference model of its own, L = 2: wte 64·16 + wpe 16·16 + two layers of 3280 (the layer above) + ln_f 2·16 = 7872.
    private const long TwoLayerParameters = 7872;

    private readonly CpuBackend backend = new(1);

    private static readonly TransformerConfig Tiny = TransformerConfig.Gpt2(64, 16, layers: 1, channels: 16, heads: 2);

    private static readonly TransformerConfig TwoLayers = TransformerConfig.Gpt2(64, 16, layers: 2, channels: 16, heads: 2);

    private static readonly RlMemoryShape Shape = new() { RolloutBatch = 4, Minibatch = 2, PromptLength = 4, ResponseLength = 4 };

    public void Dispose() => backend.Dispose();

    [Fact]
    public void The_hand_computed_sizes_are_what_the_model_and_the_cache_allocate()
    {
        Assert.Equal(LmParameters, Transformer.ParameterCount(Tiny));
        Assert.Equal(TwoLayerParameters, Transformer.ParameterCount(TwoLayers));
        Assert.Equal(ScalarParameters, Transformer.ParameterCount(Tiny with { Head = HeadKind.Scalar }));
        Assert.Equal(TrainingPlan, Transformer.ActivationBytesFor(Tiny, 2, 8, training: true));
        Assert.Equal(InferencePlanB4T8, Transformer.ActivationBytesFor(Tiny, 4, 8, training: false));
        Assert.Equal(KvCacheBytes, KvCache.ByteLengthFor(Tiny, 4, 8, prefillTime: 4));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void KvCache_ByteLengthFor_matches_what_generation_allocates(bool llama)
    {
        var config = llama ? TransformerConfig.Llama(64, 16, layers: 2, channels: 16, heads: 4, kvHeads: 2) : Tiny;
        using var model = new Transformer(config, backend, trainable: false);
        model.InitializeWeights(3);
        using var cache = model.CreateCache(3, 10);
        var logits = new float[3 * config.VocabSize];
        model.Append(cache, new int[3 * 4], [4, 2, 3], logits);
        model.Append(cache, new int[3], [1, 1, 1], logits);
        Assert.Equal(KvCache.ByteLengthFor(config, 3, 10, prefillTime: 4), cache.ByteLength);
    }

    [Fact]
    public void Ppo_plan_matches_the_bytes_computed_by_hand()
    {
        var plan = MemoryPlan.Ppo(Tiny, Tiny, Tiny, Shape, backend);
        var actor = Row(plan, "actor");
        Assert.Equal(LmParameters, actor.Parameters);
        Assert.Equal(4 * LmParameters, actor.Weights);
        Assert.Equal(4 * LmParameters, actor.Gradients);
        Assert.Equal(8 * LmParameters, actor.OptimizerState);

        // The actor holds the larger of its training plan (minibatch 2) and its scoring plan (the whole rollout, 4 rows).
        Assert.Equal(Math.Max(TrainingPlan, InferencePlanB4T8), actor.Activations);
        Assert.Equal(KvCacheBytes, actor.KvCache);

        // Log-prob buffers, training at 2·8 = 16 tokens: targets 4 + mask, logp, 2 row stats 16 + dlogp, old logp, advantages 12
        // bytes per token, and 8 bytes per row; scoring at 4·8 = 32 tokens: 20 bytes per token and 4 per row.
        Assert.Equal(Math.Max((16 * 32) + (2 * 8), (32 * 20) + (4 * 4)), actor.LogProbScratch);

        var critic = Row(plan, "critic");
        Assert.Equal(ScalarParameters, critic.Parameters);
        Assert.Equal(16 * ScalarParameters, critic.Weights + critic.Gradients + critic.OptimizerState);
        Assert.Equal(0, critic.KvCache + critic.LogProbScratch);

        var reference = Row(plan, "reference");
        Assert.Equal(4 * LmParameters, reference.Weights);
        Assert.Equal(0, reference.Gradients + reference.OptimizerState + reference.KvCache);
        Assert.Equal(InferencePlanB4T8, reference.Activations);
        Assert.Equal((32 * 20) + (4 * 4), reference.LogProbScratch);

        var reward = Row(plan, "reward");
        Assert.Equal((4 * ScalarParameters) + InferencePlanB4T8, reward.Total);

        // Rollout: 4·8 positions × (2 i32 + 7 f32); workspace: the CPU backend's chunk of min(240, 32) rows of V = 64 floats.
        Assert.Equal(4 * 8 * 36, Row(plan, "rollout").Total);
        Assert.Equal(32 * 64 * 4, Row(plan, "workspace").Total);
        Assert.Equal(plan.Roles.Sum(r => r.Total), plan.Total);
        Assert.Equal("actor", plan.Largest.Role);
    }

    [Fact]
    public void Grpo_with_lora_counts_one_base_unless_the_reference_is_a_model_of_its_own()
    {
        var lora = Shape with { Lora = new LoraConfig(Rank: 2, Alpha: 4) };
        var full = MemoryPlan.Grpo(Tiny, Shape, backend, Tiny);
        var shared = MemoryPlan.Grpo(Tiny, lora, backend, Tiny);
        var separate = MemoryPlan.Grpo(Tiny, lora, backend, Tiny, separateReference: true);
        Assert.Equal(0, Row(shared, "reference").Weights);
        Assert.Contains("adapters off", Row(shared, "reference").Note, StringComparison.Ordinal);
        Assert.Equal(Row(full, "reference"), Row(separate, "reference"));
        Assert.Equal(Row(shared, "policy"), Row(separate, "policy"));
        Assert.Equal(LmParameters * 4, Row(separate, "reference").Weights);
        var sites = LoraSite.Targeted(Tiny, lora.Lora!, "--lora");
        Assert.Equal(LoraAdapters.ParameterCount(lora.Lora!, sites) * 4, Row(shared, "policy").Gradients);
    }

    [Theory]
    [InlineData("ppo")]
    [InlineData("online-dpo")]
    [InlineData("dpo")]
    [InlineData("grpo")]
    public void With_lora_a_reference_of_its_own_adds_exactly_its_weights(string method)
    {
        MemoryPlan Plan(RlMemoryShape shape, bool separate) => method switch
        {
            "ppo" => MemoryPlan.Ppo(Tiny, Tiny, Tiny, shape, backend, TwoLayers, separate),
            "online-dpo" => MemoryPlan.OnlineDpo(Tiny, Tiny, shape, backend, TwoLayers, separate),
            "dpo" => MemoryPlan.Dpo(Tiny, shape, backend, TwoLayers, separate),
            _ => MemoryPlan.Grpo(Tiny, shape, backend, TwoLayers, separate),
        };

        var lora = Shape with { Lora = new LoraConfig(Rank: 2, Alpha: 4) };
        var shared = Plan(lora, separate: false);
        var separate = Plan(lora, separate: true);
        Assert.Equal(0, Row(shared, "reference").Weights);
        Assert.Contains("adapters off", Row(shared, "reference").Note, StringComparison.Ordinal);
        Assert.Equal(TwoLayerParameters * 4, Row(separate, "reference").Weights);
        Assert.Null(Row(separate, "reference").Note);
        Assert.Equal(shared.Total + (TwoLayerParameters * 4), separate.Total);
        Assert.Equal(shared.Roles.Where(r => r.Role != "reference"), separate.Roles.Where(r => r.Role != "reference"));
        Assert.Equal(TwoLayerParameters * 2, Row(Plan(lora with { WeightType = DType.BF16 }, separate: true), "reference").Weights);

        // Re-planned for a lever, the reference stays a model of its own.
        Assert.Equal(TwoLayerParameters * 4, Row(separate.With(lora with { Minibatch = 1 }), "reference").Weights);

        // Without LoRA every reference has its weights; with cached log-probs none is resident.
        Assert.Equal(Plan(Shape, separate: false).Roles, Plan(Shape, separate: true).Roles);
        Assert.Equal(TwoLayerParameters * 4, Row(Plan(Shape, separate: false), "reference").Weights);
        Assert.Equal(0, Row(Plan(lora with { CachedReferenceLogProbs = true }, separate: true), "reference").Total);
    }

    [Fact]
    public void Ppo_run_shape_carries_a_separate_reference_beside_a_lora_actor_to_the_plan()
    {
        var run = new PpoRunShape(Tiny, Tiny, Tiny, TwoLayers, ReferenceResident: true, RolloutBatch: 4, ForwardBatch: 2, MiniBatch: 4, MicroBatch: 2,
            MaxPromptLength: 4, ResponseLength: 4, MaxLength: 8, PtxRows: 0, ActorLora: new LoraConfig(Rank: 2, Alpha: 4));
        Assert.Equal(0, Row(MemoryPlan.Ppo(run, backend), "reference").Weights);
        Assert.Equal(TwoLayerParameters * 4, Row(MemoryPlan.Ppo(run with { SeparateReference = true }, backend), "reference").Weights);
        Assert.Equal(0, Row(MemoryPlan.Ppo(run with { SeparateReference = true, ReferenceResident = false }, backend), "reference").Total);
    }

    [Fact]
    public void Online_dpo_plan_and_the_cached_reference_lever()
    {
        var plan = MemoryPlan.OnlineDpo(Tiny, Tiny, Shape, backend);
        Assert.Equal(["policy", "reference", "reward", "rollout", "workspace"], plan.Roles.Select(r => r.Role));
        var policy = Row(plan, "policy");
        Assert.Equal(TrainingPlan, policy.Activations);
        Assert.Equal((16 * 24) + (2 * 8), policy.LogProbScratch);   // no PPO loss inputs
        Assert.Equal(KvCacheBytes, policy.KvCache);

        // The reference runs on each DPO micro-batch (2 rows), the reward model on the whole rollout.
        Assert.Equal(InferencePlanB2T8, Row(plan, "reference").Activations);
        Assert.Equal(InferencePlanB4T8, Row(plan, "reward").Activations);
        Assert.Equal(4 * 8 * 12, Row(plan, "rollout").Total);

        var cached = plan.With(Shape with { CachedReferenceLogProbs = true });
        Assert.Equal(0, Row(cached, "reference").Total);
        Assert.Equal(plan.Total - Row(plan, "reference").Total, cached.Total);
        Assert.Contains(plan.Levers(), l => l.Lever.StartsWith("cached reference", StringComparison.Ordinal) && l.Saves == Row(plan, "reference").Total);
        Assert.DoesNotContain(cached.Levers(), l => l.Lever.StartsWith("cached reference", StringComparison.Ordinal));
    }

    [Fact]
    public void Ppo_run_shape_maps_onto_the_plan_and_ptx_rows_widen_the_actor_training_plan()
    {
        var run = new PpoRunShape(Tiny, Tiny, Tiny, Tiny, ReferenceResident: false, RolloutBatch: 4, ForwardBatch: 2, MiniBatch: 4, MicroBatch: 2,
            MaxPromptLength: 4, ResponseLength: 4, MaxLength: 8, PtxRows: 0);
        var plan = MemoryPlan.Ppo(run, backend);
        var same = MemoryPlan.Ppo(Tiny, Tiny, Tiny, Shape with { GenerationBatch = 2, ScoringBatch = 2, CachedReferenceLogProbs = true }, backend);
        Assert.Equal(same.Roles, plan.Roles);
        Assert.Equal(0, Row(plan, "reference").Total);
        Assert.Equal(TrainingPlan, Row(plan, "actor").Activations);

        // Three rows of pretraining text (PPO-ptx) make the actor's training forward three rows deep; the critic's stays at two.
        var ptx = MemoryPlan.Ppo(run with { PtxRows = 3 }, backend);
        Assert.Equal(Transformer.ActivationBytesFor(Tiny, 3, 8, training: true), Row(ptx, "actor").Activations);
        Assert.Equal(Row(plan, "critic"), Row(ptx, "critic"));
    }

    [Fact]
    public void Element_sizes_come_from_the_dtypes()
    {
        var plan = MemoryPlan.Ppo(Tiny, Tiny, Tiny, Shape with { WeightType = DType.BF16, MomentType = DType.BF16 }, backend);
        var actor = Row(plan, "actor");
        Assert.Equal(2 * LmParameters, actor.Weights);
        Assert.Equal(4 * LmParameters, actor.Gradients);
        Assert.Equal(4 * LmParameters, actor.OptimizerState);
        Assert.Throws<ArgumentException>(() => MemoryPlan.Ppo(Tiny, Tiny, Tiny, Shape with { GradientType = DType.I32 }, backend));
    }

    [Fact]
    public void Ensure_fits_refuses_with_needed_available_the_largest_role_and_the_levers()
    {
        var plan = MemoryPlan.Ppo(Tiny, Tiny, Tiny, Shape, backend);
        plan.EnsureFits(new DeviceMemoryInfo(plan.Total, plan.Total, 0, "test"));

        // What the process already holds counts: the roles are loaded before the check.
        plan.EnsureFits(new DeviceMemoryInfo(plan.Total - 1000, plan.Total, 1000, "test"));

        var e = Assert.Throws<MemoryPlanException>(() => plan.EnsureFits(new DeviceMemoryInfo(plan.Total / 2, plan.Total, 0, "test meminfo")));
        Assert.Contains($"needs {MemoryPlan.FormatBytes(plan.Total)}", e.Message, StringComparison.Ordinal);
        Assert.Contains($"has {MemoryPlan.FormatBytes(plan.Total / 2)}", e.Message, StringComparison.Ordinal);
        Assert.Contains("test meminfo", e.Message, StringComparison.Ordinal);
        Assert.Contains("largest role is the actor", e.Message, StringComparison.Ordinal);
        Assert.Contains("generation batch 4 → 2", e.Message, StringComparison.Ordinal);
        Assert.Contains("minibatch 2 → 1", e.Message, StringComparison.Ordinal);
        Assert.Contains("cached reference log-probs", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("\n", e.Message, StringComparison.Ordinal);
        Assert.Same(plan, e.Plan);
        Assert.All(plan.Levers(), l => Assert.True(l.Saves > 0));
    }

    [Fact]
    public void Table_lists_every_role_the_total_and_whether_it_fits()
    {
        var plan = MemoryPlan.Ppo(Tiny, Tiny, Tiny, Shape with { CachedReferenceLogProbs = true }, backend);
        string table = plan.ToTable(new DeviceMemoryInfo(1L << 40, 1L << 40, 0, "test"));
        foreach (string role in new[] { "actor", "critic", "reference", "reward", "rollout", "workspace", "total" })
        {
            Assert.Contains($"\n  {role}", table, StringComparison.Ordinal);
        }

        Assert.Contains("not resident", table, StringComparison.Ordinal);
        Assert.Contains(MemoryPlan.FormatBytes(plan.Total), table, StringComparison.Ordinal);
        Assert.Contains("1024.00 GiB (test); fits", table, StringComparison.Ordinal);
        Assert.Contains("does NOT fit", plan.ToTable(new DeviceMemoryInfo(1, 1, 0, "test")), StringComparison.Ordinal);
        Assert.Equal("1.50 KiB", MemoryPlan.FormatBytes(1536));
        Assert.Equal("2.00 GiB", MemoryPlan.FormatBytes(2L << 30));
    }

    [Fact]
    public void Bad_shapes_are_refused_naming_the_field()
    {
        var e = Assert.Throws<ArgumentException>(() => MemoryPlan.Ppo(Tiny, Tiny, Tiny, Shape with { ResponseLength = 13 }, backend));
        Assert.Contains("17 exceeds the actor's maximum sequence length of 16", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => MemoryPlan.OnlineDpo(Tiny, Tiny, Shape with { Minibatch = 0 }, backend));
        Assert.Contains("minibatch", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Host_memory_reads_mem_available_and_the_cpu_backend_reports_it()
    {
        string path = Path.GetTempFileName();
        try
        {
            File.WriteAllLines(path, ["MemTotal:       16000000 kB", "MemFree:         1000 kB", "MemAvailable:    8000000 kB"]);
            Assert.Equal(8000000L * 1024, HostMemory.ReadMemAvailable(path));
            File.WriteAllLines(path, ["MemTotal:       16000000 kB"]);
            Assert.Null(HostMemory.ReadMemAvailable(path));
            File.WriteAllLines(path, ["MemAvailable:    lots"]);
            Assert.Null(HostMemory.ReadMemAvailable(path));
        }
        finally
        {
            File.Delete(path);
        }

        Assert.Null(HostMemory.ReadMemAvailable(Path.Combine(Path.GetTempPath(), Guid.NewGuid().ToString("N"))));
        var memory = backend.QueryMemory();
        Assert.True(memory.AvailableBytes > 0 && memory.AvailableBytes <= memory.TotalBytes, memory.ToString());
        Assert.False(string.IsNullOrEmpty(memory.Source));
    }

    [CudaFact]
    public void Cuda_backend_reports_free_device_memory_and_its_log_prob_workspace()
    {
        Assert.True(CudaBackend.TryCreate(out var cuda, out string reason), reason);
        using (cuda)
        {
            var before = cuda!.QueryMemory();
            Assert.Equal("cuMemGetInfo (free device memory)", before.Source);
            Assert.InRange(before.AvailableBytes, 1, before.TotalBytes);
            using (var buffer = cuda.Allocate(256L << 20))
            {
                var during = cuda.QueryMemory();
                Assert.True(during.AvailableBytes <= before.AvailableBytes - (255L << 20), $"{before} then {during}");
                Assert.True(during.AllocatedBytes >= before.AllocatedBytes + (256L << 20), $"{before} then {during}");
            }

            long workspace = cuda.TokenLogProbWorkspaceBytes(4096, 50257);
            Assert.InRange(workspace, 50257L * 4, (256L << 20) + (1L << 20));
            Assert.Equal(0, cuda.TokenLogProbWorkspaceBytes(0, 50257));
        }
    }

    private static RoleMemory Row(MemoryPlan plan, string role) => plan.Roles.Single(r => r.Role == role);
}
