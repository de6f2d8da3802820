using System.Globalization;
using System.Text;

namespace Engine.Training.Pipeline;

/// <summary>
/// Renders a <see cref="PipelineReport"/> as one self-contained HTML page. The markup is also well-formed XML (void
/// elements self-closed, everything escaped) so tests can parse it and it survives any XML tool.
/// </summary>
internal static class ReportHtml
{
    private const int MaxSamplePrompts = 8;

    // Two charts side by side fill the 1140-pixel page.
    private const int ChartWidth = 560;

    private const string Css = """
        body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1140px; color: #222; }
        h1 { font-size: 24px; margin-bottom: 4px; }
        h2 { font-size: 19px; margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
        .notes { color: #555; margin: 2px 0; font-size: 14px; }
        table { border-collapse: collapse; font-size: 14px; }
        th, td { border: 1px solid #ddd; padding: 5px 10px; vertical-align: top; }
        th { background: #f3f3f3; }
        td.num { text-align: right; font-variant-numeric: tabular-nums; }
        .charts { display: flex; flex-wrap: wrap; gap: 12px; }
        svg.chart { border: 1px solid #e4e4e4; }
        svg .ct { font-size: 14px; font-weight: bold; fill: #222; }
        svg .tk { font-size: 11px; fill: #555; }
        svg .al { font-size: 12px; fill: #333; }
        svg .lg { font-size: 12px; fill: #222; }
        svg .nd { font-size: 13px; fill: #999; }
        svg .grid { stroke: #ececec; stroke-width: 1; }
        svg .axis { stroke: #444; stroke-width: 1; }
        table.samples { table-layout: fixed; width: 100%; }
        table.samples td { font-family: Menlo, Consolas, monospace; font-size: 12px; white-space: pre-wrap; word-break: break-word; }
        table.samples td.prompt { font-family: inherit; font-weight: bold; }
        table.samples th.prompt { width: 16%; }
        .good { background: #e9f6ec; }
        .bad { background: #fbeaea; }
        .meh { background: #fdf5e2; }
        .overview { margin-top: 16px; }
        .smoke { background: #fbeaea; border: 2px solid #c0392b; color: #7b1d12; font-weight: bold; padding: 10px 14px; font-size: 15px; }
        ul.defs { font-size: 13px; color: #444; margin: 8px 0; padding-left: 20px; max-width: 1000px; }
        ul.defs li { margin: 2px 0; }
        .legend span { display: inline-block; padding: 1px 8px; margin-right: 8px; border: 1px solid #ddd; }
        p.legend, p.shown { font-size: 13px; color: #444; margin: 6px 0; }
        .score { display: block; color: #666; font-family: inherit; font-size: 11px; margin-top: 3px; }
        """;

    public static string Render(PipelineReport report)
    {
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n");
        sb.Append("<title>").Append(SvgChart.Esc(report.Title)).Append("</title>\n<style>\n").Append(Css).Append("</style>\n</head>\n<body>\n");
        sb.Append("<h1>").Append(SvgChart.Esc(report.Title)).Append("</h1>\n");
        if (report.SmokeTest)
        {
            sb.Append("<p class=\"smoke\">").Append(SvgChart.Esc(PipelineReport.SmokeTestNote)).Append("</p>\n");
        }

        foreach (string note in report.Notes)
        {
            sb.Append("<p class=\"notes\">").Append(SvgChart.Esc(note)).Append("</p>\n");
        }

        EvaluationTable(sb, report);
        Overview(sb, report);
        Samples(sb, report);
        foreach (var stage in report.Stages)
        {
            StageCharts(sb, stage);
        }

        sb.Append("</body>\n</html>\n");
        return sb.ToString();
    }

    /// <summary>A stage's heading, its step count and its charts: one per axis of its curves (loss, rewards, accuracies, KL, …).</summary>
    private static void StageCharts(StringBuilder sb, StageReport stage)
    {
        sb.Append("<h2 id=\"stage-").Append(Id(stage.Stage)).Append("\">Stage: ").Append(SvgChart.Esc(stage.Stage)).Append("</h2>\n");
        if (stage.Steps is int steps)
        {
            string skipped = stage.SkippedSteps is > 0
                ? string.Create(CultureInfo.InvariantCulture, $", {stage.SkippedSteps} of them skipped (update dropped: nothing to learn from, or a non-finite value)")
                : ", none skipped";
            sb.Append("<p class=\"notes\">").Append(SvgChart.Esc(string.Create(CultureInfo.InvariantCulture, $"{steps} training steps{skipped}."))).Append("</p>\n");
        }

        sb.Append("<div class=\"charts\">\n");
        if (stage.Curves.Count == 0)
        {
            sb.Append(SvgChart.Line($"{stage.Stage}: loss", "training step", "loss", [], ChartWidth)).Append('\n');
        }

        foreach (var axis in stage.Curves.GroupBy(c => c.Axis, StringComparer.Ordinal))
        {
            sb.Append(SvgChart.Line($"{stage.Stage}: {axis.Key}", "training step", axis.Key, [.. axis], ChartWidth)).Append('\n');
        }

        sb.Append("</div>\n");
    }

    /// <summary>An HTML id from a stage name: letters, digits and '-' only, since ids may not hold spaces.</summary>
    private static string Id(string name) => string.Concat(name.Select(c => char.IsAsciiLetterOrDigit(c) ? char.ToLowerInvariant(c) : '-'));

    private static void EvaluationTable(StringBuilder sb, PipelineReport report)
    {
        sb.Append("<h2>Held-out evaluation</h2>\n<table class=\"eval\">\n<tr><th>stage</th><th>gold reward (mean)</th><th>accuracy</th>")
          .Append("<th>response tokens (mean)</th><th>KL to SFT</th><th>RM pairwise accuracy</th><th>skipped steps</th></tr>\n");
        foreach (var stage in report.Stages)
        {
            var e = stage.Evaluation;
            sb.Append("<tr><td>").Append(SvgChart.Esc(stage.Stage)).Append("</td>");
            foreach (string cell in new[]
            {
                PipelineReport.Format(e.GoldRewardMean, "0.000"), PipelineReport.Format(e.Accuracy, "0.0%"),
                PipelineReport.Format(e.MeanResponseTokens, "0.0"), PipelineReport.Format(e.KlToSft, "0.000"),
                PipelineReport.Format(e.PairwiseAccuracy, "0.0%"), PipelineReport.Skipped(stage),
            })
            {
                sb.Append("<td class=\"num\">").Append(SvgChart.Esc(cell)).Append("</td>");
            }

            sb.Append("</tr>\n");
        }

        sb.Append("</table>\n<ul class=\"defs\">\n");
        foreach (string line in ColumnDefinitions(report.Setup))
        {
            sb.Append("<li>").Append(SvgChart.Esc(line)).Append("</li>\n");
        }

        sb.Append("</ul>\n");
    }

    /// <summary>One line per column of the evaluation table: what it measures, on what, and how to read it.</summary>
    internal static IReadOnlyList<string> ColumnDefinitions(EvaluationSetup? setup)
    {
        string answers = setup is { } e
            ? string.Create(CultureInfo.InvariantCulture, $"the {e.Prompts * e.SamplesPerPrompt} answers sampled from the stage's model ({e.Prompts} held-out prompts × {e.SamplesPerPrompt} samples at temperature {e.Temperature:0.##})")
            : "the answers sampled from the stage's model on the held-out prompts";
        string pairs = setup is { } p ? string.Create(CultureInfo.InvariantCulture, $"the {p.HeldOutPairs} held-out preference pairs") : "the held-out preference pairs";
        return
        [
            "stage: the model after that stage (pretrain: before any fine-tuning; rm: the reward model, which is not a policy and so has no answers).",
            $"gold reward (mean): the task's known reward averaged over {answers}: +1 when the first word is the right answer, −1 when it is wrong or there is none, minus 0.1 per further word (at most 1). From −2 to 1; higher is better.",
            "accuracy: share of the same answers whose first word is the right answer, the same measure for every stage. It ignores what follows, so a model that answers and then rambles on (pretrain) can have a high accuracy and a low gold reward.",
            "response tokens (mean): mean length of the sampled answers in tokens, end-of-text included.",
            "KL to SFT: mean over the sampled answers of Σ log π(token) − log π_SFT(token), in nats per answer: how far the stage's model has moved from the SFT model (0 for SFT itself). It is estimated from samples, so a model very close to SFT can show a small negative value.",
            $"RM pairwise accuracy: share of {pairs} that the reward model scores chosen above rejected (rm only).",
            "skipped steps: training steps whose update was dropped, of all steps run: nothing to learn from (online DPO: the answers of every sampled prompt tied) or a non-finite loss.",
            "-: does not apply to that stage.",
        ];
    }

    /// <summary>Gold reward and accuracy by stage, as bars in stage order: the story of the whole run at a glance.</summary>
    private static void Overview(StringBuilder sb, PipelineReport report)
    {
        var stages = report.Stages.Where(s => s.Evaluation.GoldRewardMean is not null || s.Evaluation.Accuracy is not null).ToList();
        if (stages.Count == 0)
        {
            return;
        }

        sb.Append("<div class=\"charts overview\">\n")
          .Append(SvgChart.Bars("Held-out gold reward and accuracy by stage", "score", [.. stages.Select(s => s.Stage)],
          [
              ("gold reward (mean)", [.. stages.Select(s => s.Evaluation.GoldRewardMean)]),
              ("accuracy (first word right)", [.. stages.Select(s => s.Evaluation.Accuracy)]),
          ], width: ChartWidth, height: 300))
          .Append("\n</div>\n");
    }

    /// <summary>The same held-out prompts answered by every stage that sampled, one column per stage.</summary>
    private static void Samples(StringBuilder sb, PipelineReport report)
    {
        var stages = report.Stages.Where(s => s.Samples.Count > 0).ToList();
        if (stages.Count == 0)
        {
            return;
        }

        var all = stages.SelectMany(s => s.Samples.Select(a => a.Prompt)).Distinct(StringComparer.Ordinal).ToList();
        var prompts = all.Take(MaxSamplePrompts).ToList();
        string perPrompt = report.Setup switch
        {
            { SamplesPerPrompt: > 1 } e => string.Create(CultureInfo.InvariantCulture, $"the first of the {e.SamplesPerPrompt} answers sampled per prompt (temperature {e.Temperature:0.##})"),
            { } e => string.Create(CultureInfo.InvariantCulture, $"the one answer sampled per prompt (temperature {e.Temperature:0.##})"),
            null => "the first answer sampled per prompt",
        };
        sb.Append("<h2>Sampled answers on held-out prompts</h2>\n<p class=\"shown\">")
          .Append(SvgChart.Esc(string.Create(CultureInfo.InvariantCulture, $"Showing {prompts.Count} of {all.Count} held-out prompts; each cell is {perPrompt}. The table above averages all of them.")))
          .Append("</p>\n<p class=\"legend\">Cell colours: <span class=\"good\">right answer, nothing after it (gold 1)</span>")
          .Append("<span class=\"meh\">right answer, then more words (gold below 1)</span><span class=\"bad\">wrong or empty answer (gold −1 or less)</span></p>\n")
          .Append("<table class=\"samples\">\n<tr><th class=\"prompt\">prompt</th>");
        foreach (var stage in stages)
        {
            sb.Append("<th>").Append(SvgChart.Esc(stage.Stage)).Append("</th>");
        }

        sb.Append("</tr>\n");
        foreach (string prompt in prompts)
        {
            sb.Append("<tr><td class=\"prompt\">").Append(SvgChart.Esc(prompt)).Append("</td>");
            foreach (var stage in stages)
            {
                var answer = stage.Samples.FirstOrDefault(a => a.Prompt == prompt);
                if (answer is null)
                {
                    sb.Append("<td>-</td>");
                    continue;
                }

                // Green: the right answer and nothing more; amber: right but rambling on; red: wrong or empty.
                string verdict = !answer.Correct ? "bad" : answer.GoldReward >= 1 ? "good" : "meh";
                sb.Append("<td class=\"").Append(verdict).Append("\">").Append(SvgChart.Esc(answer.Response))
                  .Append("<span class=\"score\">")
                  .Append(SvgChart.Esc(string.Create(CultureInfo.InvariantCulture, $"gold {answer.GoldReward:0.00}{(answer.Correct ? ", correct" : ", wrong")}")))
                  .Append("</span></td>");
            }

            sb.Append("</tr>\n");
        }

        sb.Append("</table>\n");
    }
}
