using System.Text.Json;
using Engine.Core;
using Engine.Core.Cpu;
using Engine.Core.Tensors;
using Engine.Models;
using Engine.Models.Formats;
using Engine.Models.HuggingFace;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Models;

/// <summary>
/// The scalar (reward/value) head: parameters, forward and backward (finite differences), Hugging Face
/// <c>*ForSequenceClassification</c> checkpoints with <c>reward_head.json</c>, and starting a reward model from an LM.
/// </summary>
[Trait("Category", "Models")]
public sealed class ScalarHeadTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("engine-scalar-").FullName;
    private readonly CpuBackend backend = new(2);

    public void Dispose()
    {
        backend.Dispose();
        Directory.Delete(dir, recursive: true);
    }

    private static TransformerConfig Llama(HeadKind head, bool tied = false) =>
        TransformerConfig.Llama(vocabSize: 29, maxSequenceLength: 16, layers: 2, channels: 16, heads: 4, kvHeads: 2, hiddenChannels: 32) with
        {
            Head = head,
            TiedEmbeddings = tied,
            AttentionBias = true,
        };

    private static TransformerConfig Gpt2(HeadKind head) => TransformerConfig.Gpt2(29, 16, 2, 16, 2) with { Head = head, HiddenChannels = 64 };

    [Fact]
    public void A_scalar_model_has_a_score_head_and_no_language_model_head()
    {
        var specs = Transformer.ParameterSpecs(Llama(HeadKind.Scalar)).ToDictionary(s => s.Name);
        Assert.Equal(new Shape(1, 16), specs[Names.ScoreWeight].Shape);
        Assert.Equal(new Shape(1), specs[Names.ScoreBias].Shape);
        Assert.False(specs.ContainsKey(Names.LmHead));
        Assert.Equal(
            Transformer.ParameterCount(Llama(HeadKind.LanguageModel)) - (29 * 16) + 17,
            Transformer.ParameterCount(Llama(HeadKind.Scalar)));

        using var model = new Transformer(Llama(HeadKind.Scalar), backend);
        var e = Assert.Throws<InvalidOperationException>(() => model.HeadWeight);
        Assert.Contains("scalar", e.Message, StringComparison.Ordinal);
        using var lm = new Transformer(Llama(HeadKind.LanguageModel), backend);
        Assert.Throws<InvalidOperationException>(() => lm.ScoreBias);
    }

    [Fact]
    public void Initialisation_draws_the_score_head_at_one_over_root_C_plus_one()
    {
        using var model = new Transformer(Gpt2(HeadKind.Scalar) with { Channels = 256, Heads = 4 }, backend);
        model.InitializeWeights(3);
        var w = new float[256];
        backend.CopyToHost<float>(model.ScoreWeight, w);
        double std = Math.Sqrt(w.Select(x => (double)x * x).Average());
        Assert.InRange(std, 0.8 / Math.Sqrt(257), 1.2 / Math.Sqrt(257));
        Assert.Equal(0f, model.ScoreBias);
    }

    [Fact]
    public void Score_backward_matches_finite_differences_through_the_whole_model()
    {
        // L = Σ_b a_b·s(b, p_b): scores read at one position per row, gradients through the head and the trunk.
        using var model = new Transformer(Gpt2(HeadKind.Scalar), backend);
        model.InitializeWeights(5);
        model.ScoreBias = 0.3f;
        int batch = 3, time = 7, c = model.Config.Channels;
        var tokens = TestData.Tokens(1, batch * time, 29);
        int[] positions = [6, 2, 4];
        double[] a = [0.7, -1.3, 0.4];

        double Loss()
        {
            var s = model.Score(tokens, batch, time, positions);
            return s.Select((x, i) => a[i] * x).Sum();
        }

        model.ZeroGradients();
        var hidden = model.ForwardTraining(tokens, batch, time);
        using var rowsBuffer = backend.Allocate(batch * (c + 1) * 4L * 2);
        var rows = new Tensor(rowsBuffer, 0, new Shape(batch, c), DType.F32);
        var rowGrad = new Tensor(rowsBuffer, batch * c * 4L, new Shape(batch, c), DType.F32);
        var scoreGrad = new Tensor(rowsBuffer, 2L * batch * c * 4, new Shape(batch, 1), DType.F32);
        for (int b = 0; b < batch; b++)
        {
            backend.Copy(rows.Rows(b, 1), hidden.Rows((b * time) + positions[b], 1));
        }

        backend.Zero(rowGrad);
        backend.CopyFromHost<float>(scoreGrad, a.Select(x => (float)x).ToArray());
        model.ScoreBackward(rowGrad, scoreGrad, rows);
        for (int b = 0; b < batch; b++)
        {
            backend.Accumulate(model.HiddenGradient.Rows((b * time) + positions[b], 1), rowGrad.Rows(b, 1));
        }

        model.BackwardFromHidden();

        foreach (string name in new[] { Names.ScoreWeight, Names.ScoreBias, Names.FinalNormWeight, Names.FinalNormBias, Names.Layer(1, Names.UpWeight), Names.Embedding })
        {
            var info = model.Parameters.Info(name);
            var values = new float[info.ElementCount];
            var grad = new float[info.ElementCount];
            backend.CopyToHost<float>(model.Parameters.Value(name), values);
            backend.CopyToHost<float>(model.Parameters.Gradient(name), grad);
            var indices = Enumerable.Range(0, values.Length).Where(i => i % Math.Max(1, values.Length / 6) == 0).ToList();
            var numeric = FiniteDifference.Gradient(
                x =>
                {
                    backend.CopyFromHost<float>(model.Parameters.Value(name), x);
                    return Loss();
                },
                values,
                h: 1e-2f,
                indices);
            backend.CopyFromHost<float>(model.Parameters.Value(name), values);
            FiniteDifference.AssertClose(numeric, grad, atol: 2e-3, rtol: 2e-2, what: name, indices);
        }
    }

    [Fact]
    public void Score_rejects_positions_outside_the_row()
    {
        using var model = new Transformer(Gpt2(HeadKind.Scalar), backend);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => model.Score(new int[8], 2, 4, [3, 4]));
        Assert.Contains("row 1", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("gpt2", "GPT2ForSequenceClassification")]
    [InlineData("qwen2", "Qwen2ForSequenceClassification")]
    public void A_reward_model_saves_as_sequence_classification_and_loads_back(string type, string architecture)
    {
        var config = type == "gpt2" ? Gpt2(HeadKind.Scalar) : Llama(HeadKind.Scalar);
        using var model = new Transformer(config, backend);
        model.InitializeWeights(9);
        model.ScoreBias = -0.625f;
        model.RewardStatistics = new RewardStatistics(0.0, 1.75, 40);
        HfCheckpoint.Save(model, dir);

        using (var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "config.json"))))
        {
            Assert.Equal(architecture, doc.RootElement.GetProperty("architectures")[0].GetString());
            Assert.Equal("LABEL_0", doc.RootElement.GetProperty("id2label").GetProperty("0").GetString());
        }

        using (var file = SafetensorsFile.Open(Path.Combine(dir, "model.safetensors")))
        {
            Assert.Equal([1L, 16L], file.GetTensor("score.weight").Shape);
            Assert.False(file.Contains("lm_head.weight"));
            Assert.False(file.Contains("score.bias"));
        }

        var (bias, stats) = RewardHeadFile.Read(dir);
        Assert.Equal(-0.625f, bias);
        Assert.Equal(model.RewardStatistics, stats);

        using var loaded = HfCheckpoint.Load(dir, backend);
        Assert.Equal(config, loaded.Config);
        Assert.Equal(-0.625f, loaded.ScoreBias);
        Assert.Equal(model.RewardStatistics, loaded.RewardStatistics);
        var tokens = TestData.Tokens(2, 2 * 9, 29);
        Assert.Equal(model.Score(tokens, 2, 9, [8, 5]), loaded.Score(tokens, 2, 9, [8, 5]));
    }

    [Fact]
    public void A_reward_model_starts_from_a_language_model_checkpoint_with_a_fresh_head()
    {
        using var lm = new Transformer(Llama(HeadKind.LanguageModel), backend);
        lm.InitializeWeights(4);
        HfCheckpoint.Save(lm, dir);

        var e = Assert.ThrowsAny<InputException>(() =>
        {
            using var m = new Transformer(Llama(HeadKind.Scalar), backend);
            HfCheckpoint.LoadWeights(m, dir);
        });
        Assert.Contains("score.weight", e.Message, StringComparison.Ordinal);
        Assert.Contains("HfLoadOptions.Head", e.Message, StringComparison.Ordinal);

        var options = new HfLoadOptions { Head = HeadKind.Scalar, HeadSeed = 17 };
        using var rm = HfCheckpoint.Load(dir, backend, options: options);
        Assert.True(rm.HasScalarHead);
        foreach (var map in HfWeightMap.For(lm.Config).Where(m => m.EngineName != Names.LmHead))
        {
            Assert.Equal(lm.ReadHuggingFaceTensor(map.HfName), rm.ReadHuggingFaceTensor(map.HfName));
        }

        using var again = HfCheckpoint.Load(dir, backend, options: options);
        Assert.Equal(rm.ReadHuggingFaceTensor("score.weight"), again.ReadHuggingFaceTensor("score.weight"));
        Assert.Equal(0f, rm.ScoreBias);
        Assert.Null(rm.RewardStatistics);
    }

    [Fact]
    public void A_reward_checkpoint_loads_as_a_tied_language_model_only_when_asked()
    {
        using var model = new Transformer(Gpt2(HeadKind.Scalar), backend);
        model.InitializeWeights(8);
        HfCheckpoint.Save(model, dir);

        using var lm = new Transformer(Gpt2(HeadKind.LanguageModel), backend);
        Assert.ThrowsAny<InputException>(() => HfCheckpoint.LoadWeights(lm, dir));
        HfCheckpoint.LoadWeights(lm, dir, new HfLoadOptions { Head = HeadKind.LanguageModel });
        Assert.Equal(model.ReadHuggingFaceTensor("transformer.wte.weight"), lm.ReadHuggingFaceTensor("transformer.wte.weight"));

        // Saving the language model over the directory removes the reward head's side file.
        HfCheckpoint.Save(lm, dir);
        Assert.False(File.Exists(Path.Combine(dir, RewardHeadFile.FileName)));
    }

    [Fact]
    public void Without_a_side_file_the_bias_is_zero_as_for_a_model_trained_in_transformers()
    {
        using var model = new Transformer(Gpt2(HeadKind.Scalar), backend);
        model.InitializeWeights(8);
        model.ScoreBias = 2f;
        HfCheckpoint.Save(model, dir);
        File.Delete(Path.Combine(dir, RewardHeadFile.FileName));
        using var loaded = HfCheckpoint.Load(dir, backend);
        Assert.Equal(0f, loaded.ScoreBias);
        Assert.Null(loaded.RewardStatistics);
    }

    [Theory]
    [InlineData("{", "not valid JSON")]
    [InlineData("{\"format\":\"other\",\"bias\":0}", "'format'")]
    [InlineData("{\"format\":\"engine-reward-head/1\"}", "field 'bias': is missing")]
    [InlineData("{\"format\":\"engine-reward-head/1\",\"bias\":\"x\"}", "field 'bias': must be a finite number")]
    [InlineData("{\"format\":\"engine-reward-head/1\",\"bias\":1,\"reward_mean\":0}", "go together")]
    [InlineData("{\"format\":\"engine-reward-head/1\",\"bias\":1,\"reward_mean\":0,\"reward_std\":-1,\"calibration_count\":3}", "'reward_std'")]
    public void A_malformed_side_file_is_named_with_its_field(string json, string expected)
    {
        File.WriteAllText(Path.Combine(dir, RewardHeadFile.FileName), json);
        var e = Assert.ThrowsAny<InputException>(() => RewardHeadFile.Read(dir));
        Assert.Contains(RewardHeadFile.FileName, e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Config_json_with_a_classifier_of_several_labels_is_refused()
    {
        string json = HfConfig.ToJson(Llama(HeadKind.LanguageModel));
        var node = System.Text.Json.Nodes.JsonNode.Parse(json)!.AsObject();
        node["architectures"] = new System.Text.Json.Nodes.JsonArray("Qwen2ForSequenceClassification");
        node["id2label"] = new System.Text.Json.Nodes.JsonObject { ["0"] = "bad", ["1"] = "good" };
        var e = Assert.ThrowsAny<InputException>(() => HfConfig.Parse(node.ToJsonString()));
        Assert.Contains("2 labels", e.Message, StringComparison.Ordinal);

        node["id2label"] = new System.Text.Json.Nodes.JsonObject { ["0"] = "LABEL_0" };
        Assert.Equal(HeadKind.Scalar, HfConfig.Parse(node.ToJsonString()).Head);
        Assert.Equal(Llama(HeadKind.Scalar), HfConfig.Parse(HfConfig.ToJson(Llama(HeadKind.Scalar))));
    }
}
