// CPU emulation of the CUDA execution model for testing kernels without a GPU: every thread of a block is a std::thread,
// __syncthreads is a block barrier, warp shuffles exchange through a per-warp slot array and barrier.
#pragma once
#include <cmath>
#include <cstring>
#include <thread>
#include <barrier>
#include <vector>
#include <memory>
#include <functional>
#include <cstdint>
using std::exp; using std::log; using std::sqrt; using std::fabs; using std::fma; using std::fmax; using std::fmin;
struct dim3 { unsigned x = 1, y = 1, z = 1; };
struct Warp { std::barrier<> bar; uint64_t slot[32]; explicit Warp(int n) : bar(n) {} };
inline thread_local dim3 threadIdx, blockIdx;
inline thread_local Warp* curWarp;
inline thread_local int curLane;
inline thread_local std::barrier<>* curBlock;
inline dim3 blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
inline void __syncthreads() { curBlock->arrive_and_wait(); }
template <class T> T __shfl_xor_sync(unsigned, T v, int off) {
    Warp& w = *curWarp; uint64_t bits = 0; std::memcpy(&bits, &v, sizeof(T)); w.slot[curLane] = bits;
    w.bar.arrive_and_wait(); T r; uint64_t o = w.slot[curLane ^ off]; std::memcpy(&r, &o, sizeof(T)); w.bar.arrive_and_wait(); return r;
}
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline float __uint_as_float(unsigned i) { float f; std::memcpy(&f, &i, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned i; std::memcpy(&i, &f, 4); return i; }
inline int atomicCAS(int* p, int cmp, int v) { __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); return cmp; }
inline int atomicMin(int* p, int v) { int old = __atomic_load_n(p, __ATOMIC_SEQ_CST); while (v < old && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {} return old; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
template <class F> void launch(unsigned g, unsigned b, F f) {
    gridDim = dim3{g}; blockDim = dim3{b};
    for (unsigned bx = 0; bx < g; bx++) {
        std::barrier<> block(b);
        std::vector<std::unique_ptr<Warp>> warps;
        for (unsigned w = 0; w < (b + 31) / 32; w++) warps.emplace_back(new Warp(std::min(32u, b - 32 * w)));
        std::vector<std::thread> threads;
        for (unsigned t = 0; t < b; t++) threads.emplace_back([&, t] {
            threadIdx = dim3{t}; blockIdx = dim3{bx}; curWarp = warps[t / 32].get(); curLane = t % 32; curBlock = &block;
            f();
            curWarp->bar.arrive_and_drop(); block.arrive_and_drop();
        });
        for (auto& th : threads) th.join();
    }
}
