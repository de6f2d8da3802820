using System.Text.Json;
using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Tests.Support;
using Engine.Training.Objectives;
using Engine.Training.Objectives.Preference;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Tests.Objectives.Preference;

/// <summary>
/// One step of every loss of the preference family against float64 PyTorch (tests/fixtures/
/// generate_preference_fixtures.py, each loss written from its paper): the loss, every logged metric and the gradient
/// of every policy parameter (relative norm ≤ 1e-5), K-wise rankings and the weighted loss list included.
/// </summary>
[Trait("Category", "Parity")]
public class PreferenceParityTests(ITestOutputHelper output)
{
    private static readonly Lazy<ObjectiveFixture> Shared = new(() => ObjectiveFixture.Load("preference"));

    public static TheoryData<string> PairedCases => new(
        "simpo", "simpo_smoothed", "cpo", "orpo", "apo_zero", "apo_down", "bco_pair", "nca_pair", "exo_pair", "sppo_hard",
        "sigmoid_norm", "aot", "sft", "mpo");

    internal static ObjectiveFixture Fixture => Shared.Value;

    [Theory]
    [MemberData(nameof(PairedCases))]
    public void Paired_loss_metrics_and_every_gradient_match(string name)
    {
        using var backend = new CpuBackend(2);
        Paired(name, backend, output);
    }

    [Fact]
    public void Kto_loss_metrics_and_every_gradient_match()
    {
        using var backend = new CpuBackend(2);
        Kto(backend, output);
    }

    internal static void Paired(string name, Backend backend, ITestOutputHelper output)
    {
        var f = Fixture;
        var cfg = f.Cases.GetProperty(name);
        var options = Options(cfg);
        using var policy = f.Model(backend, "policy_config", "policy");
        using var reference = f.Model(backend, "policy_config", "reference", trainable: false);
        var batch = f.Batch(cfg.GetProperty("data").GetString()!, margins: false);
        using var objective = options.ReferenceFree
            ? new PreferenceObjective(policy, (IReferenceLogProbs?)null, options)
            : new PreferenceObjective(policy, reference, options);

        policy.ZeroGradients();
        var result = objective.Step(batch, 1f);
        CheckMetrics(output, f, name, result);
        ObjectiveParityTests.CheckGradients(f, policy, name);
    }

    internal static void Kto(Backend backend, ITestOutputHelper output)
    {
        var f = Fixture;
        var cfg = f.Cases.GetProperty("kto");
        using var policy = f.Model(backend, "policy_config", "policy");
        using var reference = f.Model(backend, "policy_config", "reference", trainable: false);
        using var objective = new KtoObjective(policy, reference, Options(cfg));
        var labels = f.Ints["kto.labels"];
        int e = labels.Length;
        var rows = new PreferenceBatch(f.Sequences("kto"), [.. Enumerable.Range(0, e)], [.. Enumerable.Range(e, e)]);
        var batch = new KtoBatch(rows, [.. labels.Select(l => l != 0)]);

        policy.ZeroGradients();
        var result = objective.Step(batch, 1f);
        CheckMetrics(output, f, "kto", result);
        ObjectiveParityTests.CheckGradients(f, policy, "kto");
        CheckMetrics(output, f, "kto", objective.Evaluate(batch));
    }

    internal static PreferenceOptions Options(JsonElement cfg)
    {
        float Get(string key, float fallback) => cfg.TryGetProperty(key, out var v) ? v.GetSingle() : fallback;
        var defaults = new PreferenceOptions();
        return new PreferenceOptions
        {
            Losses = [.. cfg.GetProperty("losses").EnumerateArray().Select(t => new PreferenceLossTerm(PreferenceOptions.Parse(t[0].GetString()!), t[1].GetSingle()))],
            Beta = Get("beta", defaults.Beta),
            SimpoGamma = Get("gamma", defaults.SimpoGamma),
            LabelSmoothing = Get("eps", 0f),
            CpoAlpha = Get("alpha", defaults.CpoAlpha),
            DesirableWeight = Get("desirable_weight", 1f),
            UndesirableWeight = Get("undesirable_weight", 1f),
        };
    }

    private static void CheckMetrics(ITestOutputHelper output, ObjectiveFixture f, string name, ObjectiveResult result)
    {
        using var doc = JsonDocument.Parse(f.Metadata["metrics"]);
        var names = doc.RootElement.GetProperty(name).EnumerateArray().Select(e => e.GetString()!).ToArray();
        var expected = f.Floats[$"{name}.metrics"];
        Assert.Equal(expected[0], result.Loss, 1e-5 * Math.Max(1, Math.Abs(expected[0])));
        for (int i = 0; i < names.Length; i++)
        {
            Assert.True(result.Metrics.ContainsKey(names[i]), $"{name}: metric {names[i]} is not logged");
            double actual = result.Metrics[names[i]];
            output.WriteLine($"{name} {names[i]}: {actual:R} vs PyTorch {expected[i]:R}");
            double tolerance = 5e-6 * Math.Max(1, Math.Abs(expected[i]));
            Assert.True(Math.Abs(actual - expected[i]) <= tolerance, $"{name} {names[i]}: {actual:R}, expected {expected[i]:R}");
        }
    }
}
