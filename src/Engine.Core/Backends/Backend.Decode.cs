using Engine.Core.Tensors;

namespace Engine.Core.Backends;

// Incremental (KV-cached) attention for generation.
public abstract partial class Backend
{
    /// <summary>
    /// Causal attention of Tq new tokens per sequence against a key/value cache. For every sequence b with
    /// p = positions[b] tokens already cached: the k and v heads of qkv [B,Tq,(NH+2·NKV)·HS] for new token t are written
    /// to cache slot p + t of kCache and vCache [B,NKV,maxT,HS], then query t attends to slots 0 … p + t:
    /// out[b,t,h·HS…] = softmax(q·kᵀ/√HS)·v, query head h reading key/value head h / (NH/NKV). Any RoPE must already be
    /// applied to qkv. positions [B] (i32) is read, never advanced: the caller tracks lengths. Every p + Tq must be at
    /// most maxT (checked by the CPU backend; the CUDA kernel skips sequences that would overflow). Slots past p + Tq are
    /// never read, so a batch of prompts of different lengths can be right-padded in one call.
    /// </summary>
    public void AttentionDecode(Tensor output, Tensor qkv, Tensor kCache, Tensor vCache, Tensor positions, AttentionShape shape)
    {
        var (b, t) = CheckAttention(qkv, shape);
        RequireF32(output, nameof(output));
        RequireDims(output, nameof(output), b, t, shape.OutChannels);
        CheckCache(kCache, vCache, positions, shape, b, t);
        AttentionDecodeCore(output, qkv, kCache, vCache, positions, shape);
    }

    private void CheckCache(Tensor kCache, Tensor vCache, Tensor positions, AttentionShape shape, long b, long t)
    {
        RequireF32(kCache, nameof(kCache), rank: 4);
        if (kCache.Shape[0] != b || kCache.Shape[1] != shape.NumKvHeads || kCache.Shape[3] != shape.HeadSize || kCache.Shape[2] < t)
        {
            throw new ArgumentException($"kCache {kCache.Shape} must be [B={b}, NKV={shape.NumKvHeads}, maxT ≥ {t}, HS={shape.HeadSize}]");
        }

        SameShape(kCache, vCache, nameof(vCache));
        RequireTokens(positions, nameof(positions));
        RequireDims(positions, nameof(positions), b);
    }

    /// <summary>
    /// Only the cache write of <see cref="AttentionDecode"/>: the k and v heads of new token t of sequence b go to slot
    /// positions[b] + t of kCache and vCache. With a fresh cache (every position 0) a prefill chunk can run the tiled
    /// <see cref="AttentionForward"/> on qkv and store its keys and values with this.
    /// </summary>
    public void KvCacheWrite(Tensor kCache, Tensor vCache, Tensor qkv, Tensor positions, AttentionShape shape)
    {
        var (b, t) = CheckAttention(qkv, shape);
        CheckCache(kCache, vCache, positions, shape, b, t);
        KvCacheWriteCore(kCache, vCache, qkv, positions, shape);
    }

    /// <summary>Backend implementation of <see cref="KvCacheWrite"/>; arguments are validated.</summary>
    protected abstract void KvCacheWriteCore(Tensor kCache, Tensor vCache, Tensor qkv, Tensor positions, AttentionShape shape);

    /// <summary>Backend implementation of <see cref="AttentionDecode"/>; arguments are validated.</summary>
    protected abstract void AttentionDecodeCore(Tensor output, Tensor qkv, Tensor kCache, Tensor vCache, Tensor positions, AttentionShape shape);
}
