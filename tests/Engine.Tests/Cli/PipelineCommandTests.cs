using System.Text.Json;
using Xunit;

namespace Engine.Tests.Cli;

[Collection("Console")]
public sealed class PipelineCommandTests : IDisposable
{
    private readonly string dir = Path.Combine(Path.GetTempPath(), "engine-pipeline-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(dir))
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void QuickRunWritesEveryStageSummaryAndReport()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var (savedOut, savedError) = (Console.Out, Console.Error);
        Console.SetOut(output);
        Console.SetError(error);
        int code;
        try
        {
            code = Engine.Cli.Program.Main(["pipeline", "--quick", "--out", dir, "--seed", "3", "--threads", "2"]);
        }
        finally
        {
            Console.SetOut(savedOut);
            Console.SetError(savedError);
        }

        Assert.True(code == 0, $"exit {code}: {error}\n{output}");
        using var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "summary.json")));
        var stages = summary.RootElement.GetProperty("stages").EnumerateArray().ToList();
        Assert.Equal<string>(["pretrain", "sft", "rm", "ppo", "dpo", "online_dpo", "grpo"], stages.Select(s => s.GetProperty("stage").GetString()!).ToList());
        foreach (var stage in stages)
        {
            foreach (string key in new[] { "gold_reward_mean", "accuracy", "mean_response_tokens", "kl_to_sft" })
            {
                Assert.True(stage.TryGetProperty(key, out _), $"{stage.GetProperty("stage")} lacks {key}");
            }

            bool policy = stage.GetProperty("stage").GetString() != "rm";
            if (policy)
            {
                double reward = stage.GetProperty("gold_reward_mean").GetDouble();
                Assert.InRange(reward, -2.0, 1.0);
                Assert.InRange(stage.GetProperty("accuracy").GetDouble(), 0.0, 1.0);
                Assert.True(stage.GetProperty("mean_response_tokens").GetDouble() > 0);
                Assert.Equal(JsonValueKind.Number, stage.GetProperty("kl_to_sft").ValueKind);
            }
        }

        var rm = stages.Single(s => s.GetProperty("stage").GetString() == "rm");
        Assert.InRange(rm.GetProperty("pairwise_accuracy").GetDouble(), 0.0, 1.0);
        Assert.Equal(0.0, stages[1].GetProperty("kl_to_sft").GetDouble());
        Assert.True(new FileInfo(Path.Combine(dir, "report.html")).Length > 0);
        foreach (string stage in new[] { "pretrain", "sft", "rm", "ppo", "dpo", "online_dpo", "grpo" })
        {
            Assert.True(File.Exists(Path.Combine(dir, stage, "final", "config.json")), $"{stage}/final/config.json");
            Assert.True(File.Exists(Path.Combine(dir, stage, "metrics.jsonl")), $"{stage}/metrics.jsonl");
        }

        Assert.Contains("gold reward", output.ToString(), StringComparison.Ordinal);
        Assert.Contains("\ngrpo: held-out gold reward ", output.ToString(), StringComparison.Ordinal);
        Assert.Contains("grpo: KL to SFT ", output.ToString(), StringComparison.Ordinal);

        // A smoke test says so: first and (before the table) last on the console, in summary.json and atop report.html.
        string console = output.ToString();
        Assert.StartsWith(Engine.Training.Pipeline.PipelineReport.SmokeTestNote, console, StringComparison.Ordinal);
        Assert.Contains(Engine.Training.Pipeline.PipelineReport.SmokeTestNote + "\nstage ", console, StringComparison.Ordinal);
        Assert.True(summary.RootElement.GetProperty("smoke_test").GetBoolean());
        string html = File.ReadAllText(Path.Combine(dir, "report.html"));
        Assert.Contains("<p class=\"smoke\">SMOKE TEST", html, StringComparison.Ordinal);

        // Chart legends are words, not metric keys such as objective/kl or eval_loss.
        var legends = System.Xml.Linq.XDocument.Parse(html.Replace("<!DOCTYPE html>", "", StringComparison.Ordinal))
            .Descendants("text").Where(t => (string?)t.Attribute("class") == "lg").Select(t => t.Value).ToList();
        Assert.NotEmpty(legends);
        Assert.All(legends, name => Assert.DoesNotMatch("[/_]", name));
        Assert.Contains("mean reward of the samples", legends);
        Assert.Contains("groups whose samples all tied", legends);

        // Each stage's summary line repeats the loss of its last progress line.
        var lines = console.Split('\n');
        foreach (string stage in new[] { "pretrain", "sft", "rm", "dpo", "online_dpo" })
        {
            string last = lines.Last(l => l.StartsWith(stage + ": step ", StringComparison.Ordinal));
            string final = lines.Single(l => System.Text.RegularExpressions.Regex.IsMatch(l, $"^{stage}: \\d+ steps"));
            Assert.Equal(LossOf(last), LossOf(final));
        }

        static string LossOf(string line) => System.Text.RegularExpressions.Regex.Match(line, @"loss (\S+)").Groups[1].Value;
    }
}
