using System.Text.Json;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Tests.Support;
using Engine.Tests.Training;
using Engine.Training.Rl.Memory;
using Xunit;

namespace Engine.Tests.Rl;

/// <summary><c>engine info --plan ppo|online-dpo</c>: the same plan as the library, from config.json files alone.</summary>
[Collection("Console")]
public sealed class MemoryPlanCliTests : IDisposable
{
    private static readonly TransformerConfig Actor = TransformerConfig.Llama(96, 64, layers: 2, channels: 32, heads: 4, kvHeads: 2);
    private static readonly TransformerConfig Reward = TransformerConfig.Gpt2(96, 64, layers: 1, channels: 16, heads: 2) with { Head = HeadKind.Scalar };

    // Llama, F = 96: embedding 96·32, per layer two norms 2·32, q and o 32·32 each, k and v 32·16 each (NKV 2 × HS 8),
    // gate, up and down 32·96 each (12 352), final norm 32: 3072 + 2·12 352 + 32 (tied head).
    private const long ActorParameters = 27808;

    private readonly TempDirectory dir = new();

    public MemoryPlanCliTests()
    {
        Directory.CreateDirectory(dir.Sub("actor"));
        Directory.CreateDirectory(dir.Sub("rm"));
        File.WriteAllText(Path.Combine(dir.Sub("actor"), HfCheckpoint.ConfigFile), HfConfig.ToJson(Actor));
        File.WriteAllText(Path.Combine(dir.Sub("rm"), HfCheckpoint.ConfigFile), HfConfig.ToJson(Reward));
    }

    public void Dispose() => dir.Dispose();

    [Fact]
    public void Info_plan_ppo_prints_the_table_and_the_json_of_the_library_plan()
    {
        string[] args =
        [
            "info", "--plan", "ppo", "--actor", dir.Sub("actor"), "--reward", dir.Sub("rm"),
            "--rollout-batch", "8", "--minibatch", "2", "--prompt-length", "16", "--response-length", "8",
        ];
        var (code, stdout, stderr) = CliRun.Engine(args);
        Assert.True(code == 0, stderr);
        Assert.Contains("memory plan: ppo on cpu: rollout 8 × (prompt 16 + response 8)", stdout, StringComparison.Ordinal);
        Assert.Contains("  critic", stdout, StringComparison.Ordinal);
        Assert.Contains("available: ", stdout, StringComparison.Ordinal);

        (code, stdout, stderr) = CliRun.Engine([.. args, "--json", "--cached-ref"]);
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        using var backend = new CpuBackend(1);
        var expected = MemoryPlan.Ppo(
            Actor, Reward, Reward, new RlMemoryShape { RolloutBatch = 8, Minibatch = 2, PromptLength = 16, ResponseLength = 8, CachedReferenceLogProbs = true }, backend);
        Assert.Equal(expected.Total, doc.RootElement.GetProperty("total").GetInt64());
        var roles = doc.RootElement.GetProperty("roles").EnumerateArray().ToList();
        Assert.Equal(expected.Roles.Select(r => r.Role), roles.Select(r => r.GetProperty("role").GetString()));
        Assert.Equal(0, roles.Single(r => r.GetProperty("role").GetString() == "reference").GetProperty("total").GetInt64());
        Assert.True(doc.RootElement.GetProperty("available").GetInt64() > 0);
    }

    [Fact]
    public void Info_plan_grpo_is_the_library_plan_with_a_reference_only_when_one_is_given()
    {
        string[] args =
        [
            "info", "--plan", "grpo", "--actor", dir.Sub("actor"),
            "--rollout-batch", "8", "--minibatch", "2", "--prompt-length", "16", "--response-length", "8", "--json",
        ];
        using var backend = new CpuBackend(1);
        var shape = new RlMemoryShape { RolloutBatch = 8, Minibatch = 2, PromptLength = 16, ResponseLength = 8 };
        foreach (bool withReference in new[] { false, true })
        {
            var (code, stdout, stderr) = CliRun.Engine(withReference ? [.. args, "--ref", dir.Sub("actor")] : args);
            Assert.True(code == 0, stderr);
            using var doc = JsonDocument.Parse(stdout);
            var expected = MemoryPlan.Grpo(Actor, shape, backend, withReference ? Actor : null, separateReference: withReference);
            Assert.Equal(expected.Total, doc.RootElement.GetProperty("total").GetInt64());
            var roles = doc.RootElement.GetProperty("roles").EnumerateArray().Select(r => r.GetProperty("role").GetString()).ToList();
            Assert.Equal(expected.Roles.Select(r => r.Role), roles);
            Assert.Equal(withReference, roles.Contains("reference"));
            Assert.DoesNotContain("critic", roles);
        }
    }

    [Theory]
    [InlineData("ppo")]
    [InlineData("online-dpo")]
    [InlineData("dpo")]
    public void Info_plan_with_lora_counts_the_weights_of_a_ref_of_its_own(string method)
    {
        Assert.Equal(ActorParameters, Transformer.ParameterCount(Actor));
        string[] args =
        [
            "info", "--plan", method, "--actor", dir.Sub("actor"), .. method == "dpo" ? Array.Empty<string>() : ["--reward", dir.Sub("rm")],
            "--rollout-batch", "8", "--minibatch", "2", "--prompt-length", "16", "--response-length", "8", "--lora", "r=2,alpha=4", "--json",
        ];
        var (code, stdout, stderr) = CliRun.Engine(args);
        Assert.True(code == 0, stderr);
        using var baseOnly = JsonDocument.Parse(stdout);
        (code, stdout, stderr) = CliRun.Engine([.. args, "--ref", dir.Sub("actor")]);
        Assert.True(code == 0, stderr);
        using var separate = JsonDocument.Parse(stdout);

        static JsonElement Reference(JsonDocument doc) => doc.RootElement.GetProperty("roles").EnumerateArray().Single(r => r.GetProperty("role").GetString() == "reference");
        Assert.Equal(0, Reference(baseOnly).GetProperty("weights").GetInt64());
        Assert.Contains("adapters off", Reference(baseOnly).GetProperty("note").GetString(), StringComparison.Ordinal);
        Assert.Equal(ActorParameters * 4, Reference(separate).GetProperty("weights").GetInt64());
        Assert.Equal(baseOnly.RootElement.GetProperty("total").GetInt64() + (ActorParameters * 4), separate.RootElement.GetProperty("total").GetInt64());
    }

    [Fact]
    public void Info_plan_online_dpo_takes_policy_and_the_plain_info_still_works()
    {
        var (code, stdout, stderr) = CliRun.Engine(["info", "--plan", "online-dpo", "--policy", dir.Sub("actor"), "--reward", dir.Sub("rm"), "--prompt-length", "16", "--response-length", "16"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("memory plan: online-dpo", stdout, StringComparison.Ordinal);
        Assert.Contains("  policy", stdout, StringComparison.Ordinal);

        (code, stdout, stderr) = CliRun.Engine(["info", dir.Sub("actor")]);
        Assert.True(code == 0, stderr);
        Assert.Contains($"parameters: {Transformer.ParameterCount(Actor):N0}", stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("no-reward", "needs --reward")]
    [InlineData("model-dir", "give no MODEL_DIR")]
    [InlineData("too-long", "exceeds the actor's maximum sequence length of 64")]
    [InlineData("critic-for-dpo", "--critic applies to --plan ppo only")]
    [InlineData("missing-config", "--actor:")]
    [InlineData("reward-for-grpo", "--reward does not apply to --plan grpo")]
    public void Bad_plan_flags_are_one_line_errors(string kind, string message)
    {
        string[] args = kind switch
        {
            "no-reward" => ["info", "--plan", "ppo", "--actor", dir.Sub("actor")],
            "model-dir" => ["info", dir.Sub("actor"), "--plan", "ppo", "--actor", dir.Sub("actor"), "--reward", dir.Sub("rm")],
            "too-long" => ["info", "--plan", "ppo", "--actor", dir.Sub("actor"), "--reward", dir.Sub("rm"), "--prompt-length", "60"],
            "critic-for-dpo" => ["info", "--plan", "online-dpo", "--actor", dir.Sub("actor"), "--reward", dir.Sub("rm"), "--critic", dir.Sub("rm")],
            "reward-for-grpo" => ["info", "--plan", "grpo", "--actor", dir.Sub("actor"), "--reward", dir.Sub("rm")],
            _ => ["info", "--plan", "ppo", "--actor", dir.Sub("nowhere"), "--reward", dir.Sub("rm")],
        };
        var (code, _, stderr) = CliRun.Engine(args);
        Assert.Equal(1, code);
        Assert.StartsWith("engine: error:", stderr.Trim(), StringComparison.Ordinal);
        Assert.Contains(message, stderr, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', stderr.Trim());
    }
}
