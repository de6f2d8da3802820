// Shared helpers of the Engine kernels. NVRTC ships no include directory, so nothing here includes a toolkit header:
// fixed-width types, infinities, half-precision conversions and reductions are written out.
#pragma once

typedef unsigned long long u64;
typedef long long i64;
typedef unsigned int u32;
typedef unsigned short u16;

#define ENGINE_INF (__int_as_float(0x7f800000))
#define ENGINE_WARP 32
#define ENGINE_FULL_MASK 0xffffffffu

// ---------------------------------------------------------------------------------------------------- checks
// Kernels cannot throw. An input error (a token id outside the vocabulary, a target past V) is recorded in a small
// device word the host reads at its next synchronisation and turns into an exception. Only the first report sticks.
// error[0] = code, error[1] = position (low 32 bits), error[2] = offending value.
#define ENGINE_ERROR_TOKEN_RANGE 1
#define ENGINE_ERROR_TARGET_RANGE 2
#define ENGINE_ERROR_LOGPROB_TARGET 3
#define ENGINE_ERROR_PAIR_INDEX 4
#define ENGINE_ERROR_PREFERENCE_INDEX 5

__device__ __forceinline__ void engine_report(int* error, int code, i64 position, int value)
{
    if (error != 0 && atomicCAS(error, 0, code) == 0)
    {
        error[1] = (int)position;
        error[2] = value;
    }
}

// ---------------------------------------------------------------------------------------------------- conversions
// bf16 is the high half of an fp32; rounding to nearest even on the dropped 16 bits, NaN kept quiet.
__device__ __forceinline__ float bf16_to_f32(u16 h)
{
    return __uint_as_float(((u32)h) << 16);
}

__device__ __forceinline__ u16 f32_to_bf16(float f)
{
    u32 x = __float_as_uint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
    {
        return (u16)((x >> 16) | 0x0040u);
    }
    u32 rounding = 0x7fffu + ((x >> 16) & 1u);
    return (u16)((x + rounding) >> 16);
}

// IEEE half: 1 sign, 5 exponent (bias 15), 10 mantissa bits; subnormals and infinities handled exactly.
__device__ __forceinline__ float f16_to_f32(u16 h)
{
    u32 sign = ((u32)h & 0x8000u) << 16;
    u32 exponent = ((u32)h >> 10) & 0x1fu;
    u32 mantissa = (u32)h & 0x3ffu;
    if (exponent == 0x1fu)
    {
        return __uint_as_float(sign | 0x7f800000u | (mantissa << 13));
    }
    if (exponent == 0)
    {
        // ±m·2⁻²⁴, exact in fp32.
        float magnitude = (float)mantissa * 5.9604644775390625e-8f;
        return sign ? -magnitude : magnitude;
    }
    return __uint_as_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

__device__ __forceinline__ u16 f32_to_f16(float f)
{
    u32 x = __float_as_uint(f);
    u32 sign = (x >> 16) & 0x8000u;
    u32 magnitude = x & 0x7fffffffu;
    if (magnitude > 0x7f800000u)
    {
        return (u16)(sign | 0x7e00u);
    }
    if (magnitude >= 0x477ff000u)
    {
        // 65520 and up round to infinity.
        return (u16)(sign | 0x7c00u);
    }
    if (magnitude < 0x38800000u)
    {
        // Below 2⁻¹⁴: a subnormal half. Scaling by 2²⁴ makes the result an integer count of 2⁻²⁴; rintf rounds to even.
        float scaled = __uint_as_float(magnitude) * 16777216.0f;
        return (u16)(sign | (u32)rintf(scaled));
    }
    u32 rounded = magnitude + 0x0fffu + ((magnitude >> 13) & 1u);
    return (u16)(sign | ((rounded - 0x38000000u) >> 13));
}

// ---------------------------------------------------------------------------------------------------- reductions
// Butterfly reductions: every lane ends with the same bits (each step adds the same two values in either order).
__device__ __forceinline__ float warp_sum(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1)
    {
        v += __shfl_xor_sync(ENGINE_FULL_MASK, v, offset);
    }
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1)
    {
        v = fmaxf(v, __shfl_xor_sync(ENGINE_FULL_MASK, v, offset));
    }
    return v;
}

__device__ __forceinline__ double warp_sum_double(double v)
{
    for (int offset = 16; offset > 0; offset >>= 1)
    {
        v += __shfl_xor_sync(ENGINE_FULL_MASK, v, offset);
    }
    return v;
}

// Sum / max over the whole block (blockDim.x a multiple of 32, at most 1024). scratch holds 32 floats; the result is
// returned to every thread. The order of the additions depends only on blockDim, so results are reproducible.
__device__ __forceinline__ float block_sum(float v, float* scratch)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0)
    {
        scratch[warp] = v;
    }
    __syncthreads();
    v = lane < warps ? scratch[lane] : 0.0f;
    return warp_sum(v);
}

__device__ __forceinline__ float block_max(float v, float* scratch)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0)
    {
        scratch[warp] = v;
    }
    __syncthreads();
    v = lane < warps ? scratch[lane] : -ENGINE_INF;
    return warp_max(v);
}

__device__ __forceinline__ double block_sum_double(double v, double* scratch)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum_double(v);
    __syncthreads();
    if (lane == 0)
    {
        scratch[warp] = v;
    }
    __syncthreads();
    v = lane < warps ? scratch[lane] : 0.0;
    return warp_sum_double(v);
}

// Grid-stride index helpers: 64-bit so tensors past 2³¹ elements are addressed correctly.
__device__ __forceinline__ i64 global_index()
{
    return (i64)blockIdx.x * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ i64 global_stride()
{
    return (i64)gridDim.x * blockDim.x;
}
