// Token log-probs, entropy and KL estimators (DESIGN.md, "The alignment kernels"), over logits that are either the
// caller's [N,V] tensor or one chunk of h·Wᵀ written by a cuBLAS GEMM: a chunk is `rows` rows × `vc` vocabulary
// columns starting at row `row0` of the problem and column `v0` of the vocabulary, row-major with leading dimension ld.
// Raw logits x come in; z = x·invT. Row n is active when 0 ≤ targets[n] < V and (no mask or mask[n] ≠ 0).
//
// Forward: logprob_chunk_stats folds each vocabulary chunk of a row into a running state (max, Σe^d, Σe^d·d, target
// logit) kept in double, so the row never has to be in memory at once; logprob_finish turns the state into
// logsumexp, entropy, log-prob and the KL estimators (and, in the fused pass, the gradient coefficients).
// Backward: per-row coefficients (logprob_finish or logprob_backward_rows), then logprob_chunk_grad writes or adds
// dz/τ = −p∘(a·1 + b·(u + H)) + a·onehot(y), the cuBLAS GEMMs take it from there (dh += dz·W, dW += dzᵀ·h).
// The arithmetic follows the CPU backend (Engine.Core/Cpu/CpuBackend.LogProbs.cs) operation for operation.
#include "common.cuh"

// z − max below this is exactly 0 after e^ in fp32 (underflow at −104), and −∞ logits give 0 instead of NaN.
#define LOGPROB_EXP_FLOOR -1024.0f
#define LOGPROB_FLT_MAX 3.4028234663852886e38

// Rounds to f32 saturating at ±FLT_MAX, as KlEstimators.Saturate: a finite double never becomes ∞; NaN stays NaN.
__device__ __forceinline__ float logprob_saturate(double v)
{
    return (float)(v > LOGPROB_FLT_MAX ? LOGPROB_FLT_MAX : (v < -LOGPROB_FLT_MAX ? -LOGPROB_FLT_MAX : v));
}

__device__ __forceinline__ bool logprob_active(int target, int V, const float* mask, i64 n)
{
    return target >= 0 && target < V && (mask == 0 || mask[n] != 0.0f);
}

// Gradient coefficients of one active row: g = ∂L/∂logp with the KL gradients folded in, then (a, c0, b) with
// dz_j = −p_j·(c0 + b·u_j) (+ a at the target), u_j = z_j − lse, c0 = a + b·H. Stored as (a, c0, b, lse).
__device__ __forceinline__ void logprob_coefficients(
    float* coef, i64 n, double logp, float lse, float entropy, float m, float invT, const float* reference, const float* gLogp,
    const float* gEntropy, const float* gKl)
{
    double g = gLogp == 0 ? 0.0 : (double)gLogp[n];
    if (gKl != 0)
    {
        double d = logp - (double)reference[n];
        g += (double)gKl[3 * n] * 1.0 + (double)gKl[3 * n + 1] * d + (double)gKl[3 * n + 2] * (1.0 - exp(-d));
    }
    double gH = gEntropy == 0 ? 0.0 : (double)gEntropy[n];
    float a = logprob_saturate(g * m * invT);
    float b = logprob_saturate(gH * m * invT);
    coef[0] = a;
    coef[1] = logprob_saturate((double)a + (double)b * entropy);
    coef[2] = b;
    coef[3] = lse;
}

// One block per row of the chunk (blockDim a multiple of 32). state[4·i] = (max x, Σ e^d, Σ e^d·d, x[target]) with
// d = max((x − max)·invT, floor), merged across chunks in double; chunk v0 = 0 initialises it. A target ≥ V is
// reported once (first chunk) and the row is left inactive.
extern "C" __global__ void logprob_chunk_stats(
    double* state, const float* z, int ld, i64 row0, int v0, int vc, int V, const int* targets, const float* mask, float invT,
    int* error)
{
    __shared__ float scratch[32];
    __shared__ double scratchD[32];
    int i = blockIdx.x;
    i64 n = row0 + i;
    int target = targets[n];
    if (target >= V && v0 == 0 && threadIdx.x == 0)
    {
        engine_report(error, ENGINE_ERROR_LOGPROB_TARGET, n, target);
    }
    if (!logprob_active(target, V, mask, n))
    {
        return;
    }
    const float* x = z + (i64)i * ld;
    float localMax = -ENGINE_INF;
    for (int j = threadIdx.x; j < vc; j += blockDim.x)
    {
        localMax = fmaxf(localMax, x[j]);
    }
    float max = block_max(localMax, scratch);
    float s = 0.0f, t = 0.0f;
    for (int j = threadIdx.x; j < vc; j += blockDim.x)
    {
        float d = fmaxf((x[j] - max) * invT, LOGPROB_EXP_FLOOR);
        float e = expf(d);
        s += e;
        t = fmaf(e, d, t);
    }
    double chunkS = block_sum_double((double)s, scratchD);
    double chunkT = block_sum_double((double)t, scratchD);
    if (threadIdx.x != 0)
    {
        return;
    }
    double* st = state + 4 * (i64)i;
    bool hasTarget = target >= v0 && target - v0 < vc;
    if (v0 == 0)
    {
        st[0] = max;
        st[1] = chunkS;
        st[2] = chunkT;
        st[3] = hasTarget ? (double)x[target] : 0.0;
        return;
    }
    // Both partial sums are re-centred on the larger maximum: e^(d+δ) = e^d·e^δ and Σe^(d+δ)(d+δ) = e^δ(Σe^d·d + δΣe^d).
    double oldMax = st[0], newMax = fmax(oldMax, (double)max);
    double d1 = fmax((oldMax - newMax) * invT, (double)LOGPROB_EXP_FLOOR);
    double d2 = fmax(((double)max - newMax) * invT, (double)LOGPROB_EXP_FLOOR);
    double e1 = exp(d1), e2 = exp(d2);
    double oldS = st[1], oldT = st[2];
    st[0] = newMax;
    st[1] = oldS * e1 + chunkS * e2;
    st[2] = e1 * (oldT + d1 * oldS) + e2 * (chunkT + d2 * chunkS);
    if (hasTarget)
    {
        st[3] = (double)x[target - v0];
    }
}

// One thread per row of the chunk, after its last vocabulary chunk: rowStats = (lse, H) unmasked, the masked outputs
// (any output pointer may be null), and with coef non-null the gradient coefficients of the fused pass (coef[4·i]).
// Inactive rows get exact zeros everywhere.
extern "C" __global__ void logprob_finish(
    float* logProbs, float* rowStats, float* entropyOut, float* kl, float* coef, const double* state, i64 row0, int rows, int V,
    const int* targets, const float* mask, const float* reference, const float* gLogp, const float* gEntropy, const float* gKl,
    float invT)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows)
    {
        return;
    }
    i64 n = row0 + i;
    int target = targets[n];
    if (!logprob_active(target, V, mask, n))
    {
        if (logProbs != 0)
        {
            logProbs[n] = 0.0f;
        }
        if (rowStats != 0)
        {
            rowStats[2 * n] = 0.0f;
            rowStats[2 * n + 1] = 0.0f;
        }
        if (entropyOut != 0)
        {
            entropyOut[n] = 0.0f;
        }
        if (kl != 0)
        {
            kl[3 * n] = 0.0f;
            kl[3 * n + 1] = 0.0f;
            kl[3 * n + 2] = 0.0f;
        }
        if (coef != 0)
        {
            coef[4 * (i64)i] = 0.0f;
            coef[4 * (i64)i + 1] = 0.0f;
            coef[4 * (i64)i + 2] = 0.0f;
            coef[4 * (i64)i + 3] = 0.0f;
        }
        return;
    }
    const double* st = state + 4 * (i64)i;
    double logSum = log(st[1]);
    float lse = logprob_saturate(st[0] * invT + logSum);
    float entropy = logprob_saturate(logSum - st[2] / st[1]);
    float m = mask == 0 ? 1.0f : mask[n];
    // logp from the stored f32 logsumexp, as the backward pass will see it.
    double logp = st[3] * invT - lse;
    if (rowStats != 0)
    {
        rowStats[2 * n] = lse;
        rowStats[2 * n + 1] = entropy;
    }
    if (logProbs != 0)
    {
        logProbs[n] = logprob_saturate(m * logp);
    }
    if (entropyOut != 0)
    {
        entropyOut[n] = m * entropy;
    }
    if (kl != 0)
    {
        double d = logp - (double)reference[n];
        kl[3 * n] = logprob_saturate(m * d);
        kl[3 * n + 1] = logprob_saturate(m * (0.5 * d * d));
        kl[3 * n + 2] = logprob_saturate(m * (exp(-d) + d - 1.0));
    }
    if (coef != 0)
    {
        logprob_coefficients(coef + 4 * (i64)i, n, logp, lse, entropy, m, invT, reference, gLogp, gEntropy, gKl);
    }
}

// Backward without a forward in the same pass: one warp per row of the chunk (blockDim a multiple of 32) forms the
// coefficients from the forward's rowStats. The target logit comes from logits[n·V + y] when logits is given, else
// from the dot product h[n]·W[y] (in double; the GEMM's chunks are not in memory yet when it is needed).
extern "C" __global__ void logprob_backward_rows(
    float* coef, const float* rowStats, const float* hidden, const float* weight, const float* logits, i64 row0, int rows, int C,
    int V, const int* targets, const float* mask, const float* reference, const float* gLogp, const float* gEntropy,
    const float* gKl, float invT, int* error)
{
    int lane = threadIdx.x & 31;
    i64 i = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (i >= rows)
    {
        return;
    }
    i64 n = row0 + i;
    int target = targets[n];
    float* c = coef + 4 * i;
    if (!logprob_active(target, V, mask, n))
    {
        if (lane == 0)
        {
            if (target >= V)
            {
                engine_report(error, ENGINE_ERROR_LOGPROB_TARGET, n, target);
            }
            c[0] = 0.0f;
            c[1] = 0.0f;
            c[2] = 0.0f;
            c[3] = 0.0f;
        }
        return;
    }
    double x;
    if (logits != 0)
    {
        x = (double)logits[n * V + target];
    }
    else
    {
        const float* h = hidden + n * C;
        const float* w = weight + (i64)target * C;
        double dot = 0.0;
        for (int k = lane; k < C; k += 32)
        {
            dot = fma((double)h[k], (double)w[k], dot);
        }
        x = warp_sum_double(dot);
    }
    if (lane == 0)
    {
        float lse = rowStats[2 * n], entropy = rowStats[2 * n + 1];
        float m = mask == 0 ? 1.0f : mask[n];
        logprob_coefficients(c, n, x * invT - lse, lse, entropy, m, invT, reference, gLogp, gEntropy, gKl);
    }
}

// One block per row of the chunk: dz_j = −e^u·(c0 + b·u) with u = max(x_j·invT − lse, floor), plus a at the target,
// written over dz (add = 0; dz may be x itself) or added to it (add = 1). Inactive rows are zeroed (add = 0) or left
// as they are (add = 1), so the GEMMs that follow read zeros for them.
extern "C" __global__ void logprob_chunk_grad(
    float* dz, const float* z, int ld, const float* coef, i64 row0, int v0, int vc, int V, const int* targets, const float* mask,
    float invT, int add)
{
    int i = blockIdx.x;
    i64 n = row0 + i;
    int target = targets[n];
    float* out = dz + (i64)i * ld;
    if (!logprob_active(target, V, mask, n))
    {
        if (!add)
        {
            for (int j = threadIdx.x; j < vc; j += blockDim.x)
            {
                out[j] = 0.0f;
            }
        }
        return;
    }
    const float* x = z + (i64)i * ld;
    const float* c = coef + 4 * (i64)i;
    float a = c[0], c0 = c[1], b = c[2], negLse = -c[3];
    int local = target - v0;
    for (int j = threadIdx.x; j < vc; j += blockDim.x)
    {
        float u = fmaxf(fmaf(x[j], invT, negLse), LOGPROB_EXP_FLOOR);
        float r = -(expf(u) * fmaf(b, u, c0));
        float value = add ? out[j] + r : r;
        out[j] = j == local ? value + a : value;
    }
}
