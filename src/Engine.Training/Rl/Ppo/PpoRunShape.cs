using Engine.Models;

namespace Engine.Training.Rl.Ppo;

/// <summary>
/// The sizes of a PPO run a memory plan needs, known before it starts: the models' configurations, which of them stay
/// in memory, and the batch shapes of each phase. Rollout rows hold at most <see cref="MaxPromptLength"/> +
/// <see cref="ResponseLength"/> = <see cref="MaxLength"/> tokens.
/// </summary>
/// <param name="Actor">The policy's configuration (trained: parameters, gradients, AdamW moments, training activations).</param>
/// <param name="Critic">The value model's configuration (trained).</param>
/// <param name="RewardModel">The reward model's configuration (frozen, resident).</param>
/// <param name="Reference">The reference policy's configuration (frozen).</param>
/// <param name="ReferenceResident">Whether the reference stays in memory (false: loaded per rollout and released).</param>
/// <param name="RolloutBatch">Prompts per rollout (rows of the KV cache and of the experience passes, see <paramref name="ForwardBatch"/>).</param>
/// <param name="ForwardBatch">Rows per forward pass of the rollout (generation chunk and scoring chunk).</param>
/// <param name="MiniBatch">Rows per optimizer update.</param>
/// <param name="MicroBatch">Rows per training forward/backward (the minibatch split by gradient accumulation).</param>
/// <param name="MaxPromptLength">Longest prompt, in tokens.</param>
/// <param name="ResponseLength">Most tokens sampled per response.</param>
/// <param name="MaxLength">Longest prompt + response.</param>
/// <param name="PtxRows">Rows of pretraining text per update (0 without PPO-ptx), each <paramref name="MaxLength"/> tokens.</param>
/// <param name="ActorLora">The actor's LoRA settings when it trains adapters, else null.</param>
/// <param name="SeparateReference">
/// Whether the reference is a model of its own (<c>--ref</c>) rather than the LoRA actor's base run with adapters off
/// (which holds no weights of its own); it matters only with <paramref name="ActorLora"/>.
/// </param>
public sealed record PpoRunShape(
    TransformerConfig Actor,
    TransformerConfig Critic,
    TransformerConfig RewardModel,
    TransformerConfig Reference,
    bool ReferenceResident,
    int RolloutBatch,
    int ForwardBatch,
    int MiniBatch,
    int MicroBatch,
    int MaxPromptLength,
    int ResponseLength,
    int MaxLength,
    int PtxRows,
    Engine.Models.Lora.LoraConfig? ActorLora = null,
    bool SeparateReference = false);
