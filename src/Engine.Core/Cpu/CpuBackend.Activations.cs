using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Engine.Core.Backends;
using Engine.Core.Cpu.Simd;
using Engine.Core.Tensors;
using Tensor = Engine.Core.Tensors.Tensor;

namespace Engine.Core.Cpu;

public sealed unsafe partial class CpuBackend
{
    // √(2/π)
    private const float GeluScale = 0.7978845608028654f;
    private const float GeluCubic = 0.044715f;

    /// <inheritdoc/>
    protected override void GeluForwardCore(Tensor output, Tensor input)
    {
        var s = new ActivationState { Out = output.Pointer<float>(), In = input.Pointer<float>(), Length = input.ElementCount };
        pool.For(ChunkCount(s.Length), ref s, &GeluForwardChunk);
    }

    /// <inheritdoc/>
    protected override void GeluBackwardCore(Tensor inputGrad, Tensor outputGrad, Tensor input)
    {
        var s = new ActivationState
        {
            InGrad = inputGrad.Pointer<float>(), OutGrad = outputGrad.Pointer<float>(), In = input.Pointer<float>(), Length = input.ElementCount,
        };
        pool.For(ChunkCount(s.Length), ref s, &GeluBackwardChunk);
    }

    /// <inheritdoc/>
    protected override void SwiGluForwardCore(Tensor output, Tensor input)
    {
        var s = new ActivationState { Out = output.Pointer<float>(), In = input.Pointer<float>() };
        s.Chunks = RowChunks.Of(output);
        pool.For(
            s.Chunks.Items,
            ref s,
            Vec.Pick(s.Chunks.C) switch
            {
                VecWidth.W512 => &SwiGluForwardItem<V512>,
                VecWidth.W256 => &SwiGluForwardItem<V256>,
                VecWidth.W128 => &SwiGluForwardItem<V128>,
                _ => &SwiGluForwardItem<V1>,
            });
    }

    /// <inheritdoc/>
    protected override void SwiGluBackwardCore(Tensor inputGrad, Tensor outputGrad, Tensor input)
    {
        var s = new ActivationState { InGrad = inputGrad.Pointer<float>(), OutGrad = outputGrad.Pointer<float>(), In = input.Pointer<float>() };
        s.Chunks = RowChunks.Of(outputGrad);
        pool.For(
            s.Chunks.Items,
            ref s,
            Vec.Pick(s.Chunks.C) switch
            {
                VecWidth.W512 => &SwiGluBackwardItem<V512>,
                VecWidth.W256 => &SwiGluBackwardItem<V256>,
                VecWidth.W128 => &SwiGluBackwardItem<V128>,
                _ => &SwiGluBackwardItem<V1>,
            });
    }

    /// <inheritdoc/>
    protected override void DropoutForwardCore(Tensor output, Tensor input, float probability, ulong seed, ulong offset)
    {
        var s = new ActivationState
        {
            Out = output.Pointer<float>(), In = input.Pointer<float>(), Length = input.ElementCount,
            Probability = probability, Seed = seed, Offset = offset,
        };
        if (probability == 0f)
        {
            if (s.Out != s.In)
            {
                CopyCore(output, input);
            }

            return;
        }

        pool.For(ChunkCount(s.Length), ref s, &DropoutChunk);
    }

    /// <inheritdoc/>
    protected override void DropoutBackwardCore(Tensor inputGrad, Tensor outputGrad, float probability, ulong seed, ulong offset)
    {
        if (probability == 0f)
        {
            AccumulateCore(inputGrad, outputGrad);
            return;
        }

        // Backward is the same masked scaling of dout, added into dinp.
        var s = new ActivationState
        {
            Out = inputGrad.Pointer<float>(), In = outputGrad.Pointer<float>(), Length = outputGrad.ElementCount,
            Probability = probability, Seed = seed, Offset = offset, Accumulate = true,
        };
        pool.For(ChunkCount(s.Length), ref s, &DropoutChunk);
    }

    // x·σ(2u) with u = √(2/π)(x + 0.044715x³): the same value as ½x(1 + tanh u), without tanh's cancellation.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static V Gelu<V>(V x)
        where V : unmanaged, IVec<V>
    {
        var x2 = x * x;
        var minus2u = x * V.MulAdd(x2, V.Create(-2f * GeluScale * GeluCubic), V.Create(-2f * GeluScale));
        return x / (V.Create(1f) + V.Exp(minus2u));
    }

    // gelu'(x) = σ + x·2σ(1 − σ)·u' with σ = σ(2u) = 1/(1 + e), e = exp(−2u), since ½(1 + tanh u) = σ(2u) and
    // ½sech²u = 2σ(1 − σ); 1 − σ is formed as e·σ to avoid cancellation. Beyond |x| = 9 the derivative is 0 or 1 to
    // float precision, so x is clamped to ±9, where e = exp(−2u) stays finite.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static V GeluDerivative<V>(V x)
        where V : unmanaged, IVec<V>
    {
        var one = V.Create(1f);
        x = V.Min(V.Max(x, V.Create(-9f)), V.Create(9f));
        var x2 = x * x;
        var e = V.Exp(x * V.MulAdd(x2, V.Create(-2f * GeluScale * GeluCubic), V.Create(-2f * GeluScale)));
        var sig = one / (one + e);
        var du = V.MulAdd(x2, V.Create(3f * GeluScale * GeluCubic), V.Create(GeluScale));
        return sig * V.MulAdd(x * V.Create(2f) * e * sig, du, one);
    }

    private static void GeluForwardChunk(ref ActivationState s, int index)
    {
        var (start, n) = ChunkRange(s.Length, index);
        float* x = s.In + start, y = s.Out + start;
        switch (Vec.Pick(n))
        {
            case VecWidth.W512: GeluForward<V512>(x, y, n); break;
            case VecWidth.W256: GeluForward<V256>(x, y, n); break;
            case VecWidth.W128: GeluForward<V128>(x, y, n); break;
            default: GeluForward<V1>(x, y, n); break;
        }
    }

    // inp, out are (n), n >= V.Count; out may alias inp
    private static void GeluForward<V>(float* x, float* y, int n)
        where V : unmanaged, IVec<V>
    {
        int i = 0;
        for (; i <= n - V.Count; i += V.Count)
        {
            V.Store(y + i, Gelu(V.Load(x + i)));
        }

        if (i < n)
        {
            // Only the lanes past the last full vector are new; the others keep what the loop stored.
            int at = n - V.Count;
            V.Store(y + at, V.Select(V.TailMask(n - i), Gelu(V.Load(x + at)), V.Load(y + at)));
        }
    }

    private static void GeluBackwardChunk(ref ActivationState s, int index)
    {
        var (start, n) = ChunkRange(s.Length, index);
        float* x = s.In + start, dy = s.OutGrad + start, dx = s.InGrad + start;
        switch (Vec.Pick(n))
        {
            case VecWidth.W512: GeluBackward<V512>(x, dy, dx, n); break;
            case VecWidth.W256: GeluBackward<V256>(x, dy, dx, n); break;
            case VecWidth.W128: GeluBackward<V128>(x, dy, dx, n); break;
            default: GeluBackward<V1>(x, dy, dx, n); break;
        }
    }

    // dinp, dout, inp are (n), n >= V.Count
    private static void GeluBackward<V>(float* x, float* dy, float* dx, int n)
        where V : unmanaged, IVec<V>
    {
        int i = 0;
        for (; i <= n - V.Count; i += V.Count)
        {
            V.Store(dx + i, V.MulAdd(GeluDerivative(V.Load(x + i)), V.Load(dy + i), V.Load(dx + i)));
        }

        if (i < n)
        {
            int at = n - V.Count;
            var cur = V.Load(dx + at);
            var upd = V.MulAdd(GeluDerivative(V.Load(x + at)), V.Load(dy + at), cur);
            V.Store(dx + at, V.Select(V.TailMask(n - i), upd, cur));
        }
    }

    // inp is (N,2F) = [gate | up], out is (N,F)
    private static void SwiGluForwardItem<V>(ref ActivationState s, int item)
        where V : unmanaged, IVec<V>
    {
        var (first, end) = s.Chunks.Range(item);
        int f = s.Chunks.C, at = f - V.Count;
        var one = V.Create(1f);
        for (long row = first; row < end; row++)
        {
            float* g = s.In + (row * 2 * f), u = g + f, y = s.Out + (row * f);
            int i = 0;
            for (; i <= at; i += V.Count)
            {
                var gv = V.Load(g + i);
                V.Store(y + i, gv * V.Load(u + i) / (one + V.Exp(V.Create(0f) - gv)));
            }

            if (i < f)
            {
                var gv = V.Load(g + at);
                var o = gv * V.Load(u + at) / (one + V.Exp(V.Create(0f) - gv));
                V.Store(y + at, V.Select(V.TailMask(f - i), o, V.Load(y + at)));
            }
        }
    }

    // dg += dout·u·σ(g)(1 + g(1 − σ(g))), du += dout·g·σ(g)
    private static void SwiGluBackwardItem<V>(ref ActivationState s, int item)
        where V : unmanaged, IVec<V>
    {
        var (first, end) = s.Chunks.Range(item);
        int f = s.Chunks.C, at = f - V.Count;
        var full = V.TailMask(V.Count);
        for (long row = first; row < end; row++)
        {
            float* g = s.In + (row * 2 * f), u = g + f, dg = s.InGrad + (row * 2 * f), du = dg + f, dy = s.OutGrad + (row * f);
            int i = 0;
            for (; i <= at; i += V.Count)
            {
                SwiGluBackwardStep(i, g, u, dg, du, dy, full);
            }

            if (i < f)
            {
                SwiGluBackwardStep(at, g, u, dg, du, dy, V.TailMask(f - i));
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SwiGluBackwardStep<V>(int i, float* g, float* u, float* dg, float* du, float* dy, V mask)
        where V : unmanaged, IVec<V>
    {
        var one = V.Create(1f);
        var gv = V.Load(g + i);
        var d = V.Load(dy + i);
        var sig = one / (one + V.Exp(V.Create(0f) - gv));
        var gsig = gv * sig;
        var curG = V.Load(dg + i);
        var curU = V.Load(du + i);
        var dsilu = V.MulAdd(gsig, one - sig, sig);
        V.Store(dg + i, V.Select(mask, V.MulAdd(d * V.Load(u + i), dsilu, curG), curG));
        V.Store(du + i, V.Select(mask, V.MulAdd(d, gsig, curU), curU));
    }

    // out = keep ? inp/(1 − p) : 0 (forward), or out += keep ? inp/(1 − p) : 0 (backward, inp = dout)
    private static void DropoutChunk(ref ActivationState s, int index)
    {
        var (start, n) = ChunkRange(s.Length, index);
        float* x = s.In + start, y = s.Out + start;
        float p = s.Probability;
        float scale = 1f / (1f - p);
        ulong first = s.Offset + (ulong)start;

        // Uniform() is k·2⁻²⁴ for the integer k = z >> 40, so u ≥ p exactly when k ≥ ⌈p·2²⁴⌉: the vector paths
        // compare the hashes as integers and make the same decisions as DropoutStream.
        ulong threshold = (ulong)Math.Ceiling(p * 16777216.0);
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var vs = Vector512.Create(scale);
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                var kept = Vector512.ConditionalSelect(KeepMask512(s.Seed, first + (ulong)i, threshold), Vector512.Load(x + i) * vs, default);
                (s.Accumulate ? kept + Vector512.Load(y + i) : kept).Store(y + i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var vs = Vector256.Create(scale);
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var kept = Vector256.ConditionalSelect(KeepMask256(s.Seed, first + (ulong)i, threshold), Vector256.Load(x + i) * vs, default);
                (s.Accumulate ? kept + Vector256.Load(y + i) : kept).Store(y + i);
            }
        }

        // At most one vector's worth is left (every chunk but the last is a multiple of the widths).
        for (; i < n; i++)
        {
            float kept = DropoutStream.Uniform(s.Seed, first + (ulong)i) >= p ? x[i] * scale : 0f;
            y[i] = s.Accumulate ? y[i] + kept : kept;
        }
    }

    // All-ones float lanes where elements index .. index+15 of the (seed) stream are kept.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> KeepMask512(ulong seed, ulong index, ulong threshold)
    {
        var lo = Vector512.Create(index + 1) + Vector512<ulong>.Indices;
        var hi = lo + Vector512.Create(8UL);
        var t = Vector512.Create(threshold);
        var keepLo = Vector512.GreaterThanOrEqual(SplitMix512(seed, lo) >> 40, t);
        var keepHi = Vector512.GreaterThanOrEqual(SplitMix512(seed, hi) >> 40, t);
        return Vector512.Narrow(keepLo, keepHi).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<ulong> SplitMix512(ulong seed, Vector512<ulong> indexPlusOne)
    {
        var z = Vector512.Create(seed) + (indexPlusOne * Vector512.Create(0x9E3779B97F4A7C15UL));
        z = (z ^ (z >> 30)) * Vector512.Create(0xBF58476D1CE4E5B9UL);
        z = (z ^ (z >> 27)) * Vector512.Create(0x94D049BB133111EBUL);
        return z ^ (z >> 31);
    }

    // All-ones float lanes where elements index .. index+7 of the (seed) stream are kept.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> KeepMask256(ulong seed, ulong index, ulong threshold)
    {
        var lo = Vector256.Create(index + 1) + Vector256<ulong>.Indices;
        var hi = lo + Vector256.Create(4UL);
        var t = Vector256.Create(threshold);
        var keepLo = Vector256.GreaterThanOrEqual(SplitMix256(seed, lo) >> 40, t);
        var keepHi = Vector256.GreaterThanOrEqual(SplitMix256(seed, hi) >> 40, t);
        return Vector256.Narrow(keepLo, keepHi).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<ulong> SplitMix256(ulong seed, Vector256<ulong> indexPlusOne)
    {
        var z = Vector256.Create(seed) + (indexPlusOne * Vector256.Create(0x9E3779B97F4A7C15UL));
        z = (z ^ (z >> 30)) * Vector256.Create(0xBF58476D1CE4E5B9UL);
        z = (z ^ (z >> 27)) * Vector256.Create(0x94D049BB133111EBUL);
        return z ^ (z >> 31);
    }

    private struct ActivationState
    {
        public float* Out;
        public float* In;
        public float* InGrad;
        public float* OutGrad;
        public long Length;
        public float Probability;
        public ulong Seed;
        public ulong Offset;
        public bool Accumulate;
        public RowChunks Chunks;
    }
}
