using System.Text.Json;
using Engine.Cli.Commands;
using Engine.Core.Cpu;
using Engine.Models.HuggingFace;
using Engine.Tests.Reference;
using Engine.Tests.Training;
using Engine.Training.Data;
using Xunit;

namespace Engine.Tests.Cli;

/// <summary><c>engine logprobs --per-token</c> against a scalar reference: log-softmax of the logits of <c>ForwardLogits</c>.</summary>
[Collection("Console")]
public sealed class LogprobsCommandTests : IDisposable
{
    private readonly TempDirectory dir = new();

    public LogprobsCommandTests() => CliHarness.SaveTinyModel(Model);

    private string Model => dir.Sub("model");

    public void Dispose() => dir.Dispose();

    [Fact]
    public void Per_token_values_sum_to_the_sequence_value_and_match_a_scalar_reference()
    {
        // Different lengths in one batch (padding), a multi-byte character, a batch of one; and pairs (two responses per line).
        string completions = dir.Sub("completions.jsonl"), pairs = dir.Sub("pairs.jsonl");
        File.WriteAllLines(completions,
        [
            """{"prompt": "q0 ", "completion": "answer zero"}""",
            """{"prompt": "a longer question ", "completion": "é!"}""",
            """{"prompt": "q2 ", "completion": "no"}""",
            """{"prompt": "q3", "completion": " x"}""",
        ]);
        File.WriteAllLines(pairs, ["""{"prompt": "q4 ", "chosen": "good", "rejected": "bad answer"}""", """{"prompt": "q5 ", "chosen": "yes", "rejected": "n"}"""]);

        var tokenizer = ModelInputs.LoadTokenizer(Path.Combine(Model, "tokenizer.json"));
        var collator = new SequenceCollator(ModelInputs.Encoder(tokenizer, CliHarness.Eos), new CollatorOptions { MaxLength = 32, AppendEos = false });
        using var backend = new CpuBackend(1);
        using var model = HfCheckpoint.Load(Model, backend, trainable: false);
        foreach (string data in new[] { completions, pairs })
        {
            var (code, stdout, error) = CliHarness.Run(["logprobs", Model, "--data", data, "--per-token", "--batch-size", "3", "--threads", "2"]);
            Assert.True(code == 0, error);
            var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
            var examples = JsonlReader.ReadAll(data).ToList();
            Assert.Equal(examples.Count, lines.Count);
            for (int i = 0; i < examples.Count; i++)
            {
                var responses = examples[i] is PreferenceExample p
                    ? new[] { ("chosen_", collator.Tokenize(p.Prompt, p.Chosen)), ("rejected_", collator.Tokenize(p.Prompt, p.Rejected)) }
                    : [("", collator.Tokenize(examples[i]))];
                foreach (var (prefix, sequence) in responses)
                {
                    var tokens = lines[i].GetProperty(prefix + "per_token").EnumerateArray().ToList();
                    double sequenceValue = lines[i].GetProperty(prefix is "" ? "logprob" : prefix[..^1]).GetDouble();
                    Assert.Equal(lines[i].GetProperty(prefix + "tokens").GetInt32(), tokens.Count);
                    Assert.Equal(sequenceValue, tokens.Sum(t => t.GetProperty("logprob").GetDouble()), 1e-4);

                    double[] expected = ReferenceLogProbs(model, sequence, out int[] ids);
                    Assert.Equal(ids, tokens.Select(t => t.GetProperty("id").GetInt32()));
                    Assert.Equal(ids.Select(id => tokenizer.Decode([id])), tokens.Select(t => t.GetProperty("text").GetString()));
                    for (int t = 0; t < ids.Length; t++)
                    {
                        Assert.Equal(expected[t], tokens[t].GetProperty("logprob").GetDouble(), 1e-4);
                    }
                }
            }
        }

        // Without the flag the output keeps its plain shape.
        var (plainCode, plain, plainError) = CliHarness.Run(["logprobs", Model, "--data", pairs, "--threads", "2"]);
        Assert.True(plainCode == 0, plainError);
        Assert.DoesNotContain("per_token", plain, StringComparison.Ordinal);
    }

    /// <summary>log π(y_t | y_&lt;t) of each trained token of <paramref name="sequence"/>, from the full logits of one forward pass.</summary>
    private static double[] ReferenceLogProbs(Engine.Models.Transformer model, TokenizedSequence sequence, out int[] responseIds)
    {
        int n = sequence.Length, v = model.Config.VocabSize;
        var logits = new float[n * v];
        model.ForwardLogits(sequence.Ids, 1, n, logits);

        // Position t predicts token t+1; it counts when that token is a response token.
        var targets = Enumerable.Range(0, n).Select(t => t + 1 < n && sequence.Trained[t + 1] ? sequence.Ids[t + 1] : -1).ToArray();
        var outputs = AlignmentReference.Forward([.. logits.Select(x => (double)x)], targets, null, null, n, v, 1.0);
        responseIds = [.. targets.Where(id => id >= 0)];
        return [.. Enumerable.Range(0, n).Where(t => targets[t] >= 0).Select(t => outputs.LogProbs[t])];
    }
}
