// The GRPO family's kernels (docs/grpo.md): group-relative advantages and the clipped surrogate with token- or
// sequence-level ratios and the four loss normalisations. The arithmetic is the CPU backend's
// (Engine.Core/Cpu/CpuBackend.Grpo.cs), in double; every reduction has a fixed shape and the per-row sums are folded in
// row order by one thread, so every result has the same bits on every run (no float atomics anywhere).
#include "common.cuh"

#define GRPO_ROW 8
#define GRPO_MAX_LOG_RATIO 88.0

// The unbiased standard deviation of n ≥ 2 values about their mean (two passes, one thread), as the CPU backend's.
__device__ double grpo_std(const float* x, int n)
{
    double sum = 0.0;
    for (int i = 0; i < n; i++)
    {
        sum += (double)x[i];
    }
    double mean = sum / n, squares = 0.0;
    for (int i = 0; i < n; i++)
    {
        double d = (double)x[i] - mean;
        squares += d * d;
    }
    return sqrt(squares / (n - 1));
}

// One block: thread 0 takes the batch's standard deviation, then a thread per group writes its advantages and its
// partials[3·g] = (Σ r, σ·G, all equal), and thread 0 folds them in group order into result = (mean reward, mean σ,
// zero-σ fraction, groups). baseline 0 = group mean, 1 = leave-one-out; scaling 0 = group, 1 = batch, 2 = none.
extern "C" __global__ void group_advantages(
    float* advantages, double* partials, float* result, const float* rewards, int groups, int G, int baseline, int scaling, float epsilon)
{
    __shared__ double batchStd;
    if (threadIdx.x == 0)
    {
        batchStd = grpo_std(rewards, groups * G);
    }
    __syncthreads();
    for (int g = threadIdx.x; g < groups; g += blockDim.x)
    {
        const float* x = rewards + (i64)g * G;
        double sum = 0.0;
        for (int i = 0; i < G; i++)
        {
            sum += (double)x[i];
        }
        double groupStd = grpo_std(x, G);
        double std = scaling == 1 ? batchStd : groupStd;
        double divisor = scaling == 2 ? 1.0 : std + (double)epsilon;
        for (int i = 0; i < G; i++)
        {
            double base = baseline == 0 ? sum / G : (sum - (double)x[i]) / (G - 1);
            advantages[(i64)g * G + i] = (float)(((double)x[i] - base) / divisor);
        }
        partials[3 * g] = sum;
        partials[3 * g + 1] = std * G;
        partials[3 * g + 2] = groupStd <= 1e-8 ? 1.0 : 0.0;
    }
    __syncthreads();
    if (threadIdx.x == 0)
    {
        double rewardSum = 0.0, stdSum = 0.0, zero = 0.0;
        for (int g = 0; g < groups; g++)
        {
            rewardSum += partials[3 * g];
            stdSum += partials[3 * g + 1];
            zero += partials[3 * g + 2];
        }
        double total = (double)groups * G;
        result[0] = (float)(rewardSum / total);
        result[1] = (float)(stdSum / total);
        result[2] = (float)(zero / groups);
        result[3] = (float)groups;
    }
}

// Block b = row b of (B,T): rows[GRPO_ROW·b ..] = (n_b = Σm, Σm·δ), δ = logp − logp_old.
extern "C" __global__ void grpo_row_count(double* rows, const float* logProbs, const float* oldLogProbs, const float* mask, int T)
{
    __shared__ double scratch[32];
    i64 row = (i64)blockIdx.x * T;
    double count = 0.0, logRatio = 0.0;
    for (int t = threadIdx.x; t < T; t += blockDim.x)
    {
        double m = (double)mask[row + t];
        if (m != 0.0)
        {
            count += m;
            logRatio += m * ((double)logProbs[row + t] - (double)oldLogProbs[row + t]);
        }
    }
    count = block_sum_double(count, scratch);
    logRatio = block_sum_double(logRatio, scratch);
    if (threadIdx.x == 0)
    {
        rows[GRPO_ROW * (i64)blockIdx.x] = count;
        rows[GRPO_ROW * (i64)blockIdx.x + 1] = logRatio;
    }
}

// Block b = row b: the loss, statistics and gradients of the row (see Backend.GrpoLoss). Every block first sums the row
// counts in the same fixed pattern, so all see the same token total. rows[GRPO_ROW·b + 2 ..] = (κ_b·Σm·ℓ, Σm·k3,
// Σm·H, Σm·low, Σm·high, Σm·w). lossType 0 grpo, 1 bnpo, 2 dr_grpo, 3 dapo; sequence 1 = GSPO's sequence ratio.
extern "C" __global__ void grpo_row_loss(
    double* rows, const float* logProbs, const float* oldLogProbs, const float* reference, const float* advantages, const float* mask,
    const float* entropy, float* grad, int B, int T, float clipLow, float clipHigh, float beta, int sequence, int lossType,
    int maxCompletionLength, float tokenNormalizer, float gradScale)
{
    __shared__ double scratch[32];
    double tokens = 0.0;
    for (int r = threadIdx.x; r < B; r += blockDim.x)
    {
        tokens += rows[GRPO_ROW * (i64)r];
    }
    tokens = block_sum_double(tokens, scratch);
    i64 b = blockIdx.x, row = b * T;
    double count = rows[GRPO_ROW * b], n = count > 1.0 ? count : 1.0;
    double kappa = lossType == 0 ? 1.0 / ((double)B * n)
        : lossType == 1 ? 1.0 / (tokens > 1.0 ? tokens : 1.0)
        : lossType == 2 ? 1.0 / ((double)B * (double)maxCompletionLength)
        : 1.0 / (tokenNormalizer > 0.0f ? (double)tokenNormalizer : (tokens > 1.0 ? tokens : 1.0));
    double lo = 1.0 - (double)clipLow, hi = 1.0 + (double)clipHigh, bt = (double)beta, scale = (double)gradScale;
    double sequenceRatio = exp(fmin(rows[GRPO_ROW * b + 1] / n, GRPO_MAX_LOG_RATIO));
    double s[7] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    for (int t = threadIdx.x; t < T; t += blockDim.x)
    {
        i64 i = row + t;
        double m = (double)mask[i];
        if (m == 0.0)
        {
            continue;
        }
        double logp = (double)logProbs[i], a = (double)advantages[i];
        double w = sequence ? sequenceRatio : exp(fmin(logp - (double)oldLogProbs[i], GRPO_MAX_LOG_RATIO));
        double clipped = fmin(fmax(w, lo), hi) * a, unclipped = w * a;
        bool isClipped = clipped < unclipped;
        double kl = 0.0, klGrad = 0.0;
        if (reference != 0)
        {
            double x = (double)reference[i] - logp, e = exp(fmin(x, GRPO_MAX_LOG_RATIO));
            kl = e - x - 1.0;
            klGrad = 1.0 - e;
        }
        s[0] += m * (-fmin(unclipped, clipped) + bt * kl);
        s[1] += isClipped ? 0.0 : m * -a;
        s[2] += m * kl;
        s[3] += entropy != 0 ? m * (double)entropy[i] : 0.0;
        s[4] += w < lo && a < 0.0 ? m : 0.0;
        s[5] += w > hi && a > 0.0 ? m : 0.0;
        s[6] += m * w;
        if (grad != 0 && !sequence)
        {
            grad[i] += (float)(scale * kappa * m * ((isClipped ? 0.0 : -a * w) + bt * klGrad));
        }
    }
    for (int k = 0; k < 7; k++)
    {
        s[k] = block_sum_double(s[k], scratch);
    }
    if (grad != 0 && sequence)
    {
        // ∂s_b/∂logp_t = s_b·m_t/n_b, shared by every token of the row.
        double shared = sequenceRatio * s[1] / n;
        for (int t = threadIdx.x; t < T; t += blockDim.x)
        {
            i64 i = row + t;
            double m = (double)mask[i];
            if (m != 0.0)
            {
                double klGrad = reference == 0 ? 0.0 : 1.0 - exp(fmin((double)reference[i] - (double)logProbs[i], GRPO_MAX_LOG_RATIO));
                grad[i] += (float)(scale * kappa * m * (shared + bt * klGrad));
            }
        }
    }
    if (threadIdx.x == 0)
    {
        double* p = rows + GRPO_ROW * b;
        p[2] = kappa * s[0];
        p[3] = s[2];
        p[4] = s[3];
        p[5] = s[4];
        p[6] = s[5];
        p[7] = s[6];
    }
}

// One thread folds the rows in order into the eight GrpoStatistics fields (all 0 without tokens).
extern "C" __global__ void grpo_fold(float* result, const double* rows, int B)
{
    if (threadIdx.x != 0 || blockIdx.x != 0)
    {
        return;
    }
    double sums[GRPO_ROW] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    for (int b = 0; b < B; b++)
    {
        for (int k = 0; k < GRPO_ROW; k++)
        {
            sums[k] += rows[GRPO_ROW * (i64)b + k];
        }
    }
    double n = sums[0];
    if (n == 0.0)
    {
        for (int k = 0; k < 8; k++)
        {
            result[k] = 0.0f;
        }
        return;
    }
    result[0] = (float)sums[2];
    result[1] = (float)(sums[3] / n);
    result[2] = (float)(sums[4] / n);
    result[3] = (float)(sums[5] / n);
    result[4] = (float)(sums[6] / n);
    result[5] = (float)((sums[5] + sums[6]) / n);
    result[6] = (float)(sums[7] / n);
    result[7] = (float)n;
}
