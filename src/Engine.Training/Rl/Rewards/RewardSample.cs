using Engine.Training.Data;

namespace Engine.Training.Rl.Rewards;

/// <summary>
/// One completion to score: the dataset row its prompt came from (with the row's other columns, such as an answer),
/// the prompt and completion as text, and how the completion ended.
/// </summary>
/// <param name="Row">The dataset example the prompt was read from (its file, line and <see cref="Example.Columns"/>).</param>
/// <param name="Prompt">The prompt as the model saw it, decoded (chat template applied).</param>
/// <param name="PromptIds">The prompt's token ids as the policy read them.</param>
/// <param name="Completion">The sampled completion, decoded, without its stop token.</param>
/// <param name="CompletionIds">The completion's token ids, its stop token included when it produced one.</param>
/// <param name="EndedWithEos">Whether the completion ended with a stop token rather than running out of length.</param>
public sealed record RewardSample(Example Row, string Prompt, int[] PromptIds, string Completion, int[] CompletionIds, bool EndedWithEos);
