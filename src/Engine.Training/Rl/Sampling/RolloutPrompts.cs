using Engine.Models.Chat;
using Engine.Training.Data;

namespace Engine.Training.Rl.Sampling;

/// <summary>Prompts for rollouts from a dataset: the <c>prompt</c> (or prompt-only <c>messages</c>) of each example, tokenized for generation.</summary>
public static class RolloutPrompts
{
    /// <summary>
    /// The prompt of each example (prompt-only, prompt/completion, preference pair or ranking), tokenized by
    /// <paramref name="encoder"/> as a generation prompt (BOS first when the encoder has one; conversations rendered by
    /// <paramref name="template"/>, ending with the assistant header) and cut from the left, keeping BOS, to
    /// <paramref name="maxPromptLength"/> tokens.
    /// </summary>
    /// <exception cref="DatasetException">An example has no prompt or tokenizes to nothing (names its file and line).</exception>
    public static List<int[]> Tokenize(IEnumerable<Example> examples, ITextEncoder encoder, int maxPromptLength, ChatTemplate? template = null)
    {
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(encoder);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxPromptLength);
        var cut = new SequenceCollator(encoder, new CollatorOptions { MaxLength = maxPromptLength, MaxPromptLength = maxPromptLength, TruncatePromptLeft = true }, template);
        var result = new List<int[]>();
        foreach (var example in examples)
        {
            var prompt = example switch
            {
                PromptExample p => p.Prompt,
                PromptCompletionExample pc => pc.Prompt,
                PreferenceExample pref => pref.Prompt,
                RankingExample rank => rank.Prompt,
                _ => throw new DatasetException(example.Source, example.Line, null, $"a {ExampleFormats.Fields(example)} line has no prompt to sample a response to"),
            };
            var ids = cut.TokenizePrompt(prompt, example.Tools).Ids;
            result.Add(ids.Length > 0 ? ids : throw new DatasetException(example.Source, example.Line, "prompt", "the prompt tokenizes to nothing"));
        }

        return result;
    }
}
