// RMSNorm over the last dimension. inp, out, dout, dinp are (N,C); weight (C); rstd (N). Same structure as layernorm.cu.
#include "common.cuh"

// out = x·rstd·w, rstd = 1/√(mean(x²) + ε)
extern "C" __global__ void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float epsilon)
{
    int lane = threadIdx.x & 31;
    i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= N)
    {
        return;
    }
    const float* x = inp + row * C;
    float squares = 0.0f;
    for (int c = lane; c < C; c += 32)
    {
        squares = fmaf(x[c], x[c], squares);
    }
    float r = 1.0f / sqrtf(warp_sum(squares) / C + epsilon);
    if (lane == 0)
    {
        rstd[row] = r;
    }
    float* y = out + row * C;
    for (int c = lane; c < C; c += 32)
    {
        y[c] = x[c] * r * weight[c];
    }
}

// dinp += (w·dout − norm·mean(w·dout·norm))·rstd, one warp per row
extern "C" __global__ void rmsnorm_backward_input(
    float* dinp, const float* dout, const float* inp, const float* weight, const float* rstd, int N, int C)
{
    int lane = threadIdx.x & 31;
    i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= N)
    {
        return;
    }
    const float* x = inp + row * C;
    const float* dy = dout + row * C;
    float* dx = dinp + row * C;
    float r = rstd[row];
    float sumDn = 0.0f;
    for (int c = lane; c < C; c += 32)
    {
        sumDn = fmaf(weight[c] * dy[c], x[c] * r, sumDn);
    }
    float meanDn = warp_sum(sumDn) / C;
    for (int c = lane; c < C; c += 32)
    {
        float delta = weight[c] * dy[c] - x[c] * r * meanDn;
        dx[c] = fmaf(delta, r, dx[c]);
    }
}

// Per row segment s: dweightPart[s,c] = Σ_rows dout·x·rstd. Launch: grid (⌈C/32⌉, segments), block (32, 8).
extern "C" __global__ void rmsnorm_backward_partials(
    float* dweightPart, const float* dout, const float* inp, const float* rstd, int N, int C, int rowsPerSegment)
{
    __shared__ float sw[8][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    int segment = blockIdx.y;
    i64 first = (i64)segment * rowsPerSegment;
    i64 end = first + rowsPerSegment < N ? first + rowsPerSegment : N;
    float acc = 0.0f;
    if (c < C)
    {
        for (i64 row = first + threadIdx.y; row < end; row += 8)
        {
            acc = fmaf(dout[row * C + c], inp[row * C + c] * rstd[row], acc);
        }
    }
    sw[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < C)
    {
        float w = 0.0f;
        for (int y = 0; y < 8; y++)
        {
            w += sw[y][threadIdx.x];
        }
        dweightPart[(i64)segment * C + c] = w;
    }
}
