using System.Text.Json;
using System.Xml;
using System.Xml.Linq;
using Engine.Training.Pipeline;
using Xunit;

namespace Engine.Tests.Pipeline;

public sealed class PipelineReportTests
{
    /// <summary>A report shaped like a real run: rambling pretrain, concise SFT, an RM, DPO that improves on SFT.</summary>
    internal static PipelineReport Sample()
    {
        var task = SyntheticTask.Generate(7);
        var held = task.HeldOutFacts.Take(5).ToList();
        List<SampledAnswer> Answers(Func<SyntheticFact, int, string> respond) => [.. held.Select((f, i) =>
        {
            string response = respond(f, i);
            var score = task.Gold.Score(f, response);
            return new SampledAnswer(f.Prompt, response, score.Reward, score.Correct);
        })];

        var other = task.Facts[^1];
        static Curve Decay(string name, int steps, double start, double end, double noise, int seed, string axis = "loss")
        {
            var rng = new Random(seed);
            return new Curve(name, [.. Enumerable.Range(0, steps / 10 + 1).Select(i =>
                new CurvePoint(i * 10, end + (start - end) * Math.Exp(-i * 10.0 / (steps / 5.0)) + noise * (rng.NextDouble() - 0.5)))]) { Axis = axis };
        }

        return new PipelineReport(
        [
            new StageReport("pretrain")
            {
                Curves = [Decay("train loss", 1500, 5.2, 1.1, 0.15, 1), Decay("eval loss", 1500, 5.2, 1.25, 0.05, 2)],
                Steps = 1500,
                SkippedSteps = 0,
                Evaluation = new StageEvaluation { GoldRewardMean = -0.21, Accuracy = 0.62, MeanResponseTokens = 31.5, KlToSft = 2.4 },
                Samples = Answers((f, i) => i == 3 ? " " + other.Answer + ", " + other.Statement(false) + "." : " " + f.Answer + ", " + other.Statement(false) + ", " + other.Statement(false) + " and"),
            },
            new StageReport("sft")
            {
                Curves = [Decay("train loss", 300, 2.0, 0.35, 0.1, 3)],
                Evaluation = new StageEvaluation { GoldRewardMean = 0.71, Accuracy = 0.83, MeanResponseTokens = 3.4, KlToSft = 0 },
                Samples = Answers((f, i) => i == 2 ? " " + f.Answer + ", " + other.Statement(false) + "." : " " + f.Answer + "."),
            },
            new StageReport("rm")
            {
                Curves = [Decay("train loss", 400, 0.69, 0.2, 0.08, 4), Decay("margin", 400, 0.0, 2.5, 0.2, 6, "RM score"),
                          Decay("held-out pairs", 400, 0.5, 0.95, 0.05, 5, "share of pairs ordered right")],
                Evaluation = new StageEvaluation { PairwiseAccuracy = 0.91 },
            },
            new StageReport("dpo")
            {
                Curves = [Decay("train loss", 200, 0.69, 0.31, 0.05, 7), Decay("chosen", 200, 0, 0.8, 0.1, 8, "implicit reward"),
                          Decay("rejected", 200, 0, -1.9, 0.1, 9, "implicit reward"), Decay("margin", 200, 0, 2.7, 0.1, 10, "implicit reward")],
                Steps = 200,
                SkippedSteps = 3,
                Evaluation = new StageEvaluation { GoldRewardMean = 0.88, Accuracy = 0.9, MeanResponseTokens = 2.9, KlToSft = 0.42 },
                Samples = Answers((f, _) => " " + f.Answer + "."),
            },
        ])
        {
            Notes = ["seed 7 · synthetic facts task · tiny GPT-2 (sample data, not a real run) <&>"],
            Setup = new EvaluationSetup(12, 8, 0.7, 240),
        };
    }

    [Fact]
    public void Summary_json_has_exactly_the_specified_shape()
    {
        using var doc = JsonDocument.Parse(Sample().ToSummaryJson());
        var stages = doc.RootElement.GetProperty("stages").EnumerateArray().ToList();
        Assert.Equal(["smoke_test", "stages"], doc.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.False(doc.RootElement.GetProperty("smoke_test").GetBoolean());
        Assert.Equal(["pretrain", "sft", "rm", "dpo"], stages.Select(s => s.GetProperty("stage").GetString()));
        foreach (var s in stages)
        {
            var keys = s.EnumerateObject().Select(p => p.Name).ToList();
            string[] required = ["stage", "gold_reward_mean", "accuracy", "mean_response_tokens", "kl_to_sft", "steps", "skipped_steps"];
            Assert.Equal(required, keys.Take(7));
            Assert.Equal(s.GetProperty("stage").GetString() == "rm" ? 8 : 7, keys.Count);
        }

        Assert.Equal(-0.21, stages[0].GetProperty("gold_reward_mean").GetDouble());
        Assert.Equal(0.62, stages[0].GetProperty("accuracy").GetDouble());
        Assert.Equal(31.5, stages[0].GetProperty("mean_response_tokens").GetDouble());
        Assert.Equal(0.42, stages[3].GetProperty("kl_to_sft").GetDouble());
        Assert.Equal(JsonValueKind.Null, stages[2].GetProperty("gold_reward_mean").ValueKind);
        Assert.Equal(0.91, stages[2].GetProperty("pairwise_accuracy").GetDouble());
        Assert.Equal(3, stages[3].GetProperty("skipped_steps").GetInt32());
        Assert.Equal(200, stages[3].GetProperty("steps").GetInt32());
        Assert.Equal(JsonValueKind.Null, stages[1].GetProperty("steps").ValueKind);
    }

    [Fact]
    public void Non_finite_values_become_null()
    {
        var report = new PipelineReport([new StageReport("sft") { Evaluation = new StageEvaluation { GoldRewardMean = double.NaN, KlToSft = double.PositiveInfinity } }]);
        using var doc = JsonDocument.Parse(report.ToSummaryJson());
        var s = doc.RootElement.GetProperty("stages")[0];
        Assert.Equal(JsonValueKind.Null, s.GetProperty("gold_reward_mean").ValueKind);
        Assert.Equal(JsonValueKind.Null, s.GetProperty("kl_to_sft").ValueKind);
        Assert.Contains("sft", report.ToHtml(), StringComparison.Ordinal);
        Assert.Contains("no data", report.ToHtml(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(9)]
    public void Legend_rows_and_bar_labels_stay_above_the_plot(int seriesCount)
    {
        var curves = Enumerable.Range(0, seriesCount).Select(i => new Curve($"eval_rewards/series_{i}", [new CurvePoint(0, i), new CurvePoint(10, 2.5)])).ToList();
        var line = XElement.Parse(SvgChart.Line("t", "step", "reward", curves, width: 400));
        var bars = XElement.Parse(SvgChart.Bars("t", "score", ["a", "b"], [.. curves.Select(c => (c.Name, (IReadOnlyList<double?>)[1.0, 0.5]))], width: 400));
        foreach (var svg in new[] { line, bars })
        {
            double lowestLegend = svg.Elements("text").Where(t => (string?)t.Attribute("class") == "lg").Max(t => (double)t.Attribute("y")!);
            double plotTop = svg.Elements("line").Where(l => (string?)l.Attribute("class") == "axis" && (double)l.Attribute("x1")! == (double)l.Attribute("x2")!).Min(l => (double)l.Attribute("y1")!);
            Assert.True(lowestLegend + 4 < plotTop, $"legend row at y={lowestLegend} runs into the plot starting at y={plotTop}");

            // A tick label or a bar's value label at the top of the plot sits a few pixels above its line.
            var labels = svg.Elements("text").Where(t => (string?)t.Attribute("class") == "tk").Select(t => (double)t.Attribute("y")!);
            Assert.All(labels, y => Assert.True(y - 10 > lowestLegend, $"label at y={y} overlaps the legend row at y={lowestLegend}"));
        }
    }

    private static List<string> Legend(XElement svg) =>
        [.. svg.Elements("text").Where(t => (string?)t.Attribute("class") == "lg").Select(t => t.Value)];

    [Fact]
    public void Html_is_well_formed_self_contained_and_shows_every_stage()
    {
        var report = Sample();
        string html = report.ToHtml();
        Assert.StartsWith("<!DOCTYPE html>", html, StringComparison.Ordinal);
        using var reader = XmlReader.Create(new StringReader(html), new XmlReaderSettings { DtdProcessing = DtdProcessing.Ignore });
        var doc = XDocument.Load(reader);
        Assert.Equal("html", doc.Root!.Name.LocalName);

        foreach (string banned in new[] { "<script", "http://", "https://", "src=", "href=", "@import", "url(" })
        {
            Assert.DoesNotContain(banned, html, StringComparison.OrdinalIgnoreCase);
        }

        var headings = doc.Descendants("h2").Select(h => h.Value).ToList();
        foreach (var stage in report.Stages)
        {
            Assert.Contains("Stage: " + stage.Stage, headings);
        }

        // The overview, a loss chart per stage, a reward chart per stage with reward curves and an accuracy chart per stage
        // with accuracy curves (the RM's); every one has a polyline per series.
        var svgs = doc.Descendants("svg").ToList();
        var titles = svgs.Select(s => s.Element("title")!.Value).ToList();
        Assert.Equal(
            ["Held-out gold reward and accuracy by stage", "pretrain: loss", "sft: loss", "rm: loss", "rm: RM score", "rm: share of pairs ordered right", "dpo: loss", "dpo: implicit reward"],
            titles);
        Assert.Equal(report.Stages.Sum(s => s.Curves.Count), doc.Descendants("polyline").Count());
        // The overview: gold reward and accuracy bars for the three stages that sampled, "n/a" for none of them.
        Assert.Equal(6, svgs[0].Descendants("rect").Count(r => (string?)r.Attribute("fill") != "#ffffff"));
        Assert.Contains(new[] { "gold reward (mean)", "accuracy (first word right)" }, n => svgs[0].Descendants("text").Any(t => t.Value == n));
        Assert.DoesNotContain(svgs, s => s.Descendants("text").Any(t => t.Value == "no data"));
        Assert.Equal(["held-out pairs"], Legend(svgs[5]));
        Assert.Equal(["margin"], Legend(svgs[4]));

        // The table and the side-by-side samples: one column per stage that sampled.
        var evalRows = doc.Descendants("table").First().Elements("tr").ToList();
        Assert.Equal(report.Stages.Count + 1, evalRows.Count);
        var samples = doc.Descendants("table").Single(t => (string?)t.Attribute("class") == "samples");
        Assert.Equal(["prompt", "pretrain", "sft", "dpo"], samples.Elements("tr").First().Elements("th").Select(th => th.Value));
        Assert.Contains(doc.Descendants("p"), p => p.Value.Contains("<&>", StringComparison.Ordinal));

        string? dir = Environment.GetEnvironmentVariable("ENGINE_SAMPLE_REPORT_DIR");
        if (!string.IsNullOrEmpty(dir))
        {
            report.Write(dir);
        }
    }

    [Fact]
    public void Write_puts_both_files_and_the_console_table_aligns()
    {
        string dir = Path.Combine(Path.GetTempPath(), "engine-report-" + Guid.NewGuid().ToString("N"));
        try
        {
            Sample().Write(dir);
            Assert.True(File.Exists(Path.Combine(dir, "summary.json")));
            Assert.True(File.Exists(Path.Combine(dir, "report.html")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }

        string table = Sample().ToTextTable();
        var lines = table.TrimEnd('\n').Split('\n');
        Assert.Equal(6, lines.Length);
        Assert.Single(lines.Select(l => l.Length).Distinct());
        Assert.StartsWith("stage     gold reward  accuracy", lines[0], StringComparison.Ordinal);
        Assert.Equal("rm                  -         -            -          -     91.0%              -", lines[4]);
        Assert.EndsWith(" 3 of 200", lines[5], StringComparison.Ordinal);
        Assert.Contains("-0.210", lines[2], StringComparison.Ordinal);
    }

    [Fact]
    public void Smoke_test_says_so_in_summary_page_and_table()
    {
        var report = Sample() with { SmokeTest = true };
        using var doc = JsonDocument.Parse(report.ToSummaryJson());
        Assert.True(doc.RootElement.GetProperty("smoke_test").GetBoolean());
        Assert.Equal(PipelineReport.SmokeTestNote, doc.RootElement.GetProperty("note").GetString());
        var html = XDocument.Parse(report.ToHtml().Replace("<!DOCTYPE html>", "", StringComparison.Ordinal));
        var first = html.Descendants("h1").Single().ElementsAfterSelf().First();
        Assert.Equal("smoke", (string?)first.Attribute("class"));
        Assert.Contains("mean nothing", first.Value, StringComparison.Ordinal);
        Assert.StartsWith(PipelineReport.SmokeTestNote + "\n", report.ToTextTable(), StringComparison.Ordinal);
        Assert.DoesNotContain("mean nothing", Sample().ToHtml(), StringComparison.Ordinal);
    }

    [Fact]
    public void Every_column_is_defined_and_the_cell_colours_have_a_legend()
    {
        var html = XDocument.Parse(Sample().ToHtml().Replace("<!DOCTYPE html>", "", StringComparison.Ordinal));
        var table = html.Descendants("table").First();
        var definitions = table.ElementsAfterSelf("ul").First(u => (string?)u.Attribute("class") == "defs").Elements("li").Select(li => li.Value).ToList();
        foreach (string column in table.Elements("tr").First().Elements("th").Select(th => th.Value))
        {
            Assert.Contains(definitions, d => d.StartsWith(column + ":", StringComparison.Ordinal));
        }

        // The figures the definitions quote come from the evaluation setup; accuracy says why it can exceed a later stage's.
        Assert.Contains(definitions, d => d.StartsWith("gold reward (mean): ", StringComparison.Ordinal) && d.Contains("12 held-out prompts × 8 samples at temperature 0.7", StringComparison.Ordinal));
        Assert.Contains(definitions, d => d.StartsWith("accuracy: ", StringComparison.Ordinal) && d.Contains("first word", StringComparison.Ordinal) && d.Contains("rambles", StringComparison.Ordinal));
        Assert.Contains(definitions, d => d.StartsWith("KL to SFT: ", StringComparison.Ordinal) && d.Contains("negative", StringComparison.Ordinal));
        Assert.Contains(definitions, d => d.StartsWith("RM pairwise accuracy: ", StringComparison.Ordinal) && d.Contains("240 held-out preference pairs", StringComparison.Ordinal));

        var legend = html.Descendants("p").Single(p => (string?)p.Attribute("class") == "legend");
        Assert.Equal(["good", "meh", "bad"], legend.Elements("span").Select(e => (string?)e.Attribute("class")));
        var used = html.Descendants("table").Single(t => (string?)t.Attribute("class") == "samples").Descendants("td").Select(td => (string?)td.Attribute("class")).OfType<string>().Where(c => c != "prompt").Distinct();
        Assert.All(used, c => Assert.Contains(c, new[] { "good", "meh", "bad" }));
    }

    [Fact]
    public void Samples_table_says_how_much_it_shows()
    {
        var task = SyntheticTask.Generate(7);
        var facts = task.Facts.Take(12).ToList();
        var report = new PipelineReport([new StageReport("sft") { Samples = [.. facts.Select(f => new SampledAnswer(f.Prompt, " " + f.Answer + ".", 1, true))] }])
        {
            Setup = new EvaluationSetup(12, 8, 0.7, 240),
        };
        var html = XDocument.Parse(report.ToHtml().Replace("<!DOCTYPE html>", "", StringComparison.Ordinal));
        var shown = html.Descendants("p").Single(p => (string?)p.Attribute("class") == "shown").Value;
        Assert.StartsWith("Showing 8 of 12 held-out prompts; each cell is the first of the 8 answers sampled per prompt", shown, StringComparison.Ordinal);
        Assert.Equal(1 + 8, html.Descendants("table").Single(t => (string?)t.Attribute("class") == "samples").Elements("tr").Count());
    }

    [Theory]
    [InlineData(0.0, 1.0, 5, 0.0, 1.0, 0.2)]
    [InlineData(0.13, 0.87, 5, 0.0, 1.0, 0.2)]
    [InlineData(0, 1500, 6, 0, 1500, 500)]
    [InlineData(-1.9, 2.7, 5, -2, 3, 1)]
    public void Axis_ticks_are_nice(double min, double max, int target, double lo, double hi, double step)
    {
        var (a, b, ticks) = SvgChart.Axis(min, max, target);
        Assert.Equal(lo, a, 9);
        Assert.Equal(hi, b, 9);
        Assert.Equal(step, ticks[1] - ticks[0], 9);
        Assert.Equal(lo, ticks[0], 9);
        Assert.Equal(hi, ticks[^1], 9);
    }

    [Fact]
    public void Step_axes_tick_only_whole_steps()
    {
        Assert.Equal([1.0, 2, 3, 4], SvgChart.Axis(1, 4, 6, minStep: 1).Ticks);
        Assert.Equal([3.0, 4, 5], SvgChart.Axis(4, 4, 6, minStep: 1).Ticks);
        var svg = XElement.Parse(SvgChart.Line("t", "step", "loss", [new Curve("loss", [new CurvePoint(1, 2), new CurvePoint(4, 1)])]));
        var xLabels = svg.Elements("text").Where(t => (string?)t.Attribute("class") == "tk" && (string?)t.Attribute("text-anchor") == "middle").Select(t => t.Value);
        Assert.Equal(["1", "2", "3", "4"], xLabels);
    }

    [Fact]
    public void Flat_series_still_gets_a_range()
    {
        var (a, b, ticks) = SvgChart.Axis(2, 2, 5);
        Assert.True(a < 2 && b > 2 && ticks.Count >= 2);
        string svg = SvgChart.Line("t", "x", "y", [new Curve("one", [new CurvePoint(5, 2)])]);
        XDocument.Parse(svg);
        Assert.Contains("<circle", svg, StringComparison.Ordinal);
    }

    [Fact]
    public void Odd_names_and_values_stay_well_formed()
    {
        var report = new PipelineReport(
        [
            new StageReport("ppo <ptx> & \"more\"")
            {
                Curves = [new Curve("loss", [new CurvePoint(0, double.NaN), new CurvePoint(1, -3e-5), new CurvePoint(2, -1e-4)]),
                          new Curve("a very long legend name that needs its own row", [new CurvePoint(0, 1), new CurvePoint(1_000_000, 2)]) { Axis = "reward <&>" },
                          new Curve("another long legend entry, also wide", [new CurvePoint(0, 0)]) { Axis = "reward <&>" }],
                Evaluation = new StageEvaluation { GoldRewardMean = -1.5, Accuracy = 0 },
                Samples = [new SampledAnswer("p <b>", "r\n</td>\u0003\u007f\r", -1, false)],
            },
        ]);
        using var reader = XmlReader.Create(new StringReader(report.ToHtml()), new XmlReaderSettings { DtdProcessing = DtdProcessing.Ignore });
        var doc = XDocument.Load(reader);
        Assert.Equal("stage-ppo--ptx-----more-", (string?)doc.Descendants("h2").Last().Attribute("id"));
        Assert.Contains(doc.Descendants("td"), td => td.Value.StartsWith("r\n</td>␃␡␍", StringComparison.Ordinal));
        Assert.DoesNotContain("NaN", report.ToHtml(), StringComparison.Ordinal);
        Assert.Contains("\"stage\": \"ppo \\u003Cptx\\u003E", report.ToSummaryJson(), StringComparison.Ordinal);
    }
}
