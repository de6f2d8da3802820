using Engine.Core.Cpu;
using Engine.Models.Formats;
using Engine.Tests.Reference;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Alignment;

/// <summary>
/// The kernels against float64 PyTorch (tests/fixtures/generate_logprob_fixtures.py): ragged masks, a fully masked
/// sequence, τ ∈ {1, 0.7}, two rows whose target has logp ≈ −100 (−143 at τ = 0.7), and KL references up to 3 nats off.
/// </summary>
[Trait("Category", "Parity")]
public sealed class LogProbFixtureTests
{
    private static readonly Lazy<Fixture> Data = new(Fixture.Load);

    public static TheoryData<string, float> Temperatures() => new() { { "t1", 1f }, { "t07", 0.7f } };

    [Theory]
    [MemberData(nameof(Temperatures))]
    public void Head_path_matches_pytorch(string name, float tau)
    {
        var f = Data.Value;
        var p = f.Case(name, tau);
        foreach (int chunkRows in new[] { 0, 4 })
        {
            using var backend = LogProbBackends.Create(2, chunkRows, vocabBlock: chunkRows == 0 ? 0 : 16);
            foreach (var path in new[] { LogProbKernels.Path.TwoPass, LogProbKernels.Path.Fused })
            {
                var run = LogProbKernels.Head(backend, p, path);
                string what = $"{name} {path} chunk {chunkRows}";
                AssertOutputs(f, name, "", run, what);
                Approx.Equal(f.Floats[$"{name}.dhidden"], run.HiddenGrad, 2e-4f, 1e-3f, what + " dh");
                Approx.Equal(f.Floats[$"{name}.dweight"], run.WeightGrad, 2e-4f, 1e-3f, what + " dW");
                Approx.RelativeNorm(f.Floats[$"{name}.dhidden"], run.HiddenGrad, 2e-5, what + " dh");
                Approx.RelativeNorm(f.Floats[$"{name}.dweight"], run.WeightGrad, 2e-5, what + " dW");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Temperatures))]
    public void Logits_path_matches_pytorch(string name, float tau)
    {
        var f = Data.Value;
        var p = f.Case(name, tau);
        using var backend = new CpuBackend(2);
        var (run, grad) = LogProbKernels.FromLogits(backend, p, f.Floats["logits"]);
        AssertOutputs(f, name, ".from_logits", run, name + " from logits");
        Approx.Equal(f.Floats[$"{name}.from_logits.dlogits"], grad, 1e-5f, 1e-4f, name + " dlogits");
    }

    [Fact]
    public void Sequence_reductions_match_pytorch()
    {
        var f = Data.Value;
        int b = f.Ints["targets"].Length / 9, t = 9;
        using var backend = new CpuBackend(2);
        foreach (var (key, mean) in new[] { ("sum", false), ("mean", true) })
        {
            var (output, grad) = LogProbKernels.SequenceSum(backend, f.Floats["seq.values"], f.Floats["seq.mask"], f.Floats["seq.grad"], b, t, mean);
            Approx.Equal(f.Floats[$"seq.{key}"], output, 1e-6f, 1e-6f, key);
            Approx.Equal(f.Floats[$"seq.{key}.dvalues"], grad, 1e-7f, 1e-6f, key + " dvalues");
            Assert.Equal(0f, output[2]); // the fully masked sequence
        }
    }

    [Fact]
    public void Fixture_has_the_promised_extremes()
    {
        var f = Data.Value;
        var mask = f.Floats["mask"];
        Assert.InRange(f.Floats["t1.logp"][4], -100.01f, -99.99f);
        Assert.InRange(f.Floats["t1.logp"][13], -100.01f, -99.99f);
        Assert.All(mask.AsSpan(18, 9).ToArray(), m => Assert.Equal(0f, m));
        Assert.Contains(f.Ints["targets"], y => y < 0);
    }

    private static void AssertOutputs(Fixture f, string name, string path, LogProbRun run, string what)
    {
        // logp near −100 to −143 carries the f32 rounding of logits of that size: a relative bound covers it.
        Approx.Equal(f.Floats[$"{name}{path}.logp"], run.LogProbs, 2e-5f, 2e-6f, what + " logp");
        Approx.Equal(f.Floats[$"{name}{path}.entropy"], run.Entropy, 2e-5f, 1e-5f, what + " entropy");
        Approx.Equal(f.Floats[$"{name}{path}.rowstats"], run.RowStats, 2e-5f, 2e-6f, what + " rowStats");
        Approx.Equal(f.Floats[$"{name}{path}.kl"], run.Kl, 5e-5f, 2e-5f, what + " kl");
    }

    private sealed class Fixture
    {
        public Dictionary<string, float[]> Floats { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, int[]> Ints { get; } = new(StringComparer.Ordinal);

        public int N { get; private set; }

        public int C { get; private set; }

        public int V { get; private set; }

        public static Fixture Load()
        {
            using var file = SafetensorsFile.Open(Path.Combine(ModelFixture.Directory, "kernels_logprob.safetensors"));
            Assert.Equal("engine-logprob-fixture/1", file.Metadata["format"]);
            var f = new Fixture();
            foreach (var t in file.Tensors)
            {
                if (t.DType == SafetensorsDType.I32)
                {
                    f.Ints[t.Name] = file.ReadI32(t.Name);
                }
                else
                {
                    f.Floats[t.Name] = file.ReadF32(t.Name);
                }

                if (t.Name == "weight")
                {
                    (f.V, f.C) = ((int)t.Shape[0], (int)t.Shape[1]);
                }
            }

            f.N = f.Ints["targets"].Length;
            return f;
        }

        /// <summary>The fixture's problem at one temperature, with the loss coefficients as the upstream gradients.</summary>
        public LogProbCase Case(string name, float tau) => new()
        {
            N = N, C = C, V = V, Hidden = Floats["hidden"], Weight = Floats["weight"], Targets = Ints["targets"], Mask = Floats["mask"],
            Reference = Floats[$"{name}.reference"], Temperature = tau,
            LogProbsGrad = Floats["grad.logp"], EntropyGrad = Floats["grad.entropy"], KlGrad = Floats["grad.kl"],
        };
    }
}
