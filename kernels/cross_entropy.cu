// Fused softmax cross-entropy. logits (N,V), targets (N) i32, losses (N). One block per row.
// losses[n] = logsumexp(logits[n,:]) − logits[n, target]; a negative target is ignored (loss 0, zero gradient row).
// With backward = 1 the row is overwritten in place by dlogits = gradScale·(softmax − onehot(target)).
#include "common.cuh"

// Launch: N blocks, blockDim a multiple of 32 (at most 1024). A target ≥ V is reported and leaves the row untouched.
extern "C" __global__ void cross_entropy(float* losses, float* logits, const int* targets, int V, int backward, float gradScale, int* error)
{
    __shared__ float scratch[32];
    i64 n = blockIdx.x;
    float* x = logits + n * V;
    int target = targets[n];
    if (target >= V)
    {
        if (threadIdx.x == 0)
        {
            engine_report(error, ENGINE_ERROR_TARGET_RANGE, n, target);
            losses[n] = __int_as_float(0x7fc00000);
        }
        return;
    }
    if (target < 0)
    {
        if (threadIdx.x == 0)
        {
            losses[n] = 0.0f;
        }
        if (backward)
        {
            for (int v = threadIdx.x; v < V; v += blockDim.x)
            {
                x[v] = 0.0f;
            }
        }
        return;
    }

    float localMax = -ENGINE_INF;
    for (int v = threadIdx.x; v < V; v += blockDim.x)
    {
        localMax = fmaxf(localMax, x[v]);
    }
    float max = block_max(localMax, scratch);
    float localSum = 0.0f;
    for (int v = threadIdx.x; v < V; v += blockDim.x)
    {
        localSum += expf(x[v] - max);
    }
    float sum = block_sum(localSum, scratch);
    // Every thread has read the target logit's row by now (block_sum synchronises), so it can be overwritten below.
    float picked = x[target];
    __syncthreads();
    if (threadIdx.x == 0)
    {
        losses[n] = (float)(log((double)sum) + (double)max - (double)picked);
    }
    if (backward)
    {
        float factor = gradScale / sum;
        for (int v = threadIdx.x; v < V; v += blockDim.x)
        {
            float g = expf(x[v] - max) * factor;
            x[v] = v == target ? g - gradScale : g;
        }
    }
}
