using Engine.Core;
using Engine.Core.Backends;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Training.Rl.Sampling;

namespace Engine.Training.Rl.Rewards;

/// <summary>
/// A reward model's score of each (prompt, completion), read by <see cref="RewardScorer"/> at the last token of
/// <see cref="RewardSample.PromptIds"/> + <see cref="RewardSample.CompletionIds"/> (so the reward model must share the
/// policy's tokenizer). Standardised with the statistics stored with the model, r = (s − mean)/std, when it has them.
/// </summary>
public sealed class ModelReward : IRewardFunction, IDisposable
{
    private readonly bool ownsModel;

    /// <summary>A reward of <paramref name="model"/> (scalar head), disposed with this reward when <paramref name="ownsModel"/>.</summary>
    /// <exception cref="ArgumentException">The model has no scalar head, or stored statistics that cannot normalise.</exception>
    public ModelReward(Transformer model, bool ownsModel = false, int batchSize = 16)
    {
        ArgumentNullException.ThrowIfNull(model);
        Scorer = new RewardScorer(model, new RewardScoringOptions { BatchSize = batchSize, Normalize = model.RewardStatistics is not null });
        this.ownsModel = ownsModel;
    }

    /// <summary>The scorer the reward goes through.</summary>
    public RewardScorer Scorer { get; }

    /// <summary>The name metrics use (<c>rewards/&lt;name&gt;/mean</c>): <c>model</c> unless set, as it must be when a
    /// <see cref="RewardSet"/> holds two of this kind.</summary>
    public string Name { get; init; } = "model";

    /// <summary>
    /// Loads the reward model in <paramref name="directory"/> on <paramref name="backend"/>, frozen, checking that it
    /// has a scalar head and, when <paramref name="vocabularySize"/> &gt; 0, that it reads every token id of a policy
    /// with that vocabulary; the reward is named <paramref name="name"/>.
    /// </summary>
    /// <exception cref="InputException">No checkpoint there, no scalar head, or too small a vocabulary.</exception>
    public static ModelReward Load(string directory, Backend backend, int vocabularySize = 0, string name = "model")
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(backend);
        if (!Directory.Exists(directory))
        {
            throw new InputException(directory, null, null, "no such directory; a reward model is a checkpoint directory (engine rm writes one)");
        }

        var config = HfCheckpoint.ReadConfig(directory).Model;
        if (config.Head != HeadKind.Scalar)
        {
            throw new InputException(directory, null, null, "has no scalar (reward) head; train one with engine rm");
        }

        if (vocabularySize > 0 && config.VocabSize < vocabularySize)
        {
            throw new InputException(directory, null, null,
                $"the reward model reads {config.VocabSize} token ids, the policy writes {vocabularySize}; a reward model must share the policy's tokenizer");
        }

        var model = HfCheckpoint.Load(directory, backend, trainable: false);
        try
        {
            return new ModelReward(model, ownsModel: true) { Name = name };
        }
        catch (ArgumentException e)
        {
            model.Dispose();
            throw new InputException(directory, null, null, e.Message, e);
        }
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">A token id the reward model cannot read, or a prompt + completion longer than its context.</exception>
    public void Score(IReadOnlyList<RewardSample> samples, Span<float> scores)
    {
        ArgumentNullException.ThrowIfNull(samples);
        int vocabulary = Scorer.Model.Config.VocabSize;
        var rollouts = new Rollout[samples.Count];
        for (int i = 0; i < samples.Count; i++)
        {
            var s = samples[i];
            if (s.PromptIds.Any(Outside) || s.CompletionIds.Any(Outside))
            {
                throw new ArgumentException($"completion {i} holds a token id outside the reward model's vocabulary of {vocabulary}");
            }

            rollouts[i] = new Rollout(s.PromptIds, s.CompletionIds, s.EndedWithEos);
        }

        Scorer.Score(rollouts).Rewards.CopyTo(scores);
        bool Outside(int id) => (uint)id >= (uint)vocabulary;
    }

    /// <summary>Frees the reward model when this reward loaded it.</summary>
    public void Dispose()
    {
        if (ownsModel)
        {
            Scorer.Model.Dispose();
        }
    }
}
