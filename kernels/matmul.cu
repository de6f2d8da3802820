// Helpers around the cuBLAS GEMMs of the linear layers: bias add and the bias-gradient column reduction.
// out, dout are (N,OC); bias (OC); partials (segments, OC).
#include "common.cuh"

// out[n,o] += bias[o]
extern "C" __global__ void bias_add(float* out, const float* bias, i64 n, int OC)
{
    for (i64 i = global_index(); i < n; i += global_stride())
    {
        out[i] += bias[i % OC];
    }
}

// partials[s,c] = Σ over rows of segment s of x[row,c]. Launch: grid (⌈C/32⌉, segments), block (32, 8); the rows of a
// segment are split over threadIdx.y and folded in y order, so the sum depends only on the shape.
extern "C" __global__ void column_partials(float* partials, const float* x, int N, int C, int rowsPerSegment)
{
    __shared__ float s[8][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    int segment = blockIdx.y;
    i64 first = (i64)segment * rowsPerSegment;
    i64 end = first + rowsPerSegment < N ? first + rowsPerSegment : N;
    float acc = 0.0f;
    if (c < C)
    {
        for (i64 row = first + threadIdx.y; row < end; row += 8)
        {
            acc += x[row * C + c];
        }
    }
    s[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < C)
    {
        float total = 0.0f;
        for (int y = 0; y < 8; y++)
        {
            total += s[y][threadIdx.x];
        }
        partials[(i64)segment * C + c] = total;
    }
}

// grad[c] += Σ_s partials[s,c], s ascending: the second, deterministic pass of every column reduction
// (bias gradients here; LayerNorm/RMSNorm weight and bias gradients from their *_partials kernels).
extern "C" __global__ void column_fold(float* grad, const float* partials, int segments, int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C)
    {
        return;
    }
    float total = 0.0f;
    for (int s = 0; s < segments; s++)
    {
        total += partials[(i64)s * C + c];
    }
    grad[c] += total;
}
