using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Engine.Training.Pipeline;

/// <summary>One point of a training curve.</summary>
/// <param name="Step">The optimizer step.</param>
/// <param name="Value">The value logged at that step.</param>
public readonly record struct CurvePoint(long Step, double Value);

/// <summary>A named series of points (e.g. "train loss", "chosen reward").</summary>
/// <param name="Name">The legend label, in words (not a metric key).</param>
/// <param name="Points">The points in step order.</param>
public sealed record Curve(string Name, IReadOnlyList<CurvePoint> Points)
{
    /// <summary>The y-axis title: what the value is, in words; a stage's curves with the same axis share a chart.</summary>
    public string Axis { get; init; } = "value";
}

/// <summary>One answer sampled from a stage's model on a held-out prompt.</summary>
/// <param name="Prompt">The prompt.</param>
/// <param name="Response">The generated text after it.</param>
/// <param name="GoldReward">Its gold reward.</param>
/// <param name="Correct">Whether it starts with the right answer.</param>
public sealed record SampledAnswer(string Prompt, string Response, double GoldReward, bool Correct);

/// <summary>Held-out evaluation of one stage; a value is null where it does not apply or was not measured.</summary>
public sealed record StageEvaluation
{
    /// <summary>Mean gold reward of sampled answers to the held-out prompts.</summary>
    public double? GoldRewardMean { get; init; }

    /// <summary>Share of sampled answers that start with the correct fact.</summary>
    public double? Accuracy { get; init; }

    /// <summary>Mean length of the sampled answers in tokens.</summary>
    public double? MeanResponseTokens { get; init; }

    /// <summary>Mean per-sequence KL(policy ‖ SFT model) over the sampled answers.</summary>
    public double? KlToSft { get; init; }

    /// <summary>For a reward model: share of held-out pairs it orders as the gold reward does.</summary>
    public double? PairwiseAccuracy { get; init; }
}

/// <summary>What one stage of the pipeline did: its curves, its evaluation and some of its answers.</summary>
/// <param name="Stage">"pretrain", "sft", "rm", "dpo", …</param>
public sealed record StageReport(string Stage)
{
    /// <summary>
    /// The stage's training curves, loss first: the report draws one chart per <see cref="Curve.Axis"/>, in the order
    /// the axes first appear (e.g. train and eval loss; the DPO implicit rewards of chosen and rejected; KL).
    /// </summary>
    public IReadOnlyList<Curve> Curves { get; init; } = [];

    /// <summary>The held-out evaluation.</summary>
    public StageEvaluation Evaluation { get; init; } = new();

    /// <summary>The first answer sampled on each held-out prompt.</summary>
    public IReadOnlyList<SampledAnswer> Samples { get; init; } = [];

    /// <summary>Optimizer steps the stage ran (skipped ones included); null for a stage that did not train.</summary>
    public int? Steps { get; init; }

    /// <summary>Steps whose update was dropped: nothing to learn from (no micro-batch that counts) or a non-finite value.</summary>
    public int? SkippedSteps { get; init; }
}

/// <summary>How the policy stages were evaluated: the sizes the report's column definitions and sample tables quote.</summary>
/// <param name="Prompts">Held-out prompts.</param>
/// <param name="SamplesPerPrompt">Answers sampled per prompt.</param>
/// <param name="Temperature">Sampling temperature.</param>
/// <param name="HeldOutPairs">Held-out preference pairs the reward model is scored on.</param>
public sealed record EvaluationSetup(int Prompts, int SamplesPerPrompt, double Temperature, int HeldOutPairs);

/// <summary>
/// The outcome of a pipeline run: written as <c>summary.json</c> (the evaluation table, machine-read),
/// <c>report.html</c> (one self-contained page: charts, table, sampled answers) and a console table.
/// </summary>
/// <param name="Stages">The stages in the order they ran.</param>
public sealed record PipelineReport(IReadOnlyList<StageReport> Stages)
{
    /// <summary>The page's heading.</summary>
    public string Title { get; init; } = "Engine pipeline: pretrain → SFT → RM → PPO, DPO, online DPO, GRPO";

    /// <summary>Lines shown under the heading (seed, model size, wall time, …).</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];

    /// <summary>A smoke test (<c>--quick</c>): the report says at its top, and summary.json in <c>smoke_test</c>, that its numbers mean nothing.</summary>
    public bool SmokeTest { get; init; }

    /// <summary>How the policy stages were evaluated (null: the report quotes no sizes).</summary>
    public EvaluationSetup? Setup { get; init; }

    /// <summary>What a smoke test's report, summary and console say about its numbers.</summary>
    public const string SmokeTestNote =
        "SMOKE TEST (--quick): a tiny model trained a few steps per stage, only to check that every stage runs. Its numbers mean nothing: "
        + "expect gibberish answers, 0 % accuracy and KL values near zero, even negative. Run without --quick for real results.";

    /// <summary>
    /// <c>{"smoke_test", ["note",] "stages": [{"stage", "gold_reward_mean", "accuracy", "mean_response_tokens", "kl_to_sft",
    /// "steps", "skipped_steps"}, …]}</c>: <c>smoke_test</c> true for a <c>--quick</c> run, with <see cref="SmokeTestNote"/> as
    /// <c>note</c>; the stage keys always (null when not measured), plus <c>pairwise_accuracy</c> on stages that have one (the RM).
    /// </summary>
    public string ToSummaryJson()
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteBoolean("smoke_test", SmokeTest);
            if (SmokeTest)
            {
                json.WriteString("note", SmokeTestNote);
            }

            json.WriteStartArray("stages");
            foreach (var stage in Stages)
            {
                var e = stage.Evaluation;
                json.WriteStartObject();
                json.WriteString("stage", stage.Stage);
                WriteNumber(json, "gold_reward_mean", e.GoldRewardMean);
                WriteNumber(json, "accuracy", e.Accuracy);
                WriteNumber(json, "mean_response_tokens", e.MeanResponseTokens);
                WriteNumber(json, "kl_to_sft", e.KlToSft);
                WriteNumber(json, "steps", stage.Steps);
                WriteNumber(json, "skipped_steps", stage.SkippedSteps);
                if (e.PairwiseAccuracy is not null)
                {
                    WriteNumber(json, "pairwise_accuracy", e.PairwiseAccuracy);
                }

                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }

    /// <summary>
    /// The evaluation table as aligned plain text, for the console; "-" where a value does not apply. A smoke test's
    /// table is preceded by <see cref="SmokeTestNote"/>.
    /// </summary>
    public string ToTextTable()
    {
        string[] header = ["stage", "gold reward", "accuracy", "resp tokens", "KL to SFT", "pair acc", "skipped steps"];
        var rows = new List<string[]> { header };
        rows.AddRange(Stages.Select(s => new[]
        {
            s.Stage,
            Format(s.Evaluation.GoldRewardMean, "0.000"),
            Format(s.Evaluation.Accuracy, "0.0%"),
            Format(s.Evaluation.MeanResponseTokens, "0.0"),
            Format(s.Evaluation.KlToSft, "0.000"),
            Format(s.Evaluation.PairwiseAccuracy, "0.0%"),
            Skipped(s),
        }));
        var widths = Enumerable.Range(0, header.Length).Select(c => rows.Max(r => r[c].Length)).ToArray();
        var sb = new StringBuilder();
        for (int r = 0; r < rows.Count; r++)
        {
            // Stage names left-aligned, numbers right-aligned so their decimal points line up.
            sb.AppendJoin("  ", rows[r].Select((cell, c) => c == 0 ? cell.PadRight(widths[c]) : cell.PadLeft(widths[c]))).Append('\n');
            if (r == 0)
            {
                sb.AppendJoin("  ", widths.Select(w => new string('-', w))).Append('\n');
            }
        }

        return SmokeTest ? $"{SmokeTestNote}\n{sb}" : sb.ToString();
    }

    /// <summary>The self-contained HTML page (inline CSS and SVG; no scripts, no external references).</summary>
    public string ToHtml() => ReportHtml.Render(this);

    /// <summary>Writes <c>summary.json</c> and <c>report.html</c> into <paramref name="directory"/> (created if missing).</summary>
    public void Write(string directory)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "summary.json"), ToSummaryJson(), new UTF8Encoding(false));
        File.WriteAllText(Path.Combine(directory, "report.html"), ToHtml(), new UTF8Encoding(false));
    }

    /// <summary>"3 of 100" skipped steps, or "-" for a stage that did not train.</summary>
    internal static string Skipped(StageReport stage) =>
        stage.Steps is int steps ? string.Create(CultureInfo.InvariantCulture, $"{stage.SkippedSteps ?? 0} of {steps}") : "-";

    internal static string Format(double? value, string format) =>
        value is double v && double.IsFinite(v) ? v.ToString(format, CultureInfo.InvariantCulture) : "-";

    private static void WriteNumber(Utf8JsonWriter json, string name, double? value)
    {
        // JSON has no NaN or infinity; a value that did not come out finite was, in effect, not measured.
        if (value is double v && double.IsFinite(v))
        {
            json.WriteNumber(name, v);
        }
        else
        {
            json.WriteNull(name);
        }
    }
}
