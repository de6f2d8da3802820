// AdamW and the squared norm of the gradients. params, grads, m, v are flat (n).
#include "common.cuh"

// g = grad·gradScale; m ← m + (1−β₁)(g − m); v ← β₂v + (1−β₂)g²; θ ← θ·decay − stepSize·m/(√v/√bc₂ + ε)
// with decay = 1 − ηλ and stepSize = η/bc₁ formed on the host in double, as torch.optim.AdamW and the CPU backend do.
extern "C" __global__ void adamw(
    float* params, const float* grads, float* m, float* v, i64 n, float gradScale, float oneMinusBeta1, float beta2,
    float oneMinusBeta2, float decay, float stepSize, float bc2Sqrt, float epsilon)
{
    for (i64 i = global_index(); i < n; i += global_stride())
    {
        float g = grads[i] * gradScale;
        float m0 = m[i], v0 = v[i];
        float m1 = fmaf(g - m0, oneMinusBeta1, m0);
        float v1 = fmaf(g * g, oneMinusBeta2, v0 * beta2);
        float denom = sqrtf(v1) / bc2Sqrt + epsilon;
        m[i] = m1;
        v[i] = v1;
        params[i] = params[i] * decay - stepSize * m1 / denom;
    }
}

// Pass 1 of Σx²: block b sums, in double, the elements i ≡ thread (mod blockDim) of its contiguous slice
// [b·perBlock, (b+1)·perBlock), then the block tree folds the threads. The slicing depends only on n and the launch
// (fixed by the host from n alone), so the result has the same bits on every run and every GPU.
extern "C" __global__ void squared_norm_partials(double* partials, const float* x, i64 n, i64 perBlock)
{
    __shared__ double scratch[32];
    i64 first = (i64)blockIdx.x * perBlock;
    i64 end = first + perBlock < n ? first + perBlock : n;
    double sum = 0.0;
    for (i64 i = first + threadIdx.x; i < end; i += blockDim.x)
    {
        double d = (double)x[i];
        sum = fma(d, d, sum);
    }
    sum = block_sum_double(sum, scratch);
    if (threadIdx.x == 0)
    {
        partials[blockIdx.x] = sum;
    }
}

// Pass 2: one block folds the partials (count ≤ a few thousand) in the same fixed pattern into result[0].
extern "C" __global__ void squared_norm_fold(double* result, const double* partials, int count)
{
    __shared__ double scratch[32];
    double sum = 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x)
    {
        sum += partials[i];
    }
    sum = block_sum_double(sum, scratch);
    if (threadIdx.x == 0)
    {
        result[0] = sum;
    }
}
