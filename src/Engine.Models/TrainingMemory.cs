using Engine.Models.Lora;

namespace Engine.Models;

/// <summary>
/// Memory a full-parameter fp32 training run with AdamW takes, in bytes: weights, gradients and both moments
/// (4 bytes each per parameter, so 16·P) plus the activation plan of one (B, T) step. The one place this formula lives;
/// <c>engine info</c> prints it.
/// </summary>
/// <param name="Parameters">P, the number of parameters.</param>
/// <param name="Weights">4·P bytes of fp32 weights.</param>
/// <param name="Gradients">4·P bytes of fp32 gradients.</param>
/// <param name="Moments">8·P bytes: AdamW's first and second moments.</param>
/// <param name="Activations">The activation plan of (B, T) in training mode (<see cref="Transformer.ActivationBytesFor"/>), with
/// activation recomputation when the estimate was made for it.</param>
public sealed record TrainingMemory(long Parameters, long Weights, long Gradients, long Moments, long Activations)
{
    /// <summary>Everything together.</summary>
    public long Total => Weights + Gradients + Moments + Activations;

    /// <summary>
    /// The estimate for a model of <paramref name="config"/> trained on batches of B sequences of T tokens, keeping every
    /// activation or, with <paramref name="gradientCheckpointing"/>, only each layer's input (<see cref="Transformer.GradientCheckpointing"/>).
    /// </summary>
    public static TrainingMemory For(TransformerConfig config, int batch, int time, bool gradientCheckpointing = false)
    {
        long p = Transformer.ParameterCount(config);
        return new TrainingMemory(p, 4 * p, 4 * p, 8 * p, Transformer.ActivationBytesFor(config, batch, time, training: true, gradientCheckpointing));
    }

    /// <summary>
    /// The estimate for LoRA training of <paramref name="config"/>: <see cref="Parameters"/> counts the trained adapter
    /// parameters A; weights are the frozen base plus the adapters (4·(P + A)), gradients 4·A, moments 8·A, activations
    /// the trunk's plus the adapters' per-row buffers.
    /// </summary>
    public static TrainingMemory ForLora(TransformerConfig config, LoraConfig lora, int batch, int time)
    {
        ArgumentNullException.ThrowIfNull(lora);
        var full = For(config, batch, time);
        var sites = LoraSite.Targeted(config, lora, "--lora");
        long a = LoraAdapters.ParameterCount(lora, sites);
        return new TrainingMemory(
            a, full.Weights + (4 * a), 4 * a, 8 * a, full.Activations + LoraAdapters.ActivationBytesFor(lora, sites, (long)batch * time));
    }
}
