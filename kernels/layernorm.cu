// LayerNorm over the last dimension. inp, out, dout, dinp are (N,C); weight, bias (C); mean, rstd (N).
// Forward and the input gradient use one warp per row; the weight/bias gradients are column reductions done in two
// deterministic passes: per-segment partial sums here, folded in segment order by column_fold (matmul.cu).
#include "common.cuh"

// out = (x − μ)·rstd·w + b, rstd = 1/√(var + ε) with the biased variance; bias may be null
extern "C" __global__ void layernorm_forward(
    float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias, int N, int C, float epsilon)
{
    int lane = threadIdx.x & 31;
    i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= N)
    {
        return;
    }
    const float* x = inp + row * C;
    float sum = 0.0f;
    for (int c = lane; c < C; c += 32)
    {
        sum += x[c];
    }
    float m = warp_sum(sum) / C;
    float squares = 0.0f;
    for (int c = lane; c < C; c += 32)
    {
        float d = x[c] - m;
        squares += d * d;
    }
    float r = 1.0f / sqrtf(warp_sum(squares) / C + epsilon);
    if (lane == 0)
    {
        mean[row] = m;
        rstd[row] = r;
    }
    float* y = out + row * C;
    for (int c = lane; c < C; c += 32)
    {
        float norm = (x[c] - m) * r;
        y[c] = bias != 0 ? fmaf(norm, weight[c], bias[c]) : norm * weight[c];
    }
}

// dinp += (w·dout − mean(w·dout) − norm·mean(w·dout·norm))·rstd, one warp per row
extern "C" __global__ void layernorm_backward_input(
    float* dinp, const float* dout, const float* inp, const float* weight, const float* mean, const float* rstd, int N, int C)
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
    float m = mean[row], r = rstd[row];
    float sumD = 0.0f, sumDn = 0.0f;
    for (int c = lane; c < C; c += 32)
    {
        float dnorm = weight[c] * dy[c];
        sumD += dnorm;
        sumDn = fmaf(dnorm, (x[c] - m) * r, sumDn);
    }
    float meanD = warp_sum(sumD) / C;
    float meanDn = warp_sum(sumDn) / C;
    for (int c = lane; c < C; c += 32)
    {
        float norm = (x[c] - m) * r;
        float delta = weight[c] * dy[c] - meanD - norm * meanDn;
        dx[c] = fmaf(delta, r, dx[c]);
    }
}

// Per row segment s: dweightPart[s,c] = Σ_rows dout·norm, dbiasPart[s,c] = Σ_rows dout (either may be null).
// Launch: grid (⌈C/32⌉, segments), block (32, 8). Rows of a segment are split over threadIdx.y and folded in y order.
extern "C" __global__ void layernorm_backward_partials(
    float* dweightPart, float* dbiasPart, const float* dout, const float* inp, const float* mean, const float* rstd,
    int N, int C, int rowsPerSegment)
{
    __shared__ float sw[8][33];
    __shared__ float sb[8][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    int segment = blockIdx.y;
    i64 first = (i64)segment * rowsPerSegment;
    i64 end = first + rowsPerSegment < N ? first + rowsPerSegment : N;
    float accW = 0.0f, accB = 0.0f;
    if (c < C)
    {
        for (i64 row = first + threadIdx.y; row < end; row += 8)
        {
            float g = dout[row * C + c];
            accW = fmaf(g, (inp[row * C + c] - mean[row]) * rstd[row], accW);
            accB += g;
        }
    }
    sw[threadIdx.y][threadIdx.x] = accW;
    sb[threadIdx.y][threadIdx.x] = accB;
    __syncthreads();
    if (threadIdx.y == 0 && c < C)
    {
        float w = 0.0f, b = 0.0f;
        for (int y = 0; y < 8; y++)
        {
            w += sw[y][threadIdx.x];
            b += sb[y][threadIdx.x];
        }
        if (dweightPart != 0)
        {
            dweightPart[(i64)segment * C + c] = w;
        }
        if (dbiasPart != 0)
        {
            dbiasPart[(i64)segment * C + c] = b;
        }
    }
}
