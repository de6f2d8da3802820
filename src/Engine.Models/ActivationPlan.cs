using Engine.Core.Backends;
using Engine.Core.Tensors;

namespace Engine.Models;

/// <summary>
/// Every activation and activation gradient of one (B, T), laid out once in a single buffer. Per-layer tensors are
/// kept for backward; gradient scratch is shared by all layers because backward visits one layer at a time. With
/// activation recomputation (gradient checkpointing) only the residual stream at each layer's input is kept per layer:
/// every layer shares one set of per-layer activations, which backward refills by running the layer's forward again.
/// </summary>
internal sealed class ActivationPlan : IDisposable
{
    private DeviceBuffer? buffer;

    /// <summary>Rows of logits held at once: as many as fit <see cref="Transformer.LogitsChunkBytes"/>, at least one, at most N.</summary>
    public static int LogitRows(TransformerConfig config, int rows) =>
        (int)Math.Clamp(Transformer.LogitsChunkBytes / (config.VocabSize * 4L), 1, rows);

    /// <summary>Bytes the plan of (B, T) takes, computed from the same layout the constructor allocates.</summary>
    public static long ByteLengthFor(TransformerConfig config, int batch, int time, bool training, bool recompute = false) =>
        Layout(config, batch, time, training, recompute).Layout.ByteLength;

    private static (ArenaLayout Layout, Offsets Offsets) Layout(TransformerConfig config, int batch, int time, bool training, bool recompute)
    {
        int n = batch * time, c = config.Channels, l = config.Layers, v = config.VocabSize;
        int qkvC = new AttentionShape(config.Heads, config.KvHeadCount, config.HeadChannels).QkvChannels;
        int attC = config.Heads * config.HeadChannels;
        bool llama = config.Architecture == Architecture.Llama;
        int f = config.MlpChannels, upC = llama ? 2 * f : f;
        bool layerNorm = !llama;
        int logitRows = LogitRows(config, n);

        var layout = new ArenaLayout();
        long tokens = layout.Reserve(DType.I32, n), targets = layout.Reserve(DType.I32, n), losses = layout.Reserve(DType.F32, n);
        var residual = new long[l + 1];
        for (int i = 0; i <= l; i++)
        {
            residual[i] = layout.Reserve(DType.F32, batch, time, c);
        }

        var layers = new (long Norm1, long Mean1, long Rstd1, long Qkv, long Att, long Lse, long Mid, long Norm2, long Mean2, long Rstd2, long Up, long Act)[l];
        for (int i = 0; i < l; i++)
        {
            if (recompute && i > 0)
            {
                layers[i] = layers[0];
                continue;
            }

            layers[i] = (
                layout.Reserve(DType.F32, n, c), layerNorm ? layout.Reserve(DType.F32, n) : -1, layout.Reserve(DType.F32, n),
                layout.Reserve(DType.F32, batch, time, qkvC), layout.Reserve(DType.F32, batch, time, attC),
                layout.Reserve(DType.F32, batch, config.Heads, time), layout.Reserve(DType.F32, n, c),
                layout.Reserve(DType.F32, n, c), layerNorm ? layout.Reserve(DType.F32, n) : -1, layout.Reserve(DType.F32, n),
                layout.Reserve(DType.F32, n, upC), layout.Reserve(DType.F32, n, f));
        }

        long branch = layout.Reserve(DType.F32, n, c);
        long final = layout.Reserve(DType.F32, n, c), finalMean = layout.Reserve(DType.F32, n), finalRstd = layout.Reserve(DType.F32, n);
        long logits = layout.Reserve(DType.F32, logitRows, v);
        long dResidual = 0, dNorm = 0, dQkv = 0, dAtt = 0, dUp = 0, dAct = 0;
        if (training)
        {
            dResidual = layout.Reserve(DType.F32, batch, time, c);
            dNorm = layout.Reserve(DType.F32, n, c);
            dQkv = layout.Reserve(DType.F32, batch, time, qkvC);
            dAtt = layout.Reserve(DType.F32, batch, time, attC);
            dUp = layout.Reserve(DType.F32, n, upC);
            dAct = layout.Reserve(DType.F32, n, f);
        }

        return (layout, new Offsets(
            tokens, targets, losses, residual, layers, branch, final, finalMean, finalRstd, logits, dResidual, dNorm, dQkv, dAtt, dUp, dAct));
    }

    public ActivationPlan(Backend backend, TransformerConfig config, int batch, int time, bool training, bool recompute = false)
        : this(backend, config, batch, time, training, recompute, storage: null)
    {
    }

    /// <summary>
    /// A plan for (<paramref name="batch"/>, <paramref name="time"/>) in place of <paramref name="previous"/> (disposed, or
    /// null): laid out in the previous plan's buffer when that holds it, so batches whose length changes from step to
    /// step (padding to the longest sequence) allocate and clear nothing once the longest has been seen; else in a new
    /// buffer. Every activation is written before it is read, so what the buffer held before does not matter.
    /// </summary>
    public static ActivationPlan Replace(
        ActivationPlan? previous, Backend backend, TransformerConfig config, int batch, int time, bool training, bool recompute = false)
    {
        var storage = previous?.buffer;
        if (previous is not null)
        {
            previous.buffer = null;
        }

        if (storage is not null && storage.ByteLength < ByteLengthFor(config, batch, time, training, recompute))
        {
            storage.Dispose();
            storage = null;
        }

        return new ActivationPlan(backend, config, batch, time, training, recompute, storage);
    }

    private ActivationPlan(Backend backend, TransformerConfig config, int batch, int time, bool training, bool recompute, DeviceBuffer? storage)
    {
        Batch = batch;
        Time = time;
        Recompute = recompute;
        HostLosses = new float[batch * time];
        var (layout, at) = Layout(config, batch, time, training, recompute);
        int n = batch * time, c = config.Channels, f = config.MlpChannels;
        int qkvC = new AttentionShape(config.Heads, config.KvHeadCount, config.HeadChannels).QkvChannels;
        int attC = config.Heads * config.HeadChannels;
        int upC = config.Architecture == Architecture.Llama ? 2 * f : f;

        var arena = storage ?? backend.Allocate(layout.ByteLength);
        buffer = arena;
        ByteLength = layout.ByteLength;
        Tensor T(long offset, DType dtype, params long[] dims) => offset < 0 ? default : ArenaLayout.View(arena, offset, dtype, dims);

        Tokens = T(at.Tokens, DType.I32, batch, time);
        Targets = T(at.Targets, DType.I32, n);
        Losses = T(at.Losses, DType.F32, n);
        Residual = [.. at.Residual.Select(o => T(o, DType.F32, batch, time, c))];
        Layers = [.. at.Layers.Select(x => new LayerActivations(
            T(x.Norm1, DType.F32, n, c), T(x.Mean1, DType.F32, n), T(x.Rstd1, DType.F32, n),
            T(x.Qkv, DType.F32, batch, time, qkvC), T(x.Att, DType.F32, batch, time, attC), T(x.Lse, DType.F32, batch, config.Heads, time),
            T(x.Mid, DType.F32, batch, time, c),
            T(x.Norm2, DType.F32, n, c), T(x.Mean2, DType.F32, n), T(x.Rstd2, DType.F32, n),
            T(x.Up, DType.F32, n, upC), T(x.Act, DType.F32, n, f)))];
        Branch = T(at.Branch, DType.F32, n, c);
        Final = T(at.Final, DType.F32, n, c);
        FinalMean = config.Architecture == Architecture.Llama ? default : T(at.FinalMean, DType.F32, n);
        FinalRstd = T(at.FinalRstd, DType.F32, n);
        Logits = T(at.Logits, DType.F32, LogitRows(config, n), config.VocabSize);
        if (training)
        {
            DResidual = T(at.DResidual, DType.F32, batch, time, c);
            DNorm = T(at.DNorm, DType.F32, n, c);
            DQkv = T(at.DQkv, DType.F32, batch, time, qkvC);
            DAtt = T(at.DAtt, DType.F32, batch, time, attC);
            DUp = T(at.DUp, DType.F32, n, upC);
            DAct = T(at.DAct, DType.F32, n, f);
        }
    }

    public int Batch { get; }

    /// <summary>Host copy of <see cref="Losses"/>, reused every step so reading the loss allocates nothing.</summary>
    public float[] HostLosses { get; }

    public int Time { get; }

    /// <summary>Whether every layer shares one set of activations, refilled in backward by recomputing the layer.</summary>
    public bool Recompute { get; }

    /// <summary>Bytes this (B, T) lays out; the buffer may be larger (it held a longer batch before).</summary>
    public long ByteLength { get; }

    /// <summary>Bytes of the buffer the plan lives in: the memory it holds.</summary>
    public long CapacityBytes => buffer?.ByteLength ?? 0;

    /// <summary>Input token ids [B,T].</summary>
    public Tensor Tokens { get; }

    /// <summary>Next-token targets [N] (negative = ignored).</summary>
    public Tensor Targets { get; }

    /// <summary>Per-position losses [N].</summary>
    public Tensor Losses { get; }

    /// <summary>Residual stream before layer l (index 0 = embeddings) and after the last layer (index L), each [B,T,C].</summary>
    public Tensor[] Residual { get; }

    public LayerActivations[] Layers { get; }

    /// <summary>Scratch for a branch output before it is added to the residual stream [N,C].</summary>
    public Tensor Branch { get; }

    /// <summary>Final-norm output: the hidden states the heads read [N,C].</summary>
    public Tensor Final { get; }

    public Tensor FinalMean { get; }

    public Tensor FinalRstd { get; }

    /// <summary>Logits of one chunk of rows [rows, V]; overwritten with their gradient in training.</summary>
    public Tensor Logits { get; }

    public Tensor DResidual { get; }

    public Tensor DNorm { get; }

    public Tensor DQkv { get; }

    public Tensor DAtt { get; }

    public Tensor DUp { get; }

    public Tensor DAct { get; }

    public bool Training => !DResidual.IsEmpty;

    public void Dispose()
    {
        buffer?.Dispose();
        buffer = null;
    }

    private sealed record Offsets(
        long Tokens, long Targets, long Losses, long[] Residual,
        (long Norm1, long Mean1, long Rstd1, long Qkv, long Att, long Lse, long Mid, long Norm2, long Mean2, long Rstd2, long Up, long Act)[] Layers,
        long Branch, long Final, long FinalMean, long FinalRstd, long Logits,
        long DResidual, long DNorm, long DQkv, long DAtt, long DUp, long DAct);
}

/// <summary>The activations one layer keeps for backward (Mean1/Mean2 are empty for RMSNorm).</summary>
internal readonly record struct LayerActivations(
    Tensor Norm1, Tensor Mean1, Tensor Rstd1, Tensor Qkv, Tensor Attention, Tensor LogSumExp, Tensor Mid,
    Tensor Norm2, Tensor Mean2, Tensor Rstd2, Tensor Up, Tensor Activated);
