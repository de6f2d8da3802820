// Token and learned-position embeddings. Shapes: tokens (N), table (V,C), out (N,C), x (B,T,C), wpe (maxT,C).
#include "common.cuh"

// out[n,:] = table[tokens[n],:]; one block per row. An id outside [0,V) writes a zero row and reports the error.
extern "C" __global__ void embedding_forward(float* out, const int* tokens, const float* table, int C, int V, int* error)
{
    i64 n = blockIdx.x;
    int token = tokens[n];
    float* row = out + n * C;
    if (token < 0 || token >= V)
    {
        if (threadIdx.x == 0)
        {
            engine_report(error, ENGINE_ERROR_TOKEN_RANGE, n, token);
        }
        for (int c = threadIdx.x; c < C; c += blockDim.x)
        {
            row[c] = 0.0f;
        }
        return;
    }
    const float* source = table + (i64)token * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x)
    {
        row[c] = source[c];
    }
}

#define EMBEDDING_LIST 1024

// dtable[tokens[n],:] += dout[n,:], deterministic and in the CPU's order: the block of the FIRST occurrence of a token
// gathers every position holding that token (ascending) and adds their rows one after the other, column by column.
// Blocks of later occurrences exit at once. So each table row has one writer and sums in position order.
// Launch: N blocks, blockDim a multiple of 32 (at most 1024).
extern "C" __global__ void embedding_backward(float* dtable, const float* dout, const int* tokens, int N, int C, int V)
{
    __shared__ int positions[EMBEDDING_LIST];
    __shared__ int warpCounts[32];
    __shared__ int count;
    __shared__ int seenEarlier;
    int n = blockIdx.x;
    int token = tokens[n];
    if (token < 0 || token >= V)
    {
        return;
    }
    if (threadIdx.x == 0)
    {
        count = 0;
        seenEarlier = 0;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x)
    {
        if (tokens[i] == token)
        {
            seenEarlier = 1;
        }
    }
    __syncthreads();
    if (seenEarlier)
    {
        return;
    }

    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    float* row = dtable + (i64)token * C;
    for (int base = n; base < N; base += blockDim.x)
    {
        int i = base + threadIdx.x;
        bool match = i < N && tokens[i] == token;
        unsigned ballot = __ballot_sync(ENGINE_FULL_MASK, match);
        if (lane == 0)
        {
            warpCounts[warp] = __popc(ballot);
        }
        __syncthreads();
        int before = 0, total = 0;
        for (int w = 0; w < warps; w++)
        {
            before += w < warp ? warpCounts[w] : 0;
            total += warpCounts[w];
        }
        if (count + total > EMBEDDING_LIST)
        {
            // Flush the gathered positions (in order) before the list overflows.
            for (int c = threadIdx.x; c < C; c += blockDim.x)
            {
                float v = row[c];
                for (int k = 0; k < count; k++)
                {
                    v += dout[(i64)positions[k] * C + c];
                }
                row[c] = v;
            }
            __syncthreads();
            if (threadIdx.x == 0)
            {
                count = 0;
            }
            __syncthreads();
        }
        if (match)
        {
            positions[count + before + __popc(ballot & ((1u << lane) - 1u))] = i;
        }
        __syncthreads();
        if (threadIdx.x == 0)
        {
            count += total;
        }
        __syncthreads();
    }
    for (int c = threadIdx.x; c < C; c += blockDim.x)
    {
        float v = row[c];
        for (int k = 0; k < count; k++)
        {
            v += dout[(i64)positions[k] * C + c];
        }
        row[c] = v;
    }
}

// x[b,t,c] += wpe[offset + t, c]; x is (B,T,C) flat with n = B·T·C elements
extern "C" __global__ void position_forward(float* x, const float* wpe, i64 n, int T, int C, int offset)
{
    for (i64 i = global_index(); i < n; i += global_stride())
    {
        i64 row = i / C;
        int c = (int)(i - row * C);
        int t = (int)(row % T);
        x[i] += wpe[(i64)(offset + t) * C + c];
    }
}

// dwpe[t,c] += Σ_b dx[b,t,c], b ascending (the CPU's order); one thread per (t,c)
extern "C" __global__ void position_backward(float* dwpe, const float* dx, int B, int T, int C)
{
    i64 n = (i64)T * C;
    for (i64 i = global_index(); i < n; i += global_stride())
    {
        float v = dwpe[i];
        for (int b = 0; b < B; b++)
        {
            v += dx[(i64)b * n + i];
        }
        dwpe[i] = v;
    }
}
