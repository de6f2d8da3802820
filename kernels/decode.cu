// Incremental (KV-cached) attention for generation, fp32. qkv is (B,Tq,(NH+2·NKV)·HS) laid out [q heads | k heads |
// v heads]; the caches are (B,NKV,maxT,HS); positions (B) holds how many tokens each sequence already has cached.
// decode_append writes the new k/v rows to slots positions[b] + t; attention_decode then runs query t of every head
// over slots 0 … positions[b] + t. Sequences whose positions[b] + Tq would overflow the cache are skipped.
#include "common.cuh"

extern "C" __global__ void decode_append(float* kCache, float* vCache, const float* qkv, const int* positions, i64 n, int Tq, int NH, int NKV, int HS, int maxT)
{
    i64 qkvStride = (i64)(NH + 2 * NKV) * HS;
    for (i64 idx = global_index(); idx < n; idx += global_stride())
    {
        int d = (int)(idx % HS);
        i64 rest = idx / HS;
        int g = (int)(rest % NKV);
        rest /= NKV;
        int t = (int)(rest % Tq);
        int b = (int)(rest / Tq);
        int p = positions[b];
        if (p < 0 || p + Tq > maxT)
        {
            continue;
        }

        const float* row = qkv + ((i64)b * Tq + t) * qkvStride;
        i64 slot = (((i64)b * NKV + g) * maxT + p + t) * HS + d;
        kCache[slot] = row[(i64)(NH + g) * HS + d];
        vCache[slot] = row[(i64)(NH + NKV + g) * HS + d];
    }
}

// One block per (query t, head h, sequence b). Dynamic shared memory: q (HS), reduction scratch (32), scores (p + t + 1).
extern "C" __global__ void attention_decode(float* out, const float* qkv, const float* kCache, const float* vCache, const int* positions, int Tq, int NH, int NKV, int HS, int maxT, float scale)
{
    extern __shared__ float smem[];
    int t = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    int p = positions[b];
    if (p < 0 || p + Tq > maxT)
    {
        return;
    }

    int g = h / (NH / NKV);
    int n = p + t + 1;
    float* q = smem;
    float* red = smem + HS;
    float* scores = red + 32;
    i64 qkvStride = (i64)(NH + 2 * NKV) * HS;
    const float* qrow = qkv + ((i64)b * Tq + t) * qkvStride + (i64)h * HS;
    for (int d = threadIdx.x; d < HS; d += blockDim.x)
    {
        q[d] = qrow[d] * scale;
    }

    __syncthreads();
    i64 head = ((i64)b * NKV + g) * maxT * HS;
    const float* kh = kCache + head;
    const float* vh = vCache + head;
    float m = -ENGINE_INF;
    for (int j = threadIdx.x; j < n; j += blockDim.x)
    {
        const float* k = kh + (i64)j * HS;
        float s = 0.0f;
        for (int d = 0; d < HS; d++)
        {
            s = fmaf(q[d], k[d], s);
        }

        scores[j] = s;
        m = fmaxf(m, s);
    }

    m = block_max(m, red);
    float l = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x)
    {
        float e = expf(scores[j] - m);
        scores[j] = e;
        l += e;
    }

    l = block_sum(l, red);
    float inv = 1.0f / l;
    float* o = out + ((i64)b * Tq + t) * NH * HS + (i64)h * HS;
    for (int d = threadIdx.x; d < HS; d += blockDim.x)
    {
        float acc = 0.0f;
        for (int j = 0; j < n; j++)
        {
            acc = fmaf(scores[j], vh[(i64)j * HS + d], acc);
        }

        o[d] = acc * inv;
    }
}
