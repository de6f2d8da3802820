using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Formats;

[Trait("Category", "Formats")]
public class FixtureFileTests
{
    public static TheoryData<string> Fixtures => new(ModelFixture.Names);

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Fixture_loads_with_consistent_shapes(string name)
    {
        ModelFixture f = ModelFixture.Load(name);
        bool gpt2 = f.Config.GetProperty("model_type").GetString() == "gpt2";
        int vocab = f.ConfigInt("vocab_size");
        int channels = f.ConfigInt(gpt2 ? "n_embd" : "hidden_size");
        long[] batch = f.Shapes["input_ids"];
        Assert.Equal(2, batch.Length);
        Assert.Equal(batch, f.Shapes["targets"]);
        Assert.Equal([batch[0], batch[1], vocab], f.Shapes["logits"]);
        Assert.Equal([1L], f.Shapes["loss"]);
        Assert.Equal([10L], f.Shapes["trajectory.loss"]);
        Assert.Equal([10L], f.Shapes["trajectory.grad_norm"]);
        Assert.Equal(f.Floats["loss"][0], f.Floats["trajectory.loss"][0]);
        Assert.All(f.Ints["input_ids"], t => Assert.InRange(t, 0, vocab - 1));
        Assert.All(f.Ints["targets"], t => Assert.True(t == -100 || (t >= 0 && t < vocab)));

        string embedding = gpt2 ? "transformer.wte.weight" : "model.embed_tokens.weight";
        Assert.Equal([(long)vocab, channels], f.Shapes[embedding]);
        bool tied = f.Config.GetProperty("tie_word_embeddings").GetBoolean();
        Assert.Equal(!tied, f.Shapes.ContainsKey("lm_head.weight"));

        foreach (string p in f.ParameterNames)
        {
            Assert.Equal(f.Shapes[p], f.Shapes["grad." + p]);
            Assert.Equal(f.Shapes[p], f.Shapes["final." + p]);
            Assert.All(f.Floats["grad." + p], g => Assert.True(float.IsFinite(g)));
        }
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Stored_loss_is_the_mean_cross_entropy_of_the_stored_logits(string name)
    {
        ModelFixture f = ModelFixture.Load(name);
        float[] logits = f.Floats["logits"];
        int[] targets = f.Ints["targets"];
        int vocab = f.ConfigInt("vocab_size");
        double sum = 0;
        int counted = 0;
        for (int row = 0; row < targets.Length; row++)
        {
            if (targets[row] == -100)
            {
                continue;
            }

            ReadOnlySpan<float> z = logits.AsSpan(row * vocab, vocab);
            double max = double.NegativeInfinity;
            foreach (float v in z)
            {
                max = Math.Max(max, v);
            }

            double denominator = 0;
            foreach (float v in z)
            {
                denominator += Math.Exp(v - max);
            }

            sum += max + Math.Log(denominator) - z[targets[row]];
            counted++;
        }

        Assert.True(counted < targets.Length, "the fixture should ignore some positions");
        Assert.Equal(f.Floats["loss"][0], sum / counted, 5);
    }
}
