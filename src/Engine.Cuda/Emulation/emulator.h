// The CUDA execution model on the CPU, for running the kernels of kernels/ unchanged under g++ (EmulatorLibrary.cs builds
// them with this header in front). Every CUDA thread of a block is a fiber (its own stack, switched cooperatively on one
// OS thread, in ascending thread order in even blocks and descending in odd ones), so the kernels' barriers, warp
// exchanges and shared memory behave as on a GPU, and a missing barrier shows:
//   - __syncthreads waits for every thread of the block that has not exited (CUDA's rule since Volta);
//   - __shfl_*_sync, __ballot_sync, __any/__all_sync and __syncwarp wait for every lane their mask names; a mask that
//     leaves out the caller, names a lane that does not exist or has exited, or differs between lanes is an error;
//   - __shared__ variables are per OS thread (one block runs at a time on it); dynamic shared memory starts filled with
//     0xff bytes (NaN floats, -1 ints) each block, so a read before a write shows;
//   - atomics are real atomics, so blocks on other OS threads could share memory correctly;
//   - a deadlock (threads waiting at barriers no one else will reach), an out-of-range access of a checked view or of a
//     fixed-size array (g++ -fsanitize=bounds) fails the launch with the kernel, block and thread, instead of hanging
//     or crashing the host.
// Math: expf, logf, … are the C library's (correctly rounded or within 1 ulp), where CUDA's are within 2 ulp; fmaf is a
// true fused multiply-add on both; nothing is contracted (-ffp-contract=off). Timing, coalescing and bank conflicts are
// not modelled.
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <tuple>
#include <type_traits>
#include <utility>

struct dim3
{
    unsigned x = 1, y = 1, z = 1;
};
typedef dim3 uint3;

namespace emu
{
// One launch as the host describes it (EmulatedDeviceApi.Launch passes this struct).
struct Launch
{
    unsigned grid[3];
    unsigned block[3];
    unsigned sharedBytes;
};

struct Fiber
{
    void* sp;
    char* stackTop;
    dim3 tid;
    unsigned lane, warp;
    bool done;
    const char* waitingAt;
    unsigned long long slot[2];
};

struct Warp
{
    unsigned existing, live, arrived, mask, gen;
};

struct Block
{
    dim3 idx, dim, grid;
    unsigned threads, live, arrived, gen;
    Fiber* fibers;
    Warp* warps;
    unsigned char* dynamicShared;
    size_t dynamicBytes;
    bool progress;
    const char* kernel;
};

extern thread_local Fiber* current;
extern thread_local Block* block;

[[noreturn]] void fail(const char* format, ...) __attribute__((format(printf, 1, 2)));
void block_barrier();
void warp_barrier(unsigned mask, const char* what);
int run(const char* kernel, const Launch* launch, void (*body)(void*), void* context);

// Dynamic shared memory (extern __shared__ T name[]) as the generator rewrites it.
template <class T>
inline T* dynamic_shared()
{
    return reinterpret_cast<T*>(block->dynamicShared);
}

// ------------------------------------------------------------------------------------------ warp exchanges
template <class T>
inline T exchange(unsigned mask, T value, int source, const char* what)
{
    static_assert(sizeof(T) <= 8, "warp exchange of a type wider than 8 bytes");
    Fiber* self = current;
    unsigned parity = block->warps[self->warp].gen & 1u;
    unsigned long long bits = 0;
    memcpy(&bits, &value, sizeof(T));
    self->slot[parity] = bits;
    warp_barrier(mask, what);
    if (((mask >> source) & 1u) == 0)
    {
        fail("%s reads lane %d, which mask %#x leaves out", what, source, mask);
    }
    Fiber* peer = &block->fibers[self->warp * 32 + (unsigned)source];
    T result;
    memcpy(&result, &peer->slot[parity], sizeof(T));
    return result;
}

inline int segment_start(int width)
{
    return ((int)current->lane / width) * width;
}
} // namespace emu

#define threadIdx (::emu::current->tid)
#define blockIdx (::emu::block->idx)
#define blockDim (::emu::block->dim)
#define gridDim (::emu::block->grid)
#define warpSize 32

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __shared__ static thread_local
#define EMU_DYNAMIC_SHARED(type, name) type* const name = ::emu::dynamic_shared<type>()

inline void __syncthreads()
{
    emu::block_barrier();
}

inline void __syncwarp(unsigned mask = 0xffffffffu)
{
    emu::warp_barrier(mask, "__syncwarp");
}

inline void __threadfence()
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

inline void __threadfence_block()
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

template <class T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32)
{
    return emu::exchange(mask, v, emu::segment_start(width) + (src % width), "__shfl_sync");
}

template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int laneMask, int width = 32)
{
    int src = (int)emu::current->lane ^ laneMask;
    int start = emu::segment_start(width);
    T r = emu::exchange(mask, v, src < start + width && src >= start ? src : (int)emu::current->lane, "__shfl_xor_sync");
    return r;
}

template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    int src = (int)emu::current->lane + (int)delta;
    int start = emu::segment_start(width);
    return emu::exchange(mask, v, src < start + width ? src : (int)emu::current->lane, "__shfl_down_sync");
}

template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    int src = (int)emu::current->lane - (int)delta;
    int start = emu::segment_start(width);
    return emu::exchange(mask, v, src >= start ? src : (int)emu::current->lane, "__shfl_up_sync");
}

inline unsigned __ballot_sync(unsigned mask, int predicate)
{
    // Every lane publishes its predicate, then reads them all (the same double-buffered slots as the shuffles).
    emu::Fiber* self = emu::current;
    unsigned parity = emu::block->warps[self->warp].gen & 1u;
    self->slot[parity] = predicate != 0;
    emu::warp_barrier(mask, "__ballot_sync");
    unsigned result = 0;
    for (unsigned lane = 0; lane < 32; lane++)
    {
        if ((mask >> lane) & 1u)
        {
            result |= (unsigned)(emu::block->fibers[self->warp * 32 + lane].slot[parity] != 0) << lane;
        }
    }
    return result;
}

inline int __any_sync(unsigned mask, int predicate)
{
    return __ballot_sync(mask, predicate) != 0;
}

inline int __all_sync(unsigned mask, int predicate)
{
    return __ballot_sync(mask, predicate) == mask;
}

inline unsigned __activemask()
{
    return emu::block->warps[emu::current->warp].live;
}

// ------------------------------------------------------------------------------------------ atomics
template <class T>
inline T emu_atomic_update(T* p, T (*op)(T, T), T v)
{
    static_assert(sizeof(T) == 4 || sizeof(T) == 8, "atomics on 4- and 8-byte values only");
    using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    Bits* word = reinterpret_cast<Bits*>(p);
    Bits old = __atomic_load_n(word, __ATOMIC_SEQ_CST);
    for (;;)
    {
        T oldValue, newValue;
        memcpy(&oldValue, &old, sizeof(T));
        newValue = op(oldValue, v);
        Bits desired;
        memcpy(&desired, &newValue, sizeof(T));
        if (__atomic_compare_exchange_n(word, &old, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        {
            return oldValue;
        }
    }
}

#define EMU_ATOMIC(name, expr)                                                                                          \
    inline int name(int* p, int v) { return emu_atomic_update<int>(p, [](int a, int b) { return expr; }, v); }          \
    inline unsigned name(unsigned* p, unsigned v)                                                                       \
    {                                                                                                                   \
        return emu_atomic_update<unsigned>(p, [](unsigned a, unsigned b) { return expr; }, v);                          \
    }                                                                                                                   \
    inline long long name(long long* p, long long v)                                                                    \
    {                                                                                                                   \
        return emu_atomic_update<long long>(p, [](long long a, long long b) { return expr; }, v);                       \
    }                                                                                                                   \
    inline unsigned long long name(unsigned long long* p, unsigned long long v)                                         \
    {                                                                                                                   \
        return emu_atomic_update<unsigned long long>(p, [](unsigned long long a, unsigned long long b) { return expr; }, v); \
    }
EMU_ATOMIC(atomicAdd, a + b)
EMU_ATOMIC(atomicSub, a - b)
EMU_ATOMIC(atomicExch, ((void)a, b))
EMU_ATOMIC(atomicMin, a < b ? a : b)
EMU_ATOMIC(atomicMax, a > b ? a : b)
EMU_ATOMIC(atomicAnd, a & b)
EMU_ATOMIC(atomicOr, a | b)
EMU_ATOMIC(atomicXor, a ^ b)
#undef EMU_ATOMIC

inline float atomicAdd(float* p, float v)
{
    return emu_atomic_update<float>(p, [](float a, float b) { return a + b; }, v);
}

inline double atomicAdd(double* p, double v)
{
    return emu_atomic_update<double>(p, [](double a, double b) { return a + b; }, v);
}

inline float atomicExch(float* p, float v)
{
    return emu_atomic_update<float>(p, [](float, float b) { return b; }, v);
}

template <class T>
inline T atomicCAS(T* p, T compare, T v)
{
    __atomic_compare_exchange_n(p, &compare, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return compare;
}

// ------------------------------------------------------------------------------------------ intrinsics
inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
inline float __uint_as_float(unsigned i) { float f; memcpy(&f, &i, 4); return f; }
inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }
inline unsigned __float_as_uint(float f) { unsigned i; memcpy(&i, &f, 4); return i; }
inline double __longlong_as_double(long long i) { double d; memcpy(&d, &i, 8); return d; }
inline long long __double_as_longlong(double d) { long long i; memcpy(&i, &d, 8); return i; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) { unsigned r = 0; for (int i = 0; i < 32; i++) { r = (r << 1) | ((x >> i) & 1u); } return r; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __expf(float a) { return expf(a); }
inline float __logf(float a) { return logf(a); }
inline float __sinf(float a) { return sinf(a); }
inline float __cosf(float a) { return cosf(a); }
inline float __tanhf(float a) { return tanhf(a); }
inline float __saturatef(float a) { return a < 0.0f ? 0.0f : a > 1.0f ? 1.0f : a; }
inline float rsqrtf(float a) { return 1.0f / sqrtf(a); }
inline double rsqrt(double a) { return 1.0 / sqrt(a); }
template <class T> inline T __ldg(const T* p) { return *p; }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }

// ------------------------------------------------------------------------------------------ launch wrappers
namespace emu
{
// A parameter kind letter of KernelSignature (p, l, i, I, u, f) against the kernel's C++ parameter type.
template <char K, class P>
constexpr bool kind_matches()
{
    if constexpr (K == 'p') return std::is_pointer_v<P>;
    else if constexpr (K == 'l') return std::is_integral_v<P> && std::is_signed_v<P> && sizeof(P) == 8;
    else if constexpr (K == 'u') return std::is_integral_v<P> && std::is_unsigned_v<P> && sizeof(P) == 8;
    else if constexpr (K == 'i') return std::is_integral_v<P> && std::is_signed_v<P> && sizeof(P) == 4;
    else if constexpr (K == 'I') return std::is_integral_v<P> && std::is_unsigned_v<P> && sizeof(P) == 4;
    else if constexpr (K == 'f') return std::is_same_v<P, float>;
    else return false;
}

template <class... P>
struct Call
{
    void (*kernel)(P...);
    std::tuple<P...> arguments;

    static void invoke(void* self)
    {
        auto* call = static_cast<Call*>(self);
        std::apply(call->kernel, call->arguments);
    }
};

template <class... P, size_t... I>
int launch_with(const char* name, void (*kernel)(P...), const Launch* launch, void** arguments, std::index_sequence<I...>)
{
    // The arguments are read the way cuLaunchKernel reads them: one pointer per parameter, to a value of its type.
    Call<P...> call{kernel, std::tuple<P...>{*static_cast<std::remove_cv_t<P>*>(arguments[I])...}};
    return run(name, launch, &Call<P...>::invoke, &call);
}

// Launches kernel `name`; K… are its KernelSignature letters, checked against the C++ parameters when compiling.
template <char... K, class... P>
int launch(const char* name, void (*kernel)(P...), const Launch* launch, void** arguments)
{
    static_assert(sizeof...(K) == sizeof...(P), "the kernel's parameter count differs from its KernelSignature");
    static_assert((kind_matches<K, P>() && ...), "a kernel parameter's type differs from its KernelSignature letter");
    return launch_with(name, kernel, launch, arguments, std::index_sequence_for<P...>{});
}
} // namespace emu

#ifdef EMU_RUNTIME
// ------------------------------------------------------------------------------------------ the runtime (one TU)
#include <stdarg.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
#include <map>
#include <mutex>
#include <signal.h>
#include <ucontext.h>
#include <vector>

namespace emu
{
thread_local Fiber* current;
thread_local Block* block;

namespace
{
constexpr size_t StackBytes = 128 * 1024;

// Per OS thread: the scheduler's saved context, fiber stacks (kept between launches), the failure message.
thread_local void* schedulerSp;
thread_local std::vector<char*> stacks;
thread_local char message[1024];
thread_local bool failed;
thread_local void (*body)(void*);
thread_local void* bodyContext;
// Whether a fiber (kernel code) runs on this thread now: a fault then is the kernel's, see on_fault.
thread_local bool inKernel;

#if defined(__x86_64__)
// switch_to(save, load): saves callee-saved registers, MXCSR and the x87 control word on the current stack, stores the
// stack pointer in *save, and resumes the context whose stack pointer is load.
extern "C" void emu_switch_context(void** save, void* load);
asm(R"(
    .text
    .p2align 4
    .hidden emu_switch_context
    .globl emu_switch_context
    .type emu_switch_context,@function
emu_switch_context:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch_context, .-emu_switch_context
)");

void fiber_entry();

void* prepare(char* stack)
{
    // The first switch "returns" into fiber_entry with the stack aligned as after a call.
    auto top = reinterpret_cast<uintptr_t>(stack + StackBytes) & ~(uintptr_t)15;
    void** sp = reinterpret_cast<void**>(top);
    *--sp = nullptr;
    *--sp = reinterpret_cast<void*>(&fiber_entry);
    for (int i = 0; i < 6; i++)
    {
        *--sp = nullptr;
    }
    uint32_t control[2] = {0x1f80u, 0x037fu};
    sp -= 1;
    memcpy(sp, control, 8);
    return sp;
}

inline void to_scheduler()
{
    emu_switch_context(&current->sp, schedulerSp);
}

inline void to_fiber(Fiber* f)
{
    inKernel = true;
    emu_switch_context(&schedulerSp, f->sp);
    inKernel = false;
}
#else
thread_local ucontext_t schedulerContext;
thread_local std::vector<ucontext_t> contexts;

void fiber_entry();

inline void to_scheduler()
{
    Fiber* f = current;
    swapcontext(&contexts[(size_t)(f - block->fibers)], &schedulerContext);
}

inline void to_fiber(Fiber* f)
{
    inKernel = true;
    swapcontext(&schedulerContext, &contexts[(size_t)(f - block->fibers)]);
    inKernel = false;
}
#endif

char* new_stack()
{
    // A guard page below each stack turns an overflow into a fault (reported, see on_fault) instead of silent corruption.
    long page = sysconf(_SC_PAGESIZE);
    void* memory = mmap(nullptr, StackBytes + (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED)
    {
        return nullptr;
    }
    mprotect(memory, (size_t)page, PROT_NONE);
    return static_cast<char*>(memory) + page;
}

// ---------------------------------------------------------------- guarded memory
// Device allocations and each block's dynamic shared memory end exactly (to 8 bytes) at the end of a page followed by
// an inaccessible guard page, so an access past the end faults; on_fault turns the fault into a failed launch.
struct Mapping
{
    char* base;
    size_t mapped, bytes;
};

std::mutex registryGate;
std::map<uintptr_t, Mapping> registry;

Mapping map_guarded(size_t bytes)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t usable = (bytes + page - 1) / page * page;
    size_t mapped = usable + page;
    void* memory = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED)
    {
        return Mapping{nullptr, 0, 0};
    }
    char* base = static_cast<char*>(memory);
    mprotect(base + usable, page, PROT_NONE);
    return Mapping{base, mapped, bytes};
}

char* start_of(const Mapping& m)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t end = reinterpret_cast<uintptr_t>(m.base) + (m.mapped - page);
    return reinterpret_cast<char*>((end - m.bytes) & ~(uintptr_t)7);
}

thread_local void* faultAddress;
struct sigaction previousSegv, previousBus;

[[noreturn]] void fault_escape()
{
    uintptr_t address = reinterpret_cast<uintptr_t>(faultAddress);
    char where[160] = "outside every device allocation";
    {
        std::lock_guard<std::mutex> lock(registryGate);
        auto next = registry.upper_bound(address);
        if (next != registry.begin())
        {
            auto& [start, m] = *std::prev(next);
            if (address >= start + m.bytes)
            {
                snprintf(where, sizeof where, "%zu bytes past the end of a %zu-byte device allocation", (size_t)(address - start - m.bytes), m.bytes);
            }
        }
    }
    Fiber* f = current;
    if (address < reinterpret_cast<uintptr_t>(f->stackTop) && address + StackBytes + 65536 >= reinterpret_cast<uintptr_t>(f->stackTop))
    {
        snprintf(where, sizeof where, "the thread's %zu-byte stack overflowed", StackBytes);
    }
    else if (block->dynamicBytes != 0 && address >= reinterpret_cast<uintptr_t>(block->dynamicShared) + block->dynamicBytes &&
             address < reinterpret_cast<uintptr_t>(block->dynamicShared) + block->dynamicBytes + 4096)
    {
        snprintf(where, sizeof where, "%zu bytes past the end of the block's %zu bytes of dynamic shared memory",
                 (size_t)(address - reinterpret_cast<uintptr_t>(block->dynamicShared) - block->dynamicBytes), block->dynamicBytes);
    }
    fail("invalid memory access at %#lx: %s", (unsigned long)address, where);
}

void on_fault(int signal, siginfo_t* info, void* context)
{
#if defined(__x86_64__)
    if (inKernel && current != nullptr)
    {
        // Resume the faulting fiber in fault_escape, on the top of its own stack (it is abandoned anyway), which reports
        // the fault and switches to the scheduler.
        faultAddress = info->si_addr;
        auto* uc = static_cast<ucontext_t*>(context);
        uintptr_t top = (reinterpret_cast<uintptr_t>(current->stackTop) & ~(uintptr_t)15) - 8;
        uc->uc_mcontext.gregs[REG_RSP] = (greg_t)top;
        uc->uc_mcontext.gregs[REG_RIP] = (greg_t)reinterpret_cast<uintptr_t>(&fault_escape);
        return;
    }
#endif
    // Not ours: hand it to whoever handled it before (the .NET runtime turns managed faults into exceptions).
    struct sigaction& previous = signal == SIGSEGV ? previousSegv : previousBus;
    if (previous.sa_flags & SA_SIGINFO)
    {
        previous.sa_sigaction(signal, info, context);
    }
    else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN)
    {
        previous.sa_handler(signal);
    }
    else
    {
        sigaction(signal, &previous, nullptr);
    }
}

__attribute__((constructor)) void install_fault_handler()
{
#if defined(__x86_64__)
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_fault;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, &previousSegv);
    sigaction(SIGBUS, &action, &previousBus);
#endif
}

void wait_while(const unsigned& generation, unsigned mine, const char* what)
{
    current->waitingAt = what;
    while (generation == mine)
    {
        to_scheduler();
    }
    current->waitingAt = nullptr;
    block->progress = true;
}

void thread_exit()
{
    Fiber* self = current;
    Block& b = *block;
    Warp& w = b.warps[self->warp];
    unsigned bit = 1u << self->lane;
    self->done = true;
    b.live--;
    w.live &= ~bit;
    b.progress = true;
    if (w.arrived != 0 && (w.mask & bit) != 0)
    {
        fail("exited while lanes of its warp wait at a warp-synchronous call whose mask %#x names it", w.mask);
    }
    if (b.arrived != 0 && b.arrived == b.live)
    {
        b.arrived = 0;
        b.gen++;
    }
}

void fiber_entry()
{
    block->progress = true;
    body(bodyContext);
    thread_exit();
    to_scheduler();
    __builtin_unreachable();
}

void describe_deadlock(Block& b, size_t used)
{
    for (unsigned i = 0; i < b.threads && used < 400; i++)
    {
        Fiber& f = b.fibers[i];
        if (!f.done)
        {
            used += (size_t)snprintf(message + used, sizeof message - used, "%sthread (%u,%u,%u) at %s", used ? "; " : "",
                                     f.tid.x, f.tid.y, f.tid.z, f.waitingAt ? f.waitingAt : "?");
        }
    }
}
} // namespace

void fail(const char* format, ...)
{
    int used = snprintf(message, sizeof message, "kernel %s, block (%u,%u,%u), thread (%u,%u,%u): ", block->kernel,
                        block->idx.x, block->idx.y, block->idx.z, current->tid.x, current->tid.y, current->tid.z);
    va_list args;
    va_start(args, format);
    vsnprintf(message + used, sizeof message - (size_t)used, format, args);
    va_end(args);
    failed = true;
    // The other fibers of the launch are abandoned where they stand; their stacks are reused by the next launch.
    to_scheduler();
    __builtin_unreachable();
}

void block_barrier()
{
    Block& b = *block;
    unsigned mine = b.gen;
    if (++b.arrived == b.live)
    {
        b.arrived = 0;
        b.gen++;
        b.progress = true;
        return;
    }
    wait_while(b.gen, mine, "__syncthreads");
}

void warp_barrier(unsigned mask, const char* what)
{
    Fiber* self = current;
    Warp& w = block->warps[self->warp];
    if (((mask >> self->lane) & 1u) == 0)
    {
        fail("%s with mask %#x, which leaves out the calling lane %u", what, mask, self->lane);
    }
    if ((mask & ~w.existing) != 0)
    {
        fail("%s with mask %#x names lanes that do not exist (the warp has lanes %#x)", what, mask, w.existing);
    }
    if ((mask & ~w.live) != 0)
    {
        fail("%s with mask %#x names lanes that have exited (live lanes %#x)", what, mask, w.live);
    }
    if (w.arrived == 0)
    {
        w.mask = mask;
    }
    else if (w.mask != mask)
    {
        fail("%s with mask %#x while other lanes wait with mask %#x", what, mask, w.mask);
    }
    unsigned mine = w.gen;
    if (++w.arrived == (unsigned)__builtin_popcount(mask))
    {
        w.arrived = 0;
        w.gen++;
        block->progress = true;
        return;
    }
    wait_while(w.gen, mine, what);
}

int run(const char* kernel, const Launch* launch, void (*kernelBody)(void*), void* context)
{
    unsigned threads = launch->block[0] * launch->block[1] * launch->block[2];
    while (stacks.size() < threads)
    {
        char* stack = new_stack();
        if (stack == nullptr)
        {
            snprintf(message, sizeof message, "kernel %s: no memory for %u fiber stacks", kernel, threads);
            return 1;
        }
        stacks.push_back(stack);
    }
    std::vector<Fiber> fibers(threads);
    std::vector<Warp> warps((threads + 31) / 32);
    Mapping shared = map_guarded(launch->sharedBytes);
    if (shared.base == nullptr)
    {
        snprintf(message, sizeof message, "kernel %s: no memory for %u bytes of dynamic shared memory", kernel, launch->sharedBytes);
        return 1;
    }
    struct Unmap
    {
        Mapping& m;
        ~Unmap() { munmap(m.base, m.mapped); }
    } unmap{shared};
#if !defined(__x86_64__)
    contexts.resize(threads);
#endif
    Block b{};
    b.dim = dim3{launch->block[0], launch->block[1], launch->block[2]};
    b.grid = dim3{launch->grid[0], launch->grid[1], launch->grid[2]};
    b.threads = threads;
    b.fibers = fibers.data();
    b.warps = warps.data();
    b.dynamicShared = reinterpret_cast<unsigned char*>(start_of(shared));
    b.dynamicBytes = launch->sharedBytes;
    b.kernel = kernel;
    block = &b;
    body = kernelBody;
    bodyContext = context;
    failed = false;
    for (unsigned bz = 0; bz < b.grid.z; bz++)
    for (unsigned by = 0; by < b.grid.y; by++)
    for (unsigned bx = 0; bx < b.grid.x; bx++)
    {
        b.idx = dim3{bx, by, bz};
        b.live = threads;
        b.arrived = 0;
        b.gen = 0;
        memset(b.dynamicShared, 0xff, b.dynamicBytes);
        for (unsigned w = 0; w < warps.size(); w++)
        {
            unsigned lanes = threads - 32 * w < 32 ? threads - 32 * w : 32;
            unsigned existing = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
            warps[w] = Warp{existing, existing, 0, 0, 0};
        }
        for (unsigned t = 0; t < threads; t++)
        {
            Fiber& f = fibers[t];
            f = Fiber{};
            f.tid = dim3{t % b.dim.x, (t / b.dim.x) % b.dim.y, t / (b.dim.x * b.dim.y)};
            f.stackTop = stacks[t] + StackBytes;
            f.lane = t % 32;
            f.warp = t / 32;
#if defined(__x86_64__)
            f.sp = prepare(stacks[t]);
#else
            getcontext(&contexts[t]);
            contexts[t].uc_stack.ss_sp = stacks[t];
            contexts[t].uc_stack.ss_size = StackBytes;
            contexts[t].uc_link = nullptr;
            makecontext(&contexts[t], fiber_entry, 0);
#endif
        }
        // Between barriers each thread runs alone until its next one, lowest first in even blocks and highest first in
        // odd ones: a missing barrier then shows as a read of data not yet written (or already overwritten) either way.
        bool reversed = ((bx + b.grid.x * (by + b.grid.y * bz)) & 1u) != 0;
        while (b.live > 0)
        {
            b.progress = false;
            for (unsigned i = 0; i < threads; i++)
            {
                unsigned t = reversed ? threads - 1 - i : i;
                if (!fibers[t].done)
                {
                    current = &fibers[t];
                    to_fiber(current);
                    if (failed)
                    {
                        return 1;
                    }
                }
            }
            if (b.live > 0 && !b.progress)
            {
                int used = snprintf(message, sizeof message, "kernel %s, block (%u,%u,%u): deadlock: ", kernel, bx, by, bz);
                describe_deadlock(b, (size_t)used);
                return 1;
            }
        }
    }
    return 0;
}
} // namespace emu

// g++ -fsanitize=bounds calls this for an index past a fixed-size array (a __shared__ tile, a register array).
struct EmuSourceLocation
{
    const char* file;
    unsigned line, column;
};

struct EmuOutOfBoundsData
{
    EmuSourceLocation location;
};

extern "C" void __ubsan_handle_out_of_bounds(EmuOutOfBoundsData* data, uintptr_t index)
{
    emu::fail("index %ld out of bounds of a fixed-size array at %s:%u", (long)index, data->location.file, data->location.line);
}

extern "C" void __ubsan_handle_out_of_bounds_abort(EmuOutOfBoundsData* data, uintptr_t index)
{
    __ubsan_handle_out_of_bounds(data, index);
}

// Device memory: zeroed, ending at a guard page (see map_guarded).
extern "C" void* emu_alloc(size_t bytes)
{
    emu::Mapping m = emu::map_guarded(bytes);
    if (m.base == nullptr)
    {
        return nullptr;
    }
    char* start = emu::start_of(m);
    std::lock_guard<std::mutex> lock(emu::registryGate);
    emu::registry[reinterpret_cast<uintptr_t>(start)] = m;
    return start;
}

extern "C" int emu_free(void* start)
{
    emu::Mapping m;
    {
        std::lock_guard<std::mutex> lock(emu::registryGate);
        auto found = emu::registry.find(reinterpret_cast<uintptr_t>(start));
        if (found == emu::registry.end())
        {
            return 1;
        }
        m = found->second;
        emu::registry.erase(found);
    }
    munmap(m.base, m.mapped);
    return 0;
}

extern "C" const char* emu_last_error()
{
    return emu::message;
}
#endif
