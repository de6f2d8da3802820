using System.Globalization;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Tests.Cli;
using Engine.Tests.Objectives.Preference;
using Engine.Tests.Training;
using Engine.Training.Rl.Memory;
using Xunit;

namespace Engine.Tests.Rl;

/// <summary>
/// <c>engine dpo</c> (every --loss) and <c>engine kto</c> print their memory plan before the reference and the training
/// buffers are allocated, as PPO, GRPO and online DPO do: the roles the run has, with weights, gradients and moments
/// checked against parameter counts worked out by hand.
/// </summary>
[Trait("Category", "Training")]
[Collection("Console")]
public sealed class PreferencePlanCliTests : IDisposable
{
    // SaveTinyModel's GPT-2, V = 257, T = 32, C = 16, one layer: wte 257·16 = 4112, wpe 32·16 = 512; the layer's two
    // norms 2·2·16 = 64, c_attn 16·48 + 48 = 816, attn c_proj 16·16 + 16 = 272, c_fc 16·64 + 64 = 1088, mlp c_proj
    // 64·16 + 16 = 1040; final norm 32 (tied head): 7936.
    private const long Parameters = 7936;

    // LoRA r = 2 on every linear: r·(in + out) for c_attn (16, 48), attn c_proj (16, 16), c_fc (16, 64), mlp c_proj (64, 16).
    private const long Adapters = (2 * (16 + 48)) + (2 * (16 + 16)) + (2 * (16 + 64)) + (2 * (64 + 16));

    private static readonly string[] Fast = ["--set", "max_steps=1", "--set", "batch_size=2", "--threads", "2"];

    private readonly TempDirectory dir = new();

    private readonly PreferenceFiles files;

    public PreferencePlanCliTests() => files = new PreferenceFiles(dir).Write();

    private string Model => files.Model;

    private string Pairs => files.Pairs;

    private string Unpaired => files.Unpaired;

    public void Dispose() => dir.Dispose();

    [Fact]
    public void Dpo_prints_the_policy_and_a_resident_reference_before_training_and_matches_the_library_plan()
    {
        string stdout = Run(["dpo", "--model", Model, "--data", Pairs, "--out", dir.Sub("dpo"), .. Fast]);

        // batch_size 2 pairs = 4 rows of max_length 32 (the context, max_length's default cut to it).
        Assert.Contains("memory plan: dpo on cpu: micro-batch of 4 rows (chosen + rejected) × 32 tokens", stdout, StringComparison.Ordinal);
        Assert.Contains(Row("policy", Parameters, Parameters * 4, Parameters * 4, 2 * Parameters * 4), stdout, StringComparison.Ordinal);
        Assert.Contains(Row("reference", Parameters, Parameters * 4, 0, 0), stdout, StringComparison.Ordinal);
        Assert.Contains("available: ", stdout, StringComparison.Ordinal);
        Assert.True(stdout.IndexOf("memory plan", StringComparison.Ordinal) < stdout.IndexOf("dpo:", StringComparison.Ordinal), stdout);

        using var backend = new CpuBackend(1);
        var config = TransformerConfig.Gpt2(257, 32, layers: 1, channels: 16, heads: 2);
        var expected = MemoryPlan.Dpo(config, new RlMemoryShape { RolloutBatch = 4, Minibatch = 4, PromptLength = 16, ResponseLength = 16 }, backend);
        Assert.Contains($"  {"total",-10} {"",9} {"",11} {"",11} {"",11} {"",11} {"",11} {MemoryPlan.FormatBytes(expected.Total),11}", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void With_lora_the_reference_is_the_base_with_adapters_off_unless_ref_and_precomputed_log_probs_leave_none_resident()
    {
        string stdout = Run(["dpo", "--model", Model, "--data", Pairs, "--out", dir.Sub("lora"), "--lora", "r=2,alpha=4,dropout=0", .. Fast]);
        long f32 = 4;
        Assert.Contains(Row("policy", Adapters, (Parameters + Adapters) * f32, Adapters * f32, 2 * Adapters * f32), stdout, StringComparison.Ordinal);
        Assert.Contains($"LoRA r=2: {Parameters.ToString("N0", CultureInfo.CurrentCulture)} frozen base parameters, {Adapters.ToString("N0", CultureInfo.CurrentCulture)} trained", stdout, StringComparison.Ordinal);
        Assert.Contains(Row("reference", Parameters, 0, 0, 0), stdout, StringComparison.Ordinal);
        Assert.Contains("the policy's base with adapters off: no weights of its own", stdout, StringComparison.Ordinal);

        // --ref beside LoRA: a model of its own, its weights counted in full.
        stdout = Run(["dpo", "--model", Model, "--data", Pairs, "--out", dir.Sub("lora-ref"), "--lora", "r=2,alpha=4,dropout=0", "--ref", Model, .. Fast]);
        Assert.Contains(Row("reference", Parameters, Parameters * f32, 0, 0), stdout, StringComparison.Ordinal);

        // Precomputed reference log-probs: the reference row holds nothing.
        stdout = Run(["dpo", "--model", Model, "--data", Pairs, "--out", dir.Sub("pre"), "--precompute-ref", .. Fast]);
        Assert.Contains($"  {"reference",-10} {"0.01M",9} {"-",11} {"-",11} {"-",11} {"-",11} {"-",11} {"-",11}  log-probs precomputed once: not resident", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void A_reference_free_loss_list_has_no_reference_and_kto_counts_its_kl_rows()
    {
        string stdout = Run(["dpo", "--model", Model, "--data", Pairs, "--out", dir.Sub("simpo"), "--loss", "simpo,sft", .. Fast]);
        Assert.Contains("memory plan: dpo on cpu: micro-batch of 4 rows", stdout, StringComparison.Ordinal);
        Assert.Contains(Row("policy", Parameters, Parameters * 4, Parameters * 4, 2 * Parameters * 4), stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("  reference", stdout, StringComparison.Ordinal);

        // The preference family with a reference (a list) plans one as DPO does.
        stdout = Run(["dpo", "--model", Model, "--data", Pairs, "--out", dir.Sub("family"), "--loss", "sigmoid,sft", .. Fast]);
        Assert.Contains(Row("reference", Parameters, Parameters * 4, 0, 0), stdout, StringComparison.Ordinal);

        // KTO: batch_size 2 examples and their 2 KL rows.
        stdout = Run(["kto", "--model", Model, "--data", Unpaired, "--out", dir.Sub("kto"), .. Fast]);
        Assert.Contains("memory plan: kto on cpu: micro-batch of 4 rows (examples + KL rows) × 32 tokens", stdout, StringComparison.Ordinal);
        Assert.Contains(Row("reference", Parameters, Parameters * 4, 0, 0), stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void A_run_the_plan_says_does_not_fit_is_refused_before_training()
    {
        // 16 384 pairs of 1024 tokens a micro-batch (batch_size × max_length at its limit): hundreds of GiB of activations.
        string model = dir.Sub("long");
        CliHarness.SaveTinyModel(model, maxLength: 1024);
        string output = dir.Sub("big");
        var (code, stdout, error) = CliHarness.Run(["dpo", "--model", model, "--data", Pairs, "--out", output, "--loss", "simpo", "--set", "batch_size=16384", "--threads", "2"]);
        Assert.Equal(1, code);
        Assert.Contains("memory plan: dpo on cpu: micro-batch of 32768 rows", stdout, StringComparison.Ordinal);
        Assert.Contains("does NOT fit", stdout, StringComparison.Ordinal);
        Assert.Contains("engine: error: dpo needs ", error, StringComparison.Ordinal);
        Assert.Contains("the largest role is the policy", error, StringComparison.Ordinal);
        Assert.Contains("levers: minibatch 32768 → 16384", error, StringComparison.Ordinal);
        Assert.DoesNotContain("step 1", stdout, StringComparison.Ordinal);
        Assert.False(Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any(e => !e.EndsWith(".lock", StringComparison.Ordinal)), "the refused run wrote into --out");
    }

    // The start of a plan row: role, parameters in millions, weights, gradients and optimizer state.
    private static string Row(string role, long parameters, long weights, long gradients, long optimizer) =>
        $"  {role,-10} {string.Create(CultureInfo.InvariantCulture, $"{parameters / 1e6:F2}M"),9} {Cell(weights)} {Cell(gradients)} {Cell(optimizer)} ";

    private static string Cell(long bytes) => bytes == 0 ? $"{"-",11}" : $"{MemoryPlan.FormatBytes(bytes),11}";

    private static string Run(string[] args)
    {
        var (code, stdout, error) = CliHarness.Run(args);
        Assert.True(code == 0, error);
        return stdout;
    }
}
