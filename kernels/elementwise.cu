// Element-wise ops over flat f32 arrays of n elements, grid-stride loops (any grid covers any n).
#include "common.cuh"

// x[i] = value
extern "C" __global__ void fill_f32(float* x, i64 n, float value)
{
    for (i64 i = global_index(); i < n; i += global_stride())
    {
        x[i] = value;
    }
}

// out[i] = a[i] + b[i]; out may alias a or b (each element is read before it is written, by the same thread)
extern "C" __global__ void add_f32(float* out, const float* a, const float* b, i64 n)
{
    for (i64 i = global_index(); i < n; i += global_stride())
    {
        out[i] = a[i] + b[i];
    }
}

// dst[i] += src[i]
extern "C" __global__ void accumulate_f32(float* dst, const float* src, i64 n)
{
    for (i64 i = global_index(); i < n; i += global_stride())
    {
        dst[i] += src[i];
    }
}

// x[i] *= factor
extern "C" __global__ void scale_f32(float* x, i64 n, float factor)
{
    for (i64 i = global_index(); i < n; i += global_stride())
    {
        x[i] *= factor;
    }
}

// Column block copy between row-major matrices: dst[r, dstCol + j] (+)= src[r, srcCol + j] for r < rows, j < width
extern "C" __global__ void copy_columns_f32(
    float* dst, const float* src, i64 rows, int width, int dstStride, int dstCol, int srcStride, int srcCol, int accumulate)
{
    i64 n = rows * width;
    for (i64 i = global_index(); i < n; i += global_stride())
    {
        i64 r = i / width;
        int j = (int)(i - r * width);
        float v = src[r * srcStride + srcCol + j];
        float* d = dst + r * dstStride + dstCol + j;
        *d = accumulate ? *d + v : v;
    }
}
