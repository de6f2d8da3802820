// Masked sums over time: values, mask, dvalues are (B,T), out and dout (B); mask may be null (all ones).
// One warp per sequence, sums in double in a fixed lane pattern. A masked position (m = 0) is never read into a sum,
// so padding may hold anything, even NaN.
#include "common.cuh"

// Σ_t m[b,t] (T without a mask), the same in the forward and the backward.
__device__ __forceinline__ double sequence_count(const float* mask, i64 b, int T, int lane)
{
    if (mask == 0)
    {
        return (double)T;
    }
    const float* m = mask + b * T;
    double count = 0.0;
    for (int t = lane; t < T; t += 32)
    {
        count += (double)m[t];
    }
    return warp_sum_double(count);
}

// out[b] = Σ_t m·v, or that ÷ Σ_t m with mean = 1 (0 for a fully masked sequence, never NaN).
extern "C" __global__ void sequence_sum(float* out, const float* values, const float* mask, int B, int T, int mean)
{
    int lane = threadIdx.x & 31;
    i64 b = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (b >= B)
    {
        return;
    }
    const float* v = values + b * T;
    const float* m = mask == 0 ? 0 : mask + b * T;
    double sum = 0.0;
    for (int t = lane; t < T; t += 32)
    {
        if (m == 0)
        {
            sum += (double)v[t];
        }
        else if (m[t] != 0.0f)
        {
            sum += (double)m[t] * (double)v[t];
        }
    }
    sum = warp_sum_double(sum);
    if (mean)
    {
        double count = sequence_count(mask, b, T, lane);
        sum = count == 0.0 ? 0.0 : sum / count;
    }
    if (lane == 0)
    {
        out[b] = (float)sum;
    }
}

// dv[b,t] += g[b]·m[b,t] (g[b] ÷ Σ_t m with mean = 1; nothing for a fully masked sequence).
extern "C" __global__ void sequence_sum_backward(float* dvalues, const float* dout, const float* mask, int B, int T, int mean)
{
    int lane = threadIdx.x & 31;
    i64 b = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (b >= B)
    {
        return;
    }
    double g = (double)dout[b];
    if (mean)
    {
        double count = sequence_count(mask, b, T, lane);
        g = count == 0.0 ? 0.0 : g / count;
    }
    float* dv = dvalues + b * T;
    const float* m = mask == 0 ? 0 : mask + b * T;
    for (int t = lane; t < T; t += 32)
    {
        dv[t] += (float)(m == 0 ? g : g * (double)m[t]);
    }
}
