using System.Text.Json;
using Engine.Core.Cpu;
using Engine.Tests.Training;
using Engine.Training;
using Engine.Training.Data;
using Engine.Training.Rl.Ppo;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Tests.Rl;

public sealed class PpoTrainerTests(ITestOutputHelper output) : IDisposable
{
    private readonly CpuBackend backend = new(2);

    public void Dispose() => backend.Dispose();

    [Fact]
    public void The_mean_score_rises_on_a_reward_for_one_token_while_the_kl_stays_bounded()
    {
        using var dir = new TempDirectory();
        using var roles = new PpoHarness.Roles(backend);
        var options = PpoHarness.Options(dir.Path, steps: 30);
        var trainer = new PpoTrainer(roles.Models, PpoHarness.Prompts(32, 1), null, PpoHarness.Eos, options);
        var reports = new List<PpoProgress>();
        var result = trainer.Run(new SyncProgress<PpoProgress>(reports.Add));
        Assert.Equal(TrainingStatus.Completed, result.Status);
        Assert.Equal(30, reports.Count);
        foreach (var p in reports)
        {
            output.WriteLine($"step {p.Step}: score {p.Score:F3} kl {p.Kl:F3} β {p.KlCoef:F4} policy {p.PolicyLoss:F4} value {p.ValueLoss:F4} len {p.ResponseLength:F2} eos {p.EosRate:F2}");
        }

        double first = reports.Take(5).Average(p => p.Score), last = reports.TakeLast(5).Average(p => p.Score);
        Assert.True(last > first + 0.5, $"mean score went from {first:F3} to {last:F3}");

        // β = 0.1 against a reward gap of 2: the KL-regularised optimum makes the last token the rewarded one, which costs
        // about −log π_ref(rewarded) ≈ log V nats; the KL must settle near that, not run away.
        double lateKl = reports.TakeLast(10).Average(p => p.Kl);
        Assert.InRange(lateKl, 0.5, 6.0);
        Assert.All(reports, p => Assert.InRange(p.Kl, -1.0, 8.0));

        var lines = File.ReadAllLines(Path.Combine(dir.Path, Trainer<SequenceBatch>.MetricsFile));
        Assert.Equal(30, lines.Length);
        using var doc = JsonDocument.Parse(lines[^1]);
        foreach (string key in (string[])["objective/scores", "objective/kl", "objective/entropy", "policy/clipfrac_avg", "policy/approxkl_avg",
            "loss/policy_avg", "loss/value_avg", "val/explained_variance", "val/response_length", "val/eos_rate", "time/generation", "time/training", "time/generation_share"])
        {
            Assert.True(doc.RootElement.TryGetProperty(key, out var v) && double.IsFinite(v.GetDouble()), $"metrics.jsonl lacks a finite {key}");
        }
    }
}
