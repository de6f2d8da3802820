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
