// GELU (tanh approximation), SwiGLU and inverted dropout. Flat arrays of n elements unless a shape is given.
#include "common.cuh"

#define GELU_SCALE 0.7978845608028654f
#define GELU_CUBIC 0.044715f

// gelu(x) = ½x(1 + tanh u) = x·σ(2u), u = √(2/π)(x + 0.044715x³): the σ form avoids tanh's cancellation (as the CPU).
extern "C" __global__ void gelu_forward(float* out, const float* inp, i64 n)
{
    for (i64 i = global_index(); i < n; i += global_stride())
    {
        float x = inp[i];
        float minus2u = x * fmaf(x * x, -2.0f * GELU_SCALE * GELU_CUBIC, -2.0f * GELU_SCALE);
        out[i] = x / (1.0f + expf(minus2u));
    }
}

// dinp += gelu'(x)·dout with gelu' = σ + x·2σ(1 − σ)·u', 1 − σ formed as e·σ; x clamped to ±9 where gelu' is 0 or 1
extern "C" __global__ void gelu_backward(float* dinp, const float* dout, const float* inp, i64 n)
{
    for (i64 i = global_index(); i < n; i += global_stride())
    {
        float x = fminf(fmaxf(inp[i], -9.0f), 9.0f);
        float x2 = x * x;
        float e = expf(x * fmaf(x2, -2.0f * GELU_SCALE * GELU_CUBIC, -2.0f * GELU_SCALE));
        float sig = 1.0f / (1.0f + e);
        float du = fmaf(x2, 3.0f * GELU_SCALE * GELU_CUBIC, GELU_SCALE);
        float derivative = sig * fmaf(x * 2.0f * e * sig, du, 1.0f);
        dinp[i] = fmaf(derivative, dout[i], dinp[i]);
    }
}

// inp is (N,2F) = [gate | up], out is (N,F): out = g·σ(g)·u; n = N·F
extern "C" __global__ void swiglu_forward(float* out, const float* inp, i64 n, int F)
{
    for (i64 i = global_index(); i < n; i += global_stride())
    {
        i64 row = i / F;
        int j = (int)(i - row * F);
        const float* gate = inp + row * 2 * F;
        float g = gate[j];
        out[i] = g * gate[F + j] / (1.0f + expf(-g));
    }
}

// dg += dout·u·σ(g)(1 + g(1 − σ(g))), du += dout·g·σ(g); dinp is (N,2F), dout (N,F), n = N·F
extern "C" __global__ void swiglu_backward(float* dinp, const float* dout, const float* inp, i64 n, int F)
{
    for (i64 i = global_index(); i < n; i += global_stride())
    {
        i64 row = i / F;
        int j = (int)(i - row * F);
        const float* gate = inp + row * 2 * F;
        float* dgate = dinp + row * 2 * F;
        float g = gate[j], u = gate[F + j], d = dout[i];
        float sig = 1.0f / (1.0f + expf(-g));
        float gsig = g * sig;
        float dsilu = fmaf(gsig, 1.0f - sig, sig);
        dgate[j] = fmaf(d * u, dsilu, dgate[j]);
        dgate[F + j] = fmaf(d, gsig, dgate[F + j]);
    }
}

// The DropoutStream hash (Engine.Core.Backends.DropoutStream): SplitMix64 of (seed, index); its top 24 bits k make the
// uniform k·2⁻²⁴, so "u ≥ p" is "k ≥ threshold" with threshold = ⌈p·2²⁴⌉ computed on the host: the same decisions as
// the CPU, bit for bit.
__device__ __forceinline__ bool dropout_keep(u64 seed, u64 index, u32 threshold)
{
    u64 z = seed + (index + 1ull) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (u32)(z >> 40) >= threshold;
}

// out = keep ? x/(1 − p) : 0 (accumulate = 0), or out += keep ? x/(1 − p) : 0 (accumulate = 1, backward with x = dout).
// The product is rounded on its own (__fmul_rn) so no fused multiply-add changes the bits against the CPU.
extern "C" __global__ void dropout_apply(float* out, const float* inp, i64 n, u64 seed, u64 offset, u32 threshold, float scale, int accumulate)
{
    for (i64 i = global_index(); i < n; i += global_stride())
    {
        float kept = dropout_keep(seed, offset + (u64)i, threshold) ? __fmul_rn(inp[i], scale) : 0.0f;
        out[i] = accumulate ? __fadd_rn(out[i], kept) : kept;
    }
}
