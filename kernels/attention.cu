// Causal self-attention, FlashAttention style, fp32. qkv is (B,T,(NH+2·NKV)·HS) laid out [q heads | k heads | v heads];
// out and dout are (B,T,NH·HS); lse and delta are (B,NH,T). Query head h reads key/value head h / (NH/NKV).
//
// Every kernel is a 128-thread block that owns ATT_ROWS = 16 rows (queries, or keys in the dK/dV kernel) and streams
// tiles of ATT_COLS = 32 rows of the other side through shared memory. Thread t works on owned row r = t/8; its 8
// threads (l = t%8, consecutive lanes of one warp) each score 4 of the 32 streamed rows (l, l+8, l+16, l+24) and each
// keep the channels c ≡ l (mod 8) of the row's accumulators in registers (CPT = ⌈HS/8⌉ of them, a template argument
// fixed per head-size class). Shared rows are padded to HS+1 floats so the 8 threads read 8 different banks.
// The [T,T] scores are never stored: forward keeps a running max and sum (online softmax) and saves lse = m + log l;
// backward recomputes p = exp(s − lse).
// Packed rows: positions (B,T) i32, or null, holds each token's position within its document (0 at each document start).
// Query i then sees keys start(i) = i − positions[i] … i only (block-diagonal causal attention); blocks skip the key
// tiles before their first query's document, and the dK/dV blocks stop at the first query tile past their keys' document.
#include "common.cuh"

#define ATT_THREADS 128
#define ATT_ROWS 16
#define ATT_COLS 32
#define ATT_PSTRIDE 33

// rows [first, first+count) of one head into a shared tile (row stride hsp); rows past T are zero
__device__ __forceinline__ void load_rows(float* tile, const float* base, int first, int count, int T, int rowStride, int column, int HS, int hsp)
{
    for (int idx = threadIdx.x; idx < count * HS; idx += ATT_THREADS)
    {
        int rr = idx / HS;
        int c = idx - rr * HS;
        int row = first + rr;
        tile[rr * hsp + c] = row < T ? base[(i64)row * rowStride + column + c] : 0.0f;
    }
}

// first key query t of row b sees: its document's start (0 without positions, or for rows past T)
__device__ __forceinline__ int document_start(const int* positions, int b, int T, int t)
{
    if (positions == 0 || t >= T)
    {
        return 0;
    }
    int p = positions[(i64)b * T + t];
    p = p < 0 ? 0 : (p > t ? t : p);
    return t - p;
}

__device__ __forceinline__ float dot_shared(const float* a, const float* b, int HS)
{
    float acc = 0.0f;
    for (int c = 0; c < HS; c++)
    {
        acc = fmaf(a[c], b[c], acc);
    }
    return acc;
}

// the 8 threads of one owned row (consecutive lanes) agree on a max / sum; every lane ends with the same bits
__device__ __forceinline__ float row_max8(float v)
{
    v = fmaxf(v, __shfl_xor_sync(ENGINE_FULL_MASK, v, 1));
    v = fmaxf(v, __shfl_xor_sync(ENGINE_FULL_MASK, v, 2));
    return fmaxf(v, __shfl_xor_sync(ENGINE_FULL_MASK, v, 4));
}

__device__ __forceinline__ float row_sum8(float v)
{
    v += __shfl_xor_sync(ENGINE_FULL_MASK, v, 1);
    v += __shfl_xor_sync(ENGINE_FULL_MASK, v, 2);
    return v + __shfl_xor_sync(ENGINE_FULL_MASK, v, 4);
}

// Grid (⌈T/16⌉, NH, B). Shared: Q (16 rows), K, V (32 rows each), P (16×33).
template <int CPT>
__device__ __forceinline__ void attention_forward(
    float* out, float* lse, const float* qkv, const int* positions, int T, int NH, int NKV, int HS, float scale)
{
    extern __shared__ float smem[];
    int hsp = HS + 1;
    float* Qs = smem;
    float* Ks = Qs + ATT_ROWS * hsp;
    float* Vs = Ks + ATT_COLS * hsp;
    float* Ps = Vs + ATT_COLS * hsp;
    int q0 = blockIdx.x * ATT_ROWS, h = blockIdx.y, b = blockIdx.z;
    int g = h / (NH / NKV);
    int qkvChannels = (NH + 2 * NKV) * HS;
    const float* base = qkv + (i64)b * T * qkvChannels;
    int r = threadIdx.x >> 3, l = threadIdx.x & 7;
    int qi = q0 + r;
    int start = document_start(positions, b, T, qi);

    load_rows(Qs, base, q0, ATT_ROWS, T, qkvChannels, h * HS, HS, hsp);
    float o[CPT];
#pragma unroll
    for (int k = 0; k < CPT; k++)
    {
        o[k] = 0.0f;
    }
    float m = -ENGINE_INF, lsum = 0.0f;
    int last = (q0 + ATT_ROWS < T ? q0 + ATT_ROWS : T) - 1;
    for (int k0 = document_start(positions, b, T, q0); k0 <= last; k0 += ATT_COLS)
    {
        __syncthreads();
        load_rows(Ks, base, k0, ATT_COLS, T, qkvChannels, (NH + g) * HS, HS, hsp);
        load_rows(Vs, base, k0, ATT_COLS, T, qkvChannels, (NH + NKV + g) * HS, HS, hsp);
        __syncthreads();

        float s[4];
        float tileMax = -ENGINE_INF;
#pragma unroll
        for (int mm = 0; mm < 4; mm++)
        {
            int j = l + 8 * mm, kj = k0 + j;
            float dot = dot_shared(Qs + r * hsp, Ks + j * hsp, HS);
            s[mm] = (kj <= qi && kj < T && kj >= start) ? dot * scale : -ENGINE_INF;
            tileMax = fmaxf(tileMax, s[mm]);
        }
        // Without positions tile 0 holds key 0, which every row sees, so m is finite from the first tile on. With them a
        // row of a later document may have seen no key yet: exponentials are then taken against 0, giving 0, not NaN.
        float mNew = fmaxf(m, row_max8(tileMax));
        float mExp = mNew == -ENGINE_INF ? 0.0f : mNew;
        float alpha = expf(m - mExp);
        float pSum = 0.0f;
#pragma unroll
        for (int mm = 0; mm < 4; mm++)
        {
            float p = expf(s[mm] - mExp);
            Ps[r * ATT_PSTRIDE + l + 8 * mm] = p;
            pSum += p;
        }
        lsum = lsum * alpha + row_sum8(pSum);
        m = mNew;
        __syncwarp();
#pragma unroll
        for (int k = 0; k < CPT; k++)
        {
            o[k] *= alpha;
        }
        for (int j = 0; j < ATT_COLS; j++)
        {
            float pj = Ps[r * ATT_PSTRIDE + j];
            const float* vRow = Vs + j * hsp;
#pragma unroll
            for (int k = 0; k < CPT; k++)
            {
                int c = l + 8 * k;
                if (c < HS)
                {
                    o[k] = fmaf(pj, vRow[c], o[k]);
                }
            }
        }
    }
    if (qi < T)
    {
        float* y = out + ((i64)b * T + qi) * NH * HS + (i64)h * HS;
#pragma unroll
        for (int k = 0; k < CPT; k++)
        {
            int c = l + 8 * k;
            if (c < HS)
            {
                y[c] = o[k] / lsum;
            }
        }
        if (l == 0)
        {
            lse[((i64)b * NH + h) * T + qi] = m + logf(lsum);
        }
    }
}

// delta[b,h,t] = Σ_c dout[b,t,h,c]·out[b,t,h,c], one warp per (b,t,h); rows = B·T·NH
extern "C" __global__ void attention_backward_delta(float* delta, const float* dout, const float* out, i64 rows, int T, int NH, int HS)
{
    i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows)
    {
        return;
    }
    const float* a = dout + row * HS;
    const float* o = out + row * HS;
    float sum = 0.0f;
    for (int c = lane; c < HS; c += 32)
    {
        sum = fmaf(a[c], o[c], sum);
    }
    sum = warp_sum(sum);
    if (lane == 0)
    {
        // row enumerates (b, t, h) in memory order; delta is laid out (b, h, t) like lse
        i64 bt = row / NH;
        int h = (int)(row - bt * NH);
        i64 b = bt / T;
        int t = (int)(bt - b * T);
        delta[(b * NH + h) * T + t] = sum;
    }
}

// dq += scale·Σ_j dS_ij k_j with dS = p∘(dP − delta), p = exp(s·scale − lse), dP_ij = dout_i·v_j.
// Grid (⌈T/16⌉, NH, B). Shared: Q, dO (16 rows each), K, V (32 rows each), dS (16×33).
template <int CPT>
__device__ __forceinline__ void attention_backward_dq(
    float* dqkv, const float* dout, const float* qkv, const float* lse, const float* delta, const int* positions, int T, int NH, int NKV,
    int HS, float scale)
{
    extern __shared__ float smem[];
    int hsp = HS + 1;
    float* Qs = smem;
    float* dOs = Qs + ATT_ROWS * hsp;
    float* Ks = dOs + ATT_ROWS * hsp;
    float* Vs = Ks + ATT_COLS * hsp;
    float* Ss = Vs + ATT_COLS * hsp;
    int q0 = blockIdx.x * ATT_ROWS, h = blockIdx.y, b = blockIdx.z;
    int g = h / (NH / NKV);
    int qkvChannels = (NH + 2 * NKV) * HS;
    int outChannels = NH * HS;
    const float* base = qkv + (i64)b * T * qkvChannels;
    int r = threadIdx.x >> 3, l = threadIdx.x & 7;
    int qi = q0 + r;
    int start = document_start(positions, b, T, qi);

    load_rows(Qs, base, q0, ATT_ROWS, T, qkvChannels, h * HS, HS, hsp);
    load_rows(dOs, dout + (i64)b * T * outChannels, q0, ATT_ROWS, T, outChannels, h * HS, HS, hsp);
    // Padding rows (past T) get lse = delta = 0 with zero q and dout: finite, and never stored.
    float rowLse = qi < T ? lse[((i64)b * NH + h) * T + qi] : 0.0f;
    float rowDelta = qi < T ? delta[((i64)b * NH + h) * T + qi] : 0.0f;
    float dq[CPT];
#pragma unroll
    for (int k = 0; k < CPT; k++)
    {
        dq[k] = 0.0f;
    }
    int last = (q0 + ATT_ROWS < T ? q0 + ATT_ROWS : T) - 1;
    for (int k0 = document_start(positions, b, T, q0); k0 <= last; k0 += ATT_COLS)
    {
        __syncthreads();
        load_rows(Ks, base, k0, ATT_COLS, T, qkvChannels, (NH + g) * HS, HS, hsp);
        load_rows(Vs, base, k0, ATT_COLS, T, qkvChannels, (NH + NKV + g) * HS, HS, hsp);
        __syncthreads();
#pragma unroll
        for (int mm = 0; mm < 4; mm++)
        {
            int j = l + 8 * mm, kj = k0 + j;
            float s = dot_shared(Qs + r * hsp, Ks + j * hsp, HS);
            float dp = dot_shared(dOs + r * hsp, Vs + j * hsp, HS);
            float p = (kj <= qi && kj < T && kj >= start) ? expf(s * scale - rowLse) : 0.0f;
            Ss[r * ATT_PSTRIDE + j] = p * (dp - rowDelta);
        }
        __syncwarp();
        for (int j = 0; j < ATT_COLS; j++)
        {
            float ds = Ss[r * ATT_PSTRIDE + j];
            const float* kRow = Ks + j * hsp;
#pragma unroll
            for (int k = 0; k < CPT; k++)
            {
                int c = l + 8 * k;
                if (c < HS)
                {
                    dq[k] = fmaf(ds, kRow[c], dq[k]);
                }
            }
        }
    }
    if (qi < T)
    {
        float* dq_row = dqkv + ((i64)b * T + qi) * qkvChannels + (i64)h * HS;
#pragma unroll
        for (int k = 0; k < CPT; k++)
        {
            int c = l + 8 * k;
            if (c < HS)
            {
                dq_row[c] += dq[k] * scale;
            }
        }
    }
}

// dk_j += scale·Σ_i dS_ij q_i and dv_j += Σ_i p_ij dout_i over every query head of the group and every query i ≥ j.
// Each block owns 16 keys of one key/value head, so every dk/dv element has one writer: no atomics, fixed order.
// Grid (⌈T/16⌉, NKV, B). Shared: K, V (16 rows each), Q, dO (32 rows each), P, dS (16×33), lse, delta (32).
template <int CPT>
__device__ __forceinline__ void attention_backward_dkdv(
    float* dqkv, const float* dout, const float* qkv, const float* lse, const float* delta, const int* positions, int T, int NH, int NKV,
    int HS, float scale)
{
    extern __shared__ float smem[];
    int hsp = HS + 1;
    float* Ks = smem;
    float* Vs = Ks + ATT_ROWS * hsp;
    float* Qs = Vs + ATT_ROWS * hsp;
    float* dOs = Qs + ATT_COLS * hsp;
    float* Ps = dOs + ATT_COLS * hsp;
    float* Ss = Ps + ATT_ROWS * ATT_PSTRIDE;
    float* Ls = Ss + ATT_ROWS * ATT_PSTRIDE;
    float* Ds = Ls + ATT_COLS;
    int k0 = blockIdx.x * ATT_ROWS, g = blockIdx.y, b = blockIdx.z;
    int group = NH / NKV;
    int qkvChannels = (NH + 2 * NKV) * HS;
    int outChannels = NH * HS;
    const float* base = qkv + (i64)b * T * qkvChannels;
    const float* doutBase = dout + (i64)b * T * outChannels;
    int r = threadIdx.x >> 3, l = threadIdx.x & 7;
    int kj = k0 + r;

    load_rows(Ks, base, k0, ATT_ROWS, T, qkvChannels, (NH + g) * HS, HS, hsp);
    load_rows(Vs, base, k0, ATT_ROWS, T, qkvChannels, (NH + NKV + g) * HS, HS, hsp);
    float dk[CPT], dv[CPT];
#pragma unroll
    for (int k = 0; k < CPT; k++)
    {
        dk[k] = 0.0f;
        dv[k] = 0.0f;
    }
    for (int hh = 0; hh < group; hh++)
    {
        int h = g * group + hh;
        const float* rowLse = lse + ((i64)b * NH + h) * T;
        const float* rowDelta = delta + ((i64)b * NH + h) * T;
        // Queries whose document starts after this block's last key see none of its keys, nor do any after them.
        for (int q0 = k0; q0 < T && document_start(positions, b, T, q0) < k0 + ATT_ROWS; q0 += ATT_COLS)
        {
            __syncthreads();
            load_rows(Qs, base, q0, ATT_COLS, T, qkvChannels, h * HS, HS, hsp);
            load_rows(dOs, doutBase, q0, ATT_COLS, T, outChannels, h * HS, HS, hsp);
            if (threadIdx.x < ATT_COLS)
            {
                int i = q0 + threadIdx.x;
                Ls[threadIdx.x] = i < T ? rowLse[i] : 0.0f;
                Ds[threadIdx.x] = i < T ? rowDelta[i] : 0.0f;
            }
            __syncthreads();
#pragma unroll
            for (int mm = 0; mm < 4; mm++)
            {
                int jq = l + 8 * mm, i = q0 + jq;
                float s = dot_shared(Ks + r * hsp, Qs + jq * hsp, HS);
                float dp = dot_shared(Vs + r * hsp, dOs + jq * hsp, HS);
                float p = (i < T && kj <= i && kj < T && kj >= document_start(positions, b, T, i)) ? expf(s * scale - Ls[jq]) : 0.0f;
                Ps[r * ATT_PSTRIDE + jq] = p;
                Ss[r * ATT_PSTRIDE + jq] = p * (dp - Ds[jq]);
            }
            __syncwarp();
            for (int jq = 0; jq < ATT_COLS; jq++)
            {
                float p = Ps[r * ATT_PSTRIDE + jq];
                float ds = Ss[r * ATT_PSTRIDE + jq];
                const float* qRow = Qs + jq * hsp;
                const float* doRow = dOs + jq * hsp;
#pragma unroll
                for (int k = 0; k < CPT; k++)
                {
                    int c = l + 8 * k;
                    if (c < HS)
                    {
                        dv[k] = fmaf(p, doRow[c], dv[k]);
                        dk[k] = fmaf(ds, qRow[c], dk[k]);
                    }
                }
            }
        }
    }
    if (kj < T)
    {
        float* row = dqkv + ((i64)b * T + kj) * qkvChannels;
        float* dkRow = row + (i64)(NH + g) * HS;
        float* dvRow = row + (i64)(NH + NKV + g) * HS;
#pragma unroll
        for (int k = 0; k < CPT; k++)
        {
            int c = l + 8 * k;
            if (c < HS)
            {
                dkRow[c] += dk[k] * scale;
                dvRow[c] += dv[k];
            }
        }
    }
}

// Entry points per head-size class: _64 serves HS ≤ 64, _128 HS ≤ 128, _256 HS ≤ 256 (CPT = HS_max / 8 registers).
#define ATTENTION_ENTRIES(HSMAX)                                                                                          \
    extern "C" __global__ void __launch_bounds__(ATT_THREADS) attention_forward_##HSMAX(                                  \
        float* out, float* lse, const float* qkv, const int* positions, int T, int NH, int NKV, int HS, float scale)      \
    {                                                                                                                     \
        attention_forward<HSMAX / 8>(out, lse, qkv, positions, T, NH, NKV, HS, scale);                                    \
    }                                                                                                                     \
    extern "C" __global__ void __launch_bounds__(ATT_THREADS) attention_backward_dq_##HSMAX(                              \
        float* dqkv, const float* dout, const float* qkv, const float* lse, const float* delta, const int* positions,     \
        int T, int NH, int NKV, int HS, float scale)                                                                      \
    {                                                                                                                     \
        attention_backward_dq<HSMAX / 8>(dqkv, dout, qkv, lse, delta, positions, T, NH, NKV, HS, scale);                  \
    }                                                                                                                     \
    extern "C" __global__ void __launch_bounds__(ATT_THREADS) attention_backward_dkdv_##HSMAX(                            \
        float* dqkv, const float* dout, const float* qkv, const float* lse, const float* delta, const int* positions,     \
        int T, int NH, int NKV, int HS, float scale)                                                                      \
    {                                                                                                                     \
        attention_backward_dkdv<HSMAX / 8>(dqkv, dout, qkv, lse, delta, positions, T, NH, NKV, HS, scale);                \
    }

ATTENTION_ENTRIES(64)
ATTENTION_ENTRIES(128)
ATTENTION_ENTRIES(256)
