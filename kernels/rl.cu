// RL and preference kernels (DESIGN.md, "The alignment kernels"): GAE, masked whitening, the pairwise preference
// losses, the PPO clipped losses and the KL-shaped rewards. m is a 0/1 (or weight) mask; a position with m = 0 is never
// read into a result, so padding may hold anything, even NaN. The arithmetic follows the CPU backend
// (Engine.Core/Cpu/CpuBackend.Rl.cs); every reduction splits its input by the size alone and folds the pieces in a fixed
// order, so every result has the same bits on every run (no float atomics anywhere).
#include "common.cuh"

// ---------------------------------------------------------------------------------------------------- GAE

// One thread per sequence of (B,T), walking from the last position to the first in double: δ_t = r_t + γ·V_next − V_t,
// A_t = δ_t + γλ·A_next, R_t = A_t + V_t over response positions (m ≠ 0) only; 0 at masked positions. The _rn
// intrinsics keep the compiler from contracting into FMAs, so the rounding is the CPU backend's.
extern "C" __global__ void gae(
    float* advantages, float* returns, const float* rewards, const float* values, const float* mask, int B, int T, float gamma,
    float lambda)
{
    i64 b = global_index();
    if (b >= B)
    {
        return;
    }
    double g = (double)gamma, gl = __dmul_rn((double)gamma, (double)lambda);
    double nextValue = 0.0, nextAdvantage = 0.0;
    i64 row = b * T;
    for (i64 i = row + T - 1; i >= row; i--)
    {
        if (mask[i] == 0.0f)
        {
            advantages[i] = 0.0f;
            returns[i] = 0.0f;
            continue;
        }
        double v = (double)values[i];
        double delta = __dsub_rn(__dadd_rn((double)rewards[i], __dmul_rn(g, nextValue)), v);
        double a = __dadd_rn(delta, __dmul_rn(gl, nextAdvantage));
        advantages[i] = (float)a;
        returns[i] = (float)__dadd_rn(a, v);
        nextValue = v;
        nextAdvantage = a;
    }
}

// ---------------------------------------------------------------------------------------------------- moments

// (count, mean, M2) of two weighted samples merged exactly (Chan et al.), as the CPU backend's Moments.Merge.
__device__ __forceinline__ void moments_merge(double* acc, double count, double mean, double m2)
{
    if (count == 0.0)
    {
        return;
    }
    if (acc[0] == 0.0)
    {
        acc[0] = count;
        acc[1] = mean;
        acc[2] = m2;
        return;
    }
    double n = acc[0] + count, delta = mean - acc[1];
    acc[1] = acc[1] + delta * count / n;
    acc[2] = acc[2] + m2 + delta * delta * acc[0] * count / n;
    acc[0] = n;
}

// Block b of the whitening moments: (Σm, mean, Σm·(x − mean)²) of its contiguous slice [b·perBlock, (b+1)·perBlock),
// the squares taken about the slice's own mean in a second pass (no cancellation). partials[3·b ..].
extern "C" __global__ void masked_moments_partials(double* partials, const float* x, const float* mask, i64 n, i64 perBlock)
{
    __shared__ double scratch[32];
    i64 first = (i64)blockIdx.x * perBlock;
    i64 end = first + perBlock < n ? first + perBlock : n;
    double count = 0.0, sum = 0.0;
    for (i64 i = first + threadIdx.x; i < end; i += blockDim.x)
    {
        float m = mask[i];
        if (m != 0.0f)
        {
            count += (double)m;
            sum += (double)m * (double)x[i];
        }
    }
    count = block_sum_double(count, scratch);
    sum = block_sum_double(sum, scratch);
    double mean = count > 0.0 ? sum / count : 0.0;
    double m2 = 0.0;
    for (i64 i = first + threadIdx.x; i < end; i += blockDim.x)
    {
        float m = mask[i];
        if (m != 0.0f)
        {
            double d = (double)x[i] - mean;
            m2 += (double)m * d * d;
        }
    }
    m2 = block_sum_double(m2, scratch);
    if (threadIdx.x == 0)
    {
        partials[3 * blockIdx.x] = count;
        partials[3 * blockIdx.x + 1] = mean;
        partials[3 * blockIdx.x + 2] = m2;
    }
}

// One thread merges the block moments in block order: result = (mean, unbiased variance, count, and the f32 mean,
// scale 1/√(σ² + ε) and shift the apply pass uses). σ² = 0 with fewer than two tokens.
extern "C" __global__ void masked_whiten_fold(double* result, const double* partials, int blocks, float epsilon, int shiftMean)
{
    if (threadIdx.x != 0 || blockIdx.x != 0)
    {
        return;
    }
    double acc[3] = {0.0, 0.0, 0.0};
    for (int b = 0; b < blocks; b++)
    {
        moments_merge(acc, partials[3 * b], partials[3 * b + 1], partials[3 * b + 2]);
    }
    double variance = acc[0] > 1.0 ? acc[2] / (acc[0] - 1.0) : 0.0;
    float mean = (float)acc[1];
    result[0] = acc[1];
    result[1] = variance;
    result[2] = acc[0];
    result[3] = (double)mean;
    result[4] = (double)(float)(1.0 / sqrt(variance + (double)epsilon));
    result[5] = shiftMean ? 0.0 : (double)mean;
}

// x ← ((x − μ)·scale) + shift where m ≠ 0, else 0; the scalars come from masked_whiten_fold on the device.
extern "C" __global__ void masked_whiten_apply(float* x, const float* mask, const double* result, i64 n)
{
    float mean = (float)result[3], scale = (float)result[4], shift = (float)result[5];
    for (i64 i = global_index(); i < n; i += global_stride())
    {
        x[i] = mask[i] != 0.0f ? __fadd_rn(__fmul_rn(__fsub_rn(x[i], mean), scale), shift) : 0.0f;
    }
}

// ---------------------------------------------------------------------------------------------------- PPO

// Block b: Σm over its slice (the token count every gradient is divided by).
extern "C" __global__ void ppo_count_partials(double* partials, const float* mask, i64 n, i64 perBlock)
{
    __shared__ double scratch[32];
    i64 first = (i64)blockIdx.x * perBlock;
    i64 end = first + perBlock < n ? first + perBlock : n;
    double count = 0.0;
    for (i64 i = first + threadIdx.x; i < end; i += blockDim.x)
    {
        count += (double)mask[i];
    }
    count = block_sum_double(count, scratch);
    if (threadIdx.x == 0)
    {
        partials[blockIdx.x] = count;
    }
}

#define PPO_PARTIALS 12

// Block b over its slice (same split as ppo_count_partials, gridDim.x blocks): adds the gradients in place and writes
// partials[12·b ..] = (Σm, Σm·policy term, Σm·clipped, Σm·log-ratio², Σm·ρ, Σm·entropy, Σm·value term,
// Σm·value clipped, returns mean, returns M2, residual mean, residual M2), the moments about the slice's own means.
// Every block first sums the count partials in the same fixed pattern, so all see the same token count.
extern "C" __global__ void ppo_partials(
    double* partials, const double* countPartials, const float* logProbs, const float* oldLogProbs, const float* advantages,
    const float* mask, const float* values, const float* oldValues, const float* returns, const float* entropy,
    float* logProbsGrad, float* valuesGrad, i64 n, i64 perBlock, float clipLow, float clipHigh, float valueClip,
    float policyScale, float valueScale)
{
    __shared__ double scratch[32];
    double tokens = 0.0;
    for (int b = threadIdx.x; b < gridDim.x; b += blockDim.x)
    {
        tokens += countPartials[b];
    }
    tokens = block_sum_double(tokens, scratch);
    float policyFactor = (float)((double)policyScale / tokens);
    float valueFactor = (float)((double)valueScale / tokens);

    i64 first = (i64)blockIdx.x * perBlock;
    i64 end = first + perBlock < n ? first + perBlock : n;
    double s[10] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    for (i64 i = first + threadIdx.x; i < end; i += blockDim.x)
    {
        float m = mask[i];
        if (m == 0.0f)
        {
            continue;
        }
        float logRatio = logProbs[i] - oldLogProbs[i];
        float ratio = expf(fminf(logRatio, 88.0f));
        float a = advantages[i];
        float unclipped = -a * ratio;
        float clippedTerm = -a * fminf(fmaxf(ratio, clipLow), clipHigh);
        bool clipped = clippedTerm > unclipped;
        s[0] += (double)m;
        s[1] += (double)(m * (clipped ? clippedTerm : unclipped));
        s[2] += clipped ? (double)m : 0.0;
        s[3] += (double)(m * logRatio * logRatio);
        s[4] += (double)(m * ratio);
        if (logProbsGrad != 0 && !clipped)
        {
            // d(−A·ρ)/dlogp = −A·ρ; the clipped branch is flat in logp wherever it is the larger one.
            logProbsGrad[i] += policyFactor * m * unclipped;
        }
        if (entropy != 0)
        {
            s[5] += (double)(m * entropy[i]);
        }
        if (values != 0)
        {
            float v = values[i], old = oldValues[i], r = returns[i];
            float vClipped = fminf(fmaxf(v, old - valueClip), old + valueClip);
            float lossUnclipped = (v - r) * (v - r);
            float lossClipped = (vClipped - r) * (vClipped - r);
            bool valueClipped = lossClipped > lossUnclipped;
            s[6] += (double)(m * fmaxf(lossClipped, lossUnclipped));
            s[7] += valueClipped ? (double)m : 0.0;
            s[8] += (double)(m * r);
            s[9] += (double)(m * (r - v));
            if (valuesGrad != 0 && !valueClipped)
            {
                valuesGrad[i] += valueFactor * m * (v - r);
            }
        }
    }
    for (int k = 0; k < 10; k++)
    {
        s[k] = block_sum_double(s[k], scratch);
    }
    double returnMean = 0.0, residualMean = 0.0, returnM2 = 0.0, residualM2 = 0.0;
    if (values != 0 && s[0] > 0.0)
    {
        returnMean = s[8] / s[0];
        residualMean = s[9] / s[0];
        for (i64 i = first + threadIdx.x; i < end; i += blockDim.x)
        {
            float m = mask[i];
            if (m != 0.0f)
            {
                double r = (double)returns[i];
                double dr = r - returnMean, dd = (r - (double)values[i]) - residualMean;
                returnM2 += (double)m * dr * dr;
                residualM2 += (double)m * dd * dd;
            }
        }
        returnM2 = block_sum_double(returnM2, scratch);
        residualM2 = block_sum_double(residualM2, scratch);
    }
    if (threadIdx.x == 0)
    {
        double* p = partials + PPO_PARTIALS * (i64)blockIdx.x;
        for (int k = 0; k < 8; k++)
        {
            p[k] = s[k];
        }
        p[8] = returnMean;
        p[9] = returnM2;
        p[10] = residualMean;
        p[11] = residualM2;
    }
}

// One thread folds the block partials in block order into the nine PpoStatistics fields (all 0 without tokens).
extern "C" __global__ void ppo_fold(float* result, const double* partials, int blocks, int withValues, int withEntropy)
{
    if (threadIdx.x != 0 || blockIdx.x != 0)
    {
        return;
    }
    double sums[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    double returnsAcc[3] = {0.0, 0.0, 0.0}, residualsAcc[3] = {0.0, 0.0, 0.0};
    for (int b = 0; b < blocks; b++)
    {
        const double* p = partials + PPO_PARTIALS * (i64)b;
        for (int k = 0; k < 8; k++)
        {
            sums[k] += p[k];
        }
        moments_merge(returnsAcc, p[0], p[8], p[9]);
        moments_merge(residualsAcc, p[0], p[10], p[11]);
    }
    double tokens = sums[0];
    if (tokens == 0.0)
    {
        for (int k = 0; k < 9; k++)
        {
            result[k] = 0.0f;
        }
        return;
    }
    double ev = withValues && returnsAcc[2] > 0.0 ? 1.0 - residualsAcc[2] / returnsAcc[2] : 0.0;
    result[0] = (float)(sums[1] / tokens);
    result[1] = (float)(0.5 * sums[6] / tokens);
    result[2] = (float)(sums[2] / tokens);
    result[3] = (float)(0.5 * sums[3] / tokens);
    result[4] = withEntropy ? (float)(sums[5] / tokens) : 0.0f;
    result[5] = (float)ev;
    result[6] = (float)(sums[7] / tokens);
    result[7] = (float)(sums[4] / tokens);
    result[8] = (float)tokens;
}

// ---------------------------------------------------------------------------------------------------- KL rewards

__device__ __forceinline__ int warp_max_int(int v)
{
    for (int offset = 16; offset > 0; offset >>= 1)
    {
        int other = __shfl_xor_sync(ENGINE_FULL_MASK, v, offset);
        v = other > v ? other : v;
    }
    return v;
}

// One warp per sequence of (B,T): rewards = −β·KL at response positions (0 elsewhere), plus the score (and the
// missing-EOS penalty when ended[b] = 0; ended may be null) on the last response position. partials[4·b] =
// (has a response, Σm·KL, score as placed, missing EOS), all 0 for a sequence without a response.
extern "C" __global__ void kl_rewards_rows(
    float* rewards, double* partials, const float* kl, const float* mask, const float* scores, const int* ended, int B, int T,
    float beta, float penalty)
{
    int lane = threadIdx.x & 31;
    i64 b = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (b >= B)
    {
        return;
    }
    const float* k = kl + b * T;
    const float* m = mask + b * T;
    float* r = rewards + b * T;
    double klSum = 0.0;
    int last = -1;
    for (int t = lane; t < T; t += 32)
    {
        if (m[t] != 0.0f)
        {
            klSum += (double)(m[t] * k[t]);
            last = t;
        }
    }
    klSum = warp_sum_double(klSum);
    last = warp_max_int(last);
    bool missing = ended != 0 && ended[b] == 0;
    double score = (double)scores[b] + (missing ? (double)penalty : 0.0);
    float negBeta = -beta;
    for (int t = lane; t < T; t += 32)
    {
        float value = m[t] != 0.0f ? negBeta * k[t] : 0.0f;
        r[t] = t == last ? (float)((double)value + score) : value;
    }
    if (lane == 0)
    {
        double* p = partials + 4 * b;
        bool present = last >= 0;
        p[0] = present ? 1.0 : 0.0;
        p[1] = present ? klSum : 0.0;
        p[2] = present ? score : 0.0;
        p[3] = present && missing ? 1.0 : 0.0;
    }
}

// One block folds the per-sequence partials into (mean Σ KL, mean score, missing-EOS fraction, sequences).
extern "C" __global__ void kl_rewards_fold(float* result, const double* partials, int B)
{
    __shared__ double scratch[32];
    double s[4] = {0.0, 0.0, 0.0, 0.0};
    for (int b = threadIdx.x; b < B; b += blockDim.x)
    {
        for (int k = 0; k < 4; k++)
        {
            s[k] += partials[4 * (i64)b + k];
        }
    }
    for (int k = 0; k < 4; k++)
    {
        s[k] = block_sum_double(s[k], scratch);
    }
    if (threadIdx.x == 0)
    {
        double sequences = s[0];
        result[0] = sequences == 0.0 ? 0.0f : (float)(s[1] / sequences);
        result[1] = sequences == 0.0 ? 0.0f : (float)(s[2] / sequences);
        result[2] = sequences == 0.0 ? 0.0f : (float)(s[3] / sequences);
        result[3] = (float)sequences;
    }
}

// ---------------------------------------------------------------------------------------------------- pairwise losses

#define PAIRWISE_SIGMOID 0
#define PAIRWISE_ROBUST 1
#define PAIRWISE_HINGE 2
#define PAIRWISE_IPO 3
#define PAIRWISE_RESULTS 8

// ℓ(x) and dℓ/dx, finite for every finite x: softplus(z) = max(z, 0) + log(1 + e^−|z|) and σ from e^−|x|.
__device__ __forceinline__ void pair_loss(int type, double x, double eps, double ipoTarget, double* loss, double* grad)
{
    if (type == PAIRWISE_SIGMOID || type == PAIRWISE_ROBUST)
    {
        // −logσ(x) = softplus(−x), −logσ(−x) = softplus(x); d softplus(−x)/dx = −σ(−x).
        double e = exp(-fabs(x)), log1p = log(1.0 + e);
        double softplusNeg = (-x > 0.0 ? -x : 0.0) + log1p, softplusPos = (x > 0.0 ? x : 0.0) + log1p;
        double big = 1.0 / (1.0 + e), small = e / (1.0 + e);
        double sigmaPos = x >= 0.0 ? big : small, sigmaNeg = x >= 0.0 ? small : big;
        if (type == PAIRWISE_SIGMOID)
        {
            *loss = (1.0 - eps) * softplusNeg + eps * softplusPos;
            *grad = -(1.0 - eps) * sigmaNeg + eps * sigmaPos;
        }
        else
        {
            *loss = ((1.0 - eps) * softplusNeg - eps * softplusPos) / (1.0 - 2.0 * eps);
            *grad = (-((1.0 - eps) * sigmaNeg) - eps * sigmaPos) / (1.0 - 2.0 * eps);
        }
    }
    else if (type == PAIRWISE_HINGE)
    {
        *loss = 1.0 - x > 0.0 ? 1.0 - x : 0.0;
        *grad = 1.0 - x > 0.0 ? -1.0 : 0.0;
    }
    else
    {
        double d = x - ipoTarget;
        *loss = d * d;
        *grad = 2.0 * d;
    }
}

// One block (pairs are few): checks every index first (a bad one is reported and nothing is written, so the gradient
// stays as it was), then the per-pair losses in double. pairGrad[p] and pairGrad[P + p] receive the f32 contributions
// to ∂L/∂s of the chosen and rejected response of pair p (when wantGrad); result = (loss, centre penalty, accuracy,
// margin, chosen score, rejected score, weight sum, apply flag) with the flag 0 when nothing is to be added.
extern "C" __global__ void pairwise_pairs(
    float* pairGrad, float* result, const float* scores, const int* chosen, const int* rejected, const float* weights,
    const float* margins, int P, int R, int type, float labelSmoothing, float beta, float center, float gradScale, int wantGrad,
    int* error)
{
    __shared__ double scratch[32];
    __shared__ int firstBad;
    if (threadIdx.x == 0)
    {
        firstBad = 0x7fffffff;
    }
    __syncthreads();
    for (int p = threadIdx.x; p < P; p += blockDim.x)
    {
        if ((unsigned)chosen[p] >= (unsigned)R || (unsigned)rejected[p] >= (unsigned)R)
        {
            atomicMin(&firstBad, p);
            break;
        }
    }
    __syncthreads();
    int bad = firstBad;
    double weightSum = 0.0;
    if (bad == 0x7fffffff)
    {
        for (int p = threadIdx.x; p < P; p += blockDim.x)
        {
            weightSum += weights == 0 ? 1.0 : (double)weights[p];
        }
        weightSum = block_sum_double(weightSum, scratch);
    }
    if (bad != 0x7fffffff || weightSum == 0.0)
    {
        if (threadIdx.x == 0)
        {
            if (bad != 0x7fffffff)
            {
                int c = chosen[bad];
                engine_report(error, ENGINE_ERROR_PAIR_INDEX, bad, (unsigned)c >= (unsigned)R ? c : rejected[bad]);
            }
            for (int k = 0; k < PAIRWISE_RESULTS; k++)
            {
                result[k] = 0.0f;
            }
        }
        return;
    }

    double eps = (double)labelSmoothing, target = 1.0 / (2.0 * (double)beta), c = (double)center;
    double gradFactor = (double)gradScale / weightSum;
    double s[6] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    for (int p = threadIdx.x; p < P; p += blockDim.x)
    {
        double wp = weights == 0 ? 1.0 : (double)weights[p];
        double sc = (double)scores[chosen[p]], sl = (double)scores[rejected[p]];
        double x = sc - sl - (margins == 0 ? 0.0 : (double)margins[p]);
        double lp, dlp;
        pair_loss(type, x, eps, target, &lp, &dlp);
        double both = sc + sl;
        s[0] += wp * lp;
        s[1] += wp * both * both;
        s[2] += x > 0.0 ? wp : 0.0;
        s[3] += wp * (sc - sl);
        s[4] += wp * sc;
        s[5] += wp * sl;
        if (wantGrad)
        {
            double centerGrad = 2.0 * c * both;
            pairGrad[p] = (float)(gradFactor * wp * (dlp + centerGrad));
            pairGrad[P + p] = (float)(gradFactor * wp * (centerGrad - dlp));
        }
    }
    for (int k = 0; k < 6; k++)
    {
        s[k] = block_sum_double(s[k], scratch);
    }
    if (threadIdx.x == 0)
    {
        double centerTerm = c * s[1] / weightSum;
        result[0] = (float)(s[0] / weightSum + centerTerm);
        result[1] = (float)centerTerm;
        result[2] = (float)(s[2] / weightSum);
        result[3] = (float)(s[3] / weightSum);
        result[4] = (float)(s[4] / weightSum);
        result[5] = (float)(s[5] / weightSum);
        result[6] = (float)weightSum;
        result[7] = 1.0f;
    }
}

// One thread per response r: ∂s_r += the contributions of every pair naming it, in pair order (chosen side before
// rejected side), which is the CPU backend's serial order; a gather instead of float atomics keeps the sum exact to the
// bit and the same on every run. Does nothing when pairwise_pairs cleared the apply flag.
extern "C" __global__ void pairwise_scatter(
    float* scoresGrad, const float* pairGrad, const float* result, const int* chosen, const int* rejected, int P, int R)
{
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= R || result[PAIRWISE_RESULTS - 1] == 0.0f)
    {
        return;
    }
    float acc = scoresGrad[r];
    for (int p = 0; p < P; p++)
    {
        if (chosen[p] == r)
        {
            acc += pairGrad[p];
        }
        if (rejected[p] == r)
        {
            acc += pairGrad[P + p];
        }
    }
    scoresGrad[r] = acc;
}

// ---------------------------------------------------------------------------------------------------- preference losses
// The preference loss family (Backend.PreferenceLoss; Engine.Core/Cpu/PreferencePair.cs is the same arithmetic).
// Types follow PreferenceLossType's order.

#define PREF_SIGMOID 0
#define PREF_ROBUST 1
#define PREF_HINGE 2
#define PREF_IPO 3
#define PREF_SIMPO 4
#define PREF_CPO 5
#define PREF_ORPO 6
#define PREF_APO_ZERO 7
#define PREF_APO_DOWN 8
#define PREF_BCO_PAIR 9
#define PREF_NCA_PAIR 10
#define PREF_EXO_PAIR 11
#define PREF_SPPO_HARD 12
#define PREF_SIGMOID_NORM 13
#define PREF_AOT 14
#define PREF_SFT 15
#define PREF_KTO 16

__device__ __forceinline__ double pref_sigmoid(double x)
{
    return x >= 0.0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}

__device__ __forceinline__ double pref_slope(double x)
{
    return pref_sigmoid(x) * pref_sigmoid(-x);
}

__device__ __forceinline__ double pref_softplus(double x)
{
    return (x > 0.0 ? x : 0.0) + log(1.0 + exp(-fabs(x)));
}

__device__ __forceinline__ double pref_expm1(double x)
{
    return fabs(x) < 1e-5 ? x + 0.5 * x * x : exp(x) - 1.0;
}

__device__ __forceinline__ double pref_log1mexp(double x)
{
    return x > -0.6931471805599453 ? log(-pref_expm1(x)) : log(1.0 - exp(x));
}

// One pair: a, b the policy log-probs, ar, br the reference's, na, nb the lengths, hasChosen for KTO's side.
// out = (ℓ, ∂ℓ/∂a, ∂ℓ/∂b, logσ(log-odds), log-odds).
__device__ void preference_pair(
    int type, double beta, double gamma, double eps, double baseline, double wD, double wU, double a, double b, double ar,
    double br, double na, double nb, int hasChosen, double* out)
{
    double u = beta * (a - ar), v = beta * (b - br), lp, dlp;
    out[3] = 0.0;
    out[4] = 0.0;
    switch (type)
    {
    case PREF_SIGMOID:
    case PREF_ROBUST:
    case PREF_HINGE:
    case PREF_AOT:
        pair_loss(type == PREF_AOT ? PAIRWISE_SIGMOID : type, u - v, eps, 0.0, &lp, &dlp);
        out[0] = lp; out[1] = beta * dlp; out[2] = -beta * dlp;
        break;
    case PREF_IPO:
        pair_loss(PAIRWISE_IPO, (a - ar) / na - (b - br) / nb, 0.0, 1.0 / (2.0 * beta), &lp, &dlp);
        out[0] = lp; out[1] = dlp / na; out[2] = -dlp / nb;
        break;
    case PREF_SIMPO:
    case PREF_SIGMOID_NORM:
    {
        int simpo = type == PREF_SIMPO;
        double x = beta * ((a - (simpo ? 0.0 : ar)) / na - (b - (simpo ? 0.0 : br)) / nb) - (simpo ? gamma : 0.0);
        pair_loss(PAIRWISE_SIGMOID, x, simpo ? eps : 0.0, 0.0, &lp, &dlp);
        out[0] = lp; out[1] = beta * dlp / na; out[2] = -beta * dlp / nb;
        break;
    }
    case PREF_CPO:
        pair_loss(PAIRWISE_SIGMOID, beta * (a - b), eps, 0.0, &lp, &dlp);
        out[0] = lp; out[1] = beta * dlp; out[2] = -beta * dlp;
        break;
    case PREF_ORPO:
    {
        double ma = a / na, mb = b / nb;
        double logOdds = ma - mb - (pref_log1mexp(ma) - pref_log1mexp(mb));
        double logRatio = -pref_softplus(-logOdds), slope = pref_sigmoid(-logOdds);
        out[0] = -beta * logRatio;
        out[1] = (-beta * slope / -pref_expm1(ma)) / na;
        out[2] = (beta * slope / -pref_expm1(mb)) / nb;
        out[3] = logRatio;
        out[4] = logOdds;
        break;
    }
    case PREF_APO_ZERO:
        out[0] = 1.0 - pref_sigmoid(u) + pref_sigmoid(v); out[1] = -beta * pref_slope(u); out[2] = beta * pref_slope(v);
        break;
    case PREF_APO_DOWN:
    {
        double sd = pref_slope(u - v);
        out[0] = pref_sigmoid(u) + 1.0 - pref_sigmoid(u - v); out[1] = beta * (pref_slope(u) - sd); out[2] = beta * sd;
        break;
    }
    case PREF_BCO_PAIR:
    {
        double x = u - baseline, y = v - baseline;
        out[0] = pref_softplus(-x) + pref_softplus(y); out[1] = -beta * pref_sigmoid(-x); out[2] = beta * pref_sigmoid(y);
        break;
    }
    case PREF_NCA_PAIR:
        out[0] = pref_softplus(-u) + 0.5 * pref_softplus(u) + 0.5 * pref_softplus(v);
        out[1] = beta * (-pref_sigmoid(-u) + 0.5 * pref_sigmoid(u));
        out[2] = beta * 0.5 * pref_sigmoid(v);
        break;
    case PREF_EXO_PAIR:
    {
        double x = u - v, sp = pref_sigmoid(x), sn = pref_sigmoid(-x);
        double grad = pref_slope(x) * (x - log((1.0 - eps) / eps));
        out[0] = sp * (-pref_softplus(-x) - log(1.0 - eps)) + sn * (-pref_softplus(x) - log(eps));
        out[1] = beta * grad; out[2] = -beta * grad;
        break;
    }
    case PREF_SPPO_HARD:
    {
        double half = 0.5 / beta, dc = a - ar - half, dl = b - br + half;
        out[0] = dc * dc + dl * dl; out[1] = 2.0 * dc; out[2] = 2.0 * dl;
        break;
    }
    case PREF_SFT:
        out[0] = 0.0; out[1] = 0.0; out[2] = 0.0;
        break;
    default:
    {
        double z = beta * baseline;
        if (hasChosen)
        {
            out[0] = wD * (1.0 - pref_sigmoid(u - z)); out[1] = -wD * beta * pref_slope(u - z); out[2] = 0.0;
        }
        else
        {
            out[0] = wU * (1.0 - pref_sigmoid(z - v)); out[1] = 0.0; out[2] = wU * beta * pref_slope(z - v);
        }
        break;
    }
    }
}

__device__ __forceinline__ int preference_valid(int c, int l, int R, int kto)
{
    return kto ? ((c == -1 && (unsigned)l < (unsigned)R) || (l == -1 && (unsigned)c < (unsigned)R))
               : ((unsigned)c < (unsigned)R && (unsigned)l < (unsigned)R);
}

// One block (pairs are few), as pairwise_pairs: checks every index first, then the per-pair terms in double. ranks [2P]
// is AOT's scratch: ranks[p] = the policy rank of pair p, ranks[P + i] = the pair of reference rank i (ties by pair
// order). pairGrad receives the f32 contributions to ∂L/∂a of pair p's chosen [p] and rejected [P + p] response;
// result = (loss, pair loss, nll, log-odds ratio, log-odds, weight sum, 0, apply flag); pairwise_scatter adds them.
extern "C" __global__ void preference_pairs(
    float* pairGrad, float* result, int* ranks, const float* policy, const float* reference, const float* lengths,
    const int* chosen, const int* rejected, const float* weights, int P, int R, int type, float beta, float gamma,
    float labelSmoothing, float baseline, float nllWeight, float desirableWeight, float undesirableWeight, float gradScale,
    int wantGrad, int* error)
{
    __shared__ double scratch[32];
    __shared__ int firstBad;
    if (threadIdx.x == 0)
    {
        firstBad = 0x7fffffff;
    }
    __syncthreads();
    int kto = type == PREF_KTO;
    for (int p = threadIdx.x; p < P; p += blockDim.x)
    {
        if (!preference_valid(chosen[p], rejected[p], R, kto))
        {
            atomicMin(&firstBad, p);
            break;
        }
    }
    __syncthreads();
    int bad = firstBad;
    double weightSum = 0.0, nllDenominator = 0.0;
    if (bad == 0x7fffffff)
    {
        for (int p = threadIdx.x; p < P; p += blockDim.x)
        {
            double wp = weights == 0 ? 1.0 : (double)weights[p];
            weightSum += wp;
            nllDenominator += chosen[p] >= 0 ? wp * (double)lengths[chosen[p]] : 0.0;
        }
        weightSum = block_sum_double(weightSum, scratch);
        nllDenominator = block_sum_double(nllDenominator, scratch);
    }
    if (bad != 0x7fffffff || weightSum == 0.0)
    {
        if (threadIdx.x == 0)
        {
            if (bad != 0x7fffffff)
            {
                engine_report(error, ENGINE_ERROR_PREFERENCE_INDEX, bad, preference_valid(chosen[bad], -1, R, 1) ? rejected[bad] : chosen[bad]);
            }
            for (int k = 0; k < PAIRWISE_RESULTS; k++)
            {
                result[k] = 0.0f;
            }
        }
        return;
    }

    if (type == PREF_AOT)
    {
        for (int p = threadIdx.x; p < P; p += blockDim.x)
        {
            double dp = (double)policy[chosen[p]] - (double)policy[rejected[p]];
            double rp = reference == 0 ? 0.0 : (double)reference[chosen[p]] - (double)reference[rejected[p]];
            int policyRank = 0, referenceRank = 0;
            for (int q = 0; q < P; q++)
            {
                double dq = (double)policy[chosen[q]] - (double)policy[rejected[q]];
                double rq = reference == 0 ? 0.0 : (double)reference[chosen[q]] - (double)reference[rejected[q]];
                policyRank += dq < dp || (dq == dp && q < p);
                referenceRank += rq < rp || (rq == rp && q < p);
            }
            ranks[p] = policyRank;
            ranks[P + referenceRank] = p;
        }
        __syncthreads();
    }

    double gradFactor = (double)gradScale / weightSum;
    double nllFactor = nllDenominator > 0.0 ? (double)gradScale * (double)nllWeight / nllDenominator : 0.0;
    double s[4] = {0.0, 0.0, 0.0, 0.0};
    for (int p = threadIdx.x; p < P; p += blockDim.x)
    {
        double wp = weights == 0 ? 1.0 : (double)weights[p];
        int c = chosen[p], l = rejected[p];
        double a = c >= 0 ? (double)policy[c] : 0.0, b = l >= 0 ? (double)policy[l] : 0.0;
        double ar = reference != 0 && c >= 0 ? (double)reference[c] : 0.0, br = reference != 0 && l >= 0 ? (double)reference[l] : 0.0;
        if (type == PREF_AOT)
        {
            int q = ranks[P + ranks[p]];
            ar = reference == 0 ? 0.0 : (double)reference[chosen[q]] - (double)reference[rejected[q]];
            br = 0.0;
        }
        double t[5];
        preference_pair(type, (double)beta, (double)gamma, (double)labelSmoothing, (double)baseline, (double)desirableWeight,
            (double)undesirableWeight, a, b, ar, br, c >= 0 ? (double)lengths[c] : 1.0, l >= 0 ? (double)lengths[l] : 1.0, c >= 0, t);
        s[0] += wp * t[0];
        s[1] -= c >= 0 ? wp * a : 0.0;
        s[2] += wp * t[3];
        s[3] += wp * t[4];
        if (wantGrad)
        {
            pairGrad[p] = c >= 0 ? (float)(gradFactor * wp * t[1] - nllFactor * wp) : 0.0f;
            pairGrad[P + p] = l >= 0 ? (float)(gradFactor * wp * t[2]) : 0.0f;
        }
    }
    for (int k = 0; k < 4; k++)
    {
        s[k] = block_sum_double(s[k], scratch);
    }
    if (threadIdx.x == 0)
    {
        double pairLoss = s[0] / weightSum, nll = nllDenominator > 0.0 ? s[1] / nllDenominator : 0.0;
        result[0] = (float)(pairLoss + (double)nllWeight * nll);
        result[1] = (float)pairLoss;
        result[2] = (float)nll;
        result[3] = (float)(s[2] / weightSum);
        result[4] = (float)(s[3] / weightSum);
        result[5] = (float)weightSum;
        result[6] = 0.0f;
        result[7] = 1.0f;
    }
}
