using Engine.Core.Backends;
using Engine.Core.Tensors;

namespace Engine.Models;

/// <summary>
/// Keys and values of every layer for a batch of B sequences of up to maxT tokens, [B,NKV,maxT,HS] per layer, plus the
/// scratch an incremental forward needs, all allocated once and reused by every <see cref="Transformer.Append"/> call.
/// Each sequence has its own length (tokens cached so far); a new token of sequence b sits at position Lengths[b], so
/// prompts of different lengths need no padding inside the cache. Create one with <see cref="Transformer.CreateCache"/>.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly int[] lengths;
    private ActivationPlan? decodePlan;
    private ActivationPlan? chunkPlan;

    internal KvCache(Backend backend, TransformerConfig config, AttentionShape shape, int batch, int maxTime)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batch);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxTime);
        if (maxTime > config.MaxSequenceLength)
        {
            throw new ArgumentOutOfRangeException(nameof(maxTime), $"cache length {maxTime} exceeds the model's maximum of {config.MaxSequenceLength}");
        }

        Backend = backend;
        Config = config;
        Batch = batch;
        MaxTime = maxTime;
        lengths = new int[batch];
        HostPositions = new int[batch];
        HostPositionIds = new int[batch * maxTime];
        Keys = new Tensor[config.Layers];
        Values = new Tensor[config.Layers];
        for (int l = 0; l < config.Layers; l++)
        {
            Keys[l] = backend.AllocateTensor(DType.F32, batch, shape.NumKvHeads, maxTime, shape.HeadSize);
            Values[l] = backend.AllocateTensor(DType.F32, batch, shape.NumKvHeads, maxTime, shape.HeadSize);
        }

        Positions = backend.AllocateTensor(DType.I32, batch);
        PositionIds = backend.AllocateTensor(DType.I32, (long)batch * maxTime);
        bool llama = config.Architecture == Architecture.Llama;
        RopeRows = llama ? backend.AllocateTensor(DType.F32, (long)batch * maxTime, config.HeadChannels) : default;
        PositionRows = llama ? default : backend.AllocateTensor(DType.F32, (long)batch * maxTime, config.Channels);
        LastHidden = backend.AllocateTensor(DType.F32, batch, config.Channels);
        Logits = backend.AllocateTensor(DType.F32, batch, config.VocabSize);
    }

    /// <summary>Sequences in the batch.</summary>
    public int Batch { get; }

    /// <summary>Most tokens one sequence can hold.</summary>
    public int MaxTime { get; }

    /// <summary>Tokens cached so far, per sequence.</summary>
    public ReadOnlySpan<int> Lengths => lengths;

    /// <summary>Bytes of the key and value caches.</summary>
    public long CacheBytes => 2L * Keys.Length * (Keys.Length > 0 ? Keys[0].ElementCount * 4 : 0);

    /// <summary>Bytes the cache holds now: keys, values, position and head buffers, and the inference plans made so far.</summary>
    public long ByteLength =>
        Keys.Concat(Values).Concat([Positions, PositionIds, RopeRows, PositionRows, LastHidden, Logits]).Sum(t => t.Buffer?.ByteLength ?? 0)
        + (decodePlan?.CapacityBytes ?? 0) + (chunkPlan?.CapacityBytes ?? 0);

    /// <summary>
    /// Bytes a cache of <paramref name="batch"/> sequences of up to <paramref name="maxTime"/> tokens holds after a prefill
    /// chunk of <paramref name="prefillTime"/> tokens per sequence and single-token decoding (<see cref="ByteLength"/> then),
    /// computed from the same shapes the constructor allocates, without allocating anything.
    /// </summary>
    public static long ByteLengthFor(TransformerConfig config, int batch, int maxTime, int prefillTime)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batch);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxTime);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(prefillTime);
        long f32 = DType.F32.SizeOf(), i32 = DType.I32.SizeOf(), rows = (long)batch * maxTime;
        long keysAndValues = 2L * config.Layers * rows * config.KvHeadCount * config.HeadChannels * f32;
        long positions = (batch + rows) * i32;
        long positionRows = rows * (config.Architecture == Architecture.Llama ? config.HeadChannels : config.Channels) * f32;
        long heads = (long)batch * (config.Channels + config.VocabSize) * f32;
        long plans = ActivationPlan.ByteLengthFor(config, batch, 1, training: false)
            + (prefillTime > 1 ? ActivationPlan.ByteLengthFor(config, batch, prefillTime, training: false) : 0);
        return keysAndValues + positions + positionRows + heads + plans;
    }

    internal Backend Backend { get; }

    internal TransformerConfig Config { get; }

    internal Tensor[] Keys { get; }

    internal Tensor[] Values { get; }

    /// <summary>Cache slot of the first new token of each sequence [B] (i32).</summary>
    internal Tensor Positions { get; }

    /// <summary>Position of every new (b, t), row-major [B·Tq] (i32).</summary>
    internal Tensor PositionIds { get; }

    /// <summary>RoPE table rows gathered for each new (b, t) [B·Tq, HS] (Llama).</summary>
    internal Tensor RopeRows { get; }

    /// <summary>Learned position rows gathered for each new (b, t) [B·Tq, C] (GPT-2).</summary>
    internal Tensor PositionRows { get; }

    /// <summary>Final hidden state of the last new token of each sequence [B,C].</summary>
    internal Tensor LastHidden { get; }

    /// <summary>Logits of <see cref="LastHidden"/> [B,V].</summary>
    internal Tensor Logits { get; }

    internal int[] HostPositions { get; }

    /// <summary>The current call's chunk has more than one token and every sequence starts at position 0.</summary>
    internal bool FreshChunk { get; set; }

    internal int[] HostPositionIds { get; }

    /// <summary>Forgets every sequence (lengths back to 0); the memory is kept.</summary>
    public void Reset() => Array.Clear(lengths);

    internal void Advance(int sequence, int count) => lengths[sequence] += count;

    /// <summary>An inference activation plan for (B, Tq): one kept for single-token decode, one for the last longer chunk.</summary>
    internal ActivationPlan Plan(int time)
    {
        if (time == 1)
        {
            return decodePlan ??= new ActivationPlan(Backend, Config, Batch, 1, training: false);
        }

        if (chunkPlan is null || chunkPlan.Time != time)
        {
            chunkPlan = ActivationPlan.Replace(chunkPlan, Backend, Config, Batch, time, training: false);
        }

        return chunkPlan;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        decodePlan?.Dispose();
        chunkPlan?.Dispose();
        foreach (var t in Keys.Concat(Values))
        {
            t.Buffer?.Dispose();
        }

        foreach (var t in new[] { Positions, PositionIds, RopeRows, PositionRows, LastHidden, Logits })
        {
            t.Buffer?.Dispose();
        }
    }
}
