// Rotary position embedding ("rotate half") in place on the q and k heads of qkv (B,T,(NH+2·NKV)·HS); table (maxT,HS)
// holds cos(t·θ_i) for i < HS/2 then sin(t·θ_i). inverse = 1 rotates by −θ (the backward of the rotation).
#include "common.cuh"

// one thread per (row, rotated head, i < HS/2); n = B·T·(NH+NKV)·HS/2
extern "C" __global__ void rope_rotate(float* qkv, const float* table, i64 n, int T, int rotatedHeads, int HS, int qkvChannels, int offset, int inverse)
{
    int half = HS >> 1;
    for (i64 idx = global_index(); idx < n; idx += global_stride())
    {
        i64 rest = idx / half;
        int i = (int)(idx - rest * half);
        i64 row = rest / rotatedHeads;
        int head = (int)(rest - row * rotatedHeads);
        int position = offset + (int)(row % T);
        const float* cosRow = table + (i64)position * HS;
        float c = cosRow[i];
        float s = inverse ? -cosRow[half + i] : cosRow[half + i];
        float* x = qkv + row * qkvChannels + (i64)head * HS;
        float a = x[i], b = x[half + i];
        x[i] = a * c - b * s;
        x[half + i] = b * c + a * s;
    }
}
