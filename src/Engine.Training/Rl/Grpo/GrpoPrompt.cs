using Engine.Models.Chat;
using Engine.Training.Data;
using Engine.Training.Rl.Sampling;

namespace Engine.Training.Rl.Grpo;

/// <summary>A prompt of the GRPO family: the dataset row it came from (its file, line and other columns, for the rewards) and its token ids.</summary>
/// <param name="Row">The dataset example.</param>
/// <param name="Ids">The prompt's token ids as the policy reads them (1 to max_length − max_completion_length).</param>
public sealed record GrpoPrompt(Example Row, int[] Ids)
{
    /// <summary>
    /// The prompt of each example, tokenized as <see cref="RolloutPrompts.Tokenize"/> does (a generation prompt, chats
    /// through <paramref name="template"/>, cut from the left to <paramref name="maxPromptLength"/> tokens).
    /// </summary>
    public static List<GrpoPrompt> Tokenize(IReadOnlyList<Example> examples, ITextEncoder encoder, int maxPromptLength, ChatTemplate? template = null)
    {
        ArgumentNullException.ThrowIfNull(examples);
        var ids = RolloutPrompts.Tokenize(examples, encoder, maxPromptLength, template);
        return [.. examples.Zip(ids, (row, prompt) => new GrpoPrompt(row, prompt))];
    }
}
