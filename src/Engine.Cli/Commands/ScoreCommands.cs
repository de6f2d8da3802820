using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Models.Tokenizers;
using Engine.Training.Data;
using Engine.Training.Objectives;

namespace Engine.Cli.Commands;

/// <summary>
/// <c>engine logprobs</c> (sequence log-probs of responses under a model) and <c>engine score</c> (rewards of a reward
/// model): one JSON object per dataset line on stdout. Prompt/completion, text, Alpaca and messages lines give one
/// value; preference pairs give one for the chosen and one for the rejected response. <c>logprobs --per-token</c> adds
/// each response token's id, text and log-prob, from the same fused pass as the sums.
/// </summary>
internal static class ScoreCommands
{
    public static void AddTo(RootCommand root)
    {
        root.Add(Create("logprobs", "MODEL", "Print the log-probability of each response (the completion tokens) under a model, as JSONL.", reward: false));
        root.Add(Create("score", "RM_DIR", "Print the reward a reward model gives each response, as JSONL.", reward: true));
    }

    private static Command Create(string name, string modelName, string description, bool reward)
    {
        var model = new Argument<string>(modelName) { Description = "a Hugging Face checkpoint directory" };
        var data = new Option<string>("--data") { Description = "prompt/completion, text, Alpaca, messages or preference-pair JSONL or Parquet", Required = true };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "a tokenizer.json (default: the one in the model directory)" };
        var template = new Option<string?>("--chat-template") { Description = "chatml, llama3 or alpaca (default: recognised from the tokenizer files, if any)" };
        var batchSize = new Option<int>("--batch-size") { Description = "sequences per forward pass", DefaultValueFactory = _ => 8 };
        var maxLength = new Option<int>("--max-length") { Description = "longest sequence in tokens (default: the model's maximum)" };
        var skip = new Option<bool>("--skip-bad-lines") { Description = "skip malformed dataset lines instead of stopping" };
        var perToken = new Option<bool>("--per-token") { Description = "also print each response token's id, text and log-prob" };
        var device = DeviceOption.Create();
        var tf32 = DeviceOption.CreateTf32();
        var threads = new Option<int>("--threads") { Description = "CPU threads", DefaultValueFactory = _ => Environment.ProcessorCount };
        var adapter = LoraCommand.AdapterOption();
        var command = new Command(name, description) { model, data, tokenizer, template, batchSize, maxLength, skip, device, tf32, threads, adapter };
        if (!reward)
        {
            command.Add(perToken);
        }

        command.SetAction(parse =>
        {
            string dir = ModelInputs.ExistingDirectory(parse.GetValue(model)!, modelName);

            int rows = parse.GetValue(batchSize) > 0 ? parse.GetValue(batchSize) : throw new CommandException("--batch-size must be at least 1");
            string tokenizerPath = ModelInputs.TokenizerPath(parse.GetValue(tokenizer), dir);
            var loaded = ModelInputs.LoadTokenizer(tokenizerPath);
            var config = HfCheckpoint.ReadConfig(dir);
            var examples = ModelInputs.ReadExamples(parse.GetValue(data)!, "--data", parse.GetValue(skip));
            int length = parse.GetValue(maxLength) is > 0 and var l ? l : config.Model.MaxSequenceLength;
            var collator = new SequenceCollator(
                ModelInputs.Encoder(loaded, ModelInputs.EosTokenId(config, loaded)),
                new CollatorOptions { MaxLength = length, AppendEos = false, PadTokenId = ModelInputs.EosTokenId(config, loaded) ?? 0 },
                ModelInputs.Template(parse.GetValue(template), tokenizerPath));

            // Every response becomes one row: (example index, field name, tokenized prompt + response).
            var items = new List<(int Example, string Field, TokenizedSequence Sequence)>();
            for (int i = 0; i < examples.Count; i++)
            {
                var e = examples[i];
                foreach (var (field, response) in Responses(e))
                {
                    var sequence = response is null ? collator.Tokenize(e) : collator.Tokenize(response.Value.Prompt, response.Value.Response, e.Tools);
                    // The first token of a row has nothing before it to predict it, so it cannot be scored.
                    if (!sequence.Trained.Skip(1).Any(t => t))
                    {
                        throw new DatasetException(e.Source, e.Line, null, "no response tokens to score (an empty completion, a text of one token, or cut off by --max-length)");
                    }

                    items.Add((i, field, sequence));
                }
            }

            using var backend = DeviceOption.CreateBackend(parse.GetValue(device), parse.GetValue(threads), tf32: parse.GetValue(tf32));
            using var net = LoraCommand.LoadBase(dir, backend, parse.GetValue(adapter));
            LoraCommand.Apply(net, parse.GetValue(adapter));
            var values = new float[items.Count];
            var perTokenValues = !reward && parse.GetValue(perToken) ? new TokenLogProb[items.Count][] : null;
            if (reward && !net.HasScalarHead)
            {
                throw new CommandException("the model has no scalar (reward) head; train one with engine rm");
            }

            using var rewardModel = reward ? new RewardModelObjective(net) : null;
            using var logProbModel = reward ? null : new ReferenceModel(net);
            for (int start = 0; start < items.Count; start += rows)
            {
                var chunk = items.Skip(start).Take(rows).Select(x => x.Sequence).ToList();
                int real = chunk.Count;
                if (real == 1)
                {
                    chunk.Add(chunk[0]); // a batch needs two rows; the copy is discarded
                }

                var batch = new PreferenceBatch(collator.Collate(chunk), [0], [1]);
                float[] scores = rewardModel?.Rewards(batch) ?? new float[batch.Rows];
                if (perTokenValues is not null)
                {
                    var positions = new float[batch.Rows * batch.Time];
                    logProbModel!.SequenceLogProbs(batch, scores, positions);
                    for (int r = 0; r < real; r++)
                    {
                        perTokenValues[start + r] = ResponseTokens(batch.Sequences, r, positions, loaded);
                    }
                }
                else
                {
                    logProbModel?.SequenceLogProbs(batch, scores);
                }

                scores.AsSpan(0, real).CopyTo(values.AsSpan(start));
            }

            string key = reward ? "reward" : "logprob";
            int item = 0;
            for (int i = 0; i < examples.Count; i++)
            {
                var line = new Dictionary<string, object> { ["line"] = examples[i].Line };
                for (; item < items.Count && items[item].Example == i; item++)
                {
                    line[items[item].Field is "" ? key : items[item].Field] = values[item];
                    string prefix = items[item].Field is "" ? "" : items[item].Field + "_";
                    if (!reward)
                    {
                        line[prefix + "tokens"] = items[item].Sequence.Trained.Count(t => t);
                    }

                    if (perTokenValues is not null)
                    {
                        line[prefix + "per_token"] = perTokenValues[item];
                    }
                }

                Console.Out.WriteLine(JsonSerializer.Serialize(line));
            }

            return 0;
        });
        return command;
    }

    /// <summary>The response tokens of row <paramref name="row"/> (where its loss mask is 1), in order, with their log-probs from <paramref name="positions"/> [R·T].</summary>
    private static TokenLogProb[] ResponseTokens(SequenceBatch sequences, int row, float[] positions, Tokenizer tokenizer)
    {
        var result = new List<TokenLogProb>();
        for (int p = row * sequences.Time; p < (row + 1) * sequences.Time; p++)
        {
            if (sequences.LossMask[p] != 0)
            {
                int id = sequences.Targets[p];
                result.Add(new TokenLogProb(id, tokenizer.Decode([id]), positions[p]));
            }
        }

        return [.. result];
    }

    /// <summary>One element of a <c>per_token</c> array: the token id, its text (decoded alone) and log π(token | everything before it).</summary>
    private sealed record TokenLogProb(
        [property: JsonPropertyName("id")] int Id,
        [property: JsonPropertyName("text")] string Text,
        [property: JsonPropertyName("logprob")] float LogProb);

    /// <summary>The responses of an example: ("", null) for one scored as a whole; chosen and rejected for a pair.</summary>
    private static IEnumerable<(string Field, (TextOrChat Prompt, TextOrChat Response)? Response)> Responses(Example example) => example switch
    {
        PreferenceExample p => [("chosen", (p.Prompt, p.Chosen)), ("rejected", (p.Prompt, p.Rejected))],
        RankingExample r => throw new DatasetException(r.Source, r.Line, null, "rankings are not scored; give pairs or single responses"),
        PromptExample p => throw new DatasetException(p.Source, p.Line, null, "a prompt without a response has nothing to score"),
        _ => [("", null)],
    };
}
