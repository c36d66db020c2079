// cuda_emu.h: runs strata's CUDA C kernels (kernels/*.cu) on the CPU, for tests.
//
// crates/kernels/build.rs compiles every kernels/*.cu file as C++20 with this header, then the
// prelude (prelude.cuh), then `#line 1 "kernels/<file>.cu"` and the file itself, then
// generated `extern "C" int emu_<kernel>(gx, gy, gz, bx, by, bz, params...)` launchers.
//
// Execution model (deterministic, single OS thread per launch):
// - Blocks run one after another (x fastest, then y, then z).
// - The threads of a block are fibers (ucontext) on the launching OS thread, each with its own
//   stack. A thread runs uninterrupted until it waits at a barrier (__syncthreads(), a warp
//   shuffle, __syncwarp()) or returns; then the first runnable thread in the block's order
//   runs. The order is increasing linear thread id in blocks whose linear index
//   (x + gridDim.x * (y + gridDim.y * z)) is even, decreasing in odd blocks. So between two
//   barriers each thread's code runs in one piece, and the pieces that follow one barrier run
//   in that order.
// - Races it can see: a read and a write of the same location by two threads of a block with
//   no barrier between them. The reader gets the old value when the block's order runs its
//   piece before the writer's: in even blocks if the reader has the lower id, in odd blocks if
//   it has the higher id. A launch of two or more blocks, each running the racy code, thus
//   shows the race whichever thread reads; a one-block launch only when the reader has the
//   lower id. Shown means a wrong result, which a test notices if the old value differs from
//   the new one and the result is compared.
// - Races it cannot see: an unsynchronised read-modify-write by several threads
//   (`s[0] += v`) never loses an update, since no thread is interrupted between its read and
//   its write; races between blocks are run in the one block order above; memory is
//   sequentially consistent, so a missing __threadfence() or `volatile` changes nothing.
// - Warps do not run in lock-step: the lanes of a warp are ordered like any other threads, so
//   code relying on implicit warp synchrony (no __syncwarp() or shuffle) races here, as it may
//   on Volta and later GPUs.
// - __syncthreads() is a block barrier; warp shuffles exchange values through a per-warp buffer
//   between two warp barriers (lanes of a warp = consecutive linear thread ids, 32 per warp).
// - `__shared__` is `static`: one instance per kernel, reused by every block (blocks never
//   overlap, and the Rust side serialises launches).
// - A thread that returns drops out of the barriers. If the others then complete a
//   __syncthreads() (or a full-mask shuffle) without it, that is a divergent barrier,
//   undefined behaviour in CUDA: the launch reports an error naming the block.
// - If every live thread waits and none can proceed (e.g. some at __syncthreads(), some in a
//   shuffle), the launch stops with a deadlock error. A thread spinning forever in user code
//   cannot be detected here: the Rust watchdog (strata_kernels::cuda::emu::run_emulated) fails
//   the test after a timeout and abandons the launch, whose OS thread keeps running on the
//   `__shared__` statics and fiber stacks. It then poisons the emulator
//   (strata_emu_poison()): every later launch in the process is refused, naming that kernel.
// - Out-of-bounds accesses are not trapped; the Rust test buffers carry guard zones instead.
// Timings mean nothing; results match a GPU to rounding (no FMA contraction, libm expf).
#pragma once

#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>
#include <ucontext.h>

struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x, y, z;
};

// One set per launching OS thread: fibers of a launch all run on that thread.
inline thread_local uint3 threadIdx{0, 0, 0};
inline thread_local uint3 blockIdx{0, 0, 0};
inline thread_local dim3 blockDim{1, 1, 1};
inline thread_local dim3 gridDim{1, 1, 1};

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __shared__ static
#define __constant__ static
#define __launch_bounds__(...)

namespace strata_emu {

constexpr unsigned kWarp = 32;
constexpr size_t kStackBytes = 128 * 1024;

struct Barrier {
    unsigned expected = 0;
    unsigned arrived = 0;
    unsigned generation = 0;
    unsigned dropped = 0;  // threads that returned while belonging to this barrier
};

struct Fiber {
    ucontext_t ctx;
    uint3 tid;
    bool exited = false;
    // The barrier this thread waits at (null: runnable) and its generation when it arrived, so
    // the scheduler sees which threads can run without switching to them.
    const Barrier* waiting_on = nullptr;
    unsigned waiting_generation = 0;
};

struct Launch {
    const char* kernel = "";
    const std::function<void()>* body = nullptr;
    unsigned nthreads = 0;
    std::vector<Fiber> fibers;
    char* stacks = nullptr;  // borrowed from fiber_stacks()
    ucontext_t scheduler;
    Barrier block;
    std::vector<Barrier> warps;
    std::vector<unsigned long long> exchange;
    unsigned current = 0;
    unsigned long long completions = 0;  // barriers opened (each may make threads runnable)
    std::string error;

    void fail(const std::string& msg) {
        if (error.empty()) error = msg;
    }
    std::string where() const {
        char buf[160];
        std::snprintf(buf, sizeof buf, "kernel %s, block (%u,%u,%u)", kernel, blockIdx.x,
                      blockIdx.y, blockIdx.z);
        return buf;
    }
};

inline thread_local Launch* current_launch = nullptr;

inline std::mutex& error_mutex() {
    static std::mutex m;
    return m;
}
inline std::string& last_error() {
    static std::string e;
    return e;
}
// The kernel of a launch the watchdog abandoned (strata_emu_poison()), empty if none; under
// error_mutex().
inline std::string& abandoned_kernel() {
    static std::string k;
    return k;
}

inline void yield_to_scheduler() {
    Launch* L = current_launch;
    swapcontext(&L->fibers[L->current].ctx, &L->scheduler);
}

inline void complete(Barrier& b, const char* what) {
    Launch* L = current_launch;
    if (b.dropped > 0) {
        L->fail(L->where() + ": divergent " + what + ": " + std::to_string(b.dropped) +
                " thread(s) returned before a " + what +
                " that the other threads of the block reached (undefined behaviour in CUDA)");
    }
    b.arrived = 0;
    b.generation++;
    L->completions++;
}

inline void barrier_wait(Barrier& b, const char* what) {
    Launch* L = current_launch;
    Fiber& f = L->fibers[L->current];
    if (++b.arrived >= b.expected) {
        // The last arrival yields too, so the next phase starts with the first thread in the
        // block's order rather than with whichever thread happened to arrive last.
        complete(b, what);
    } else {
        f.waiting_on = &b;
        f.waiting_generation = b.generation;
    }
    yield_to_scheduler();  // resumed once b has opened; the scheduler restores threadIdx
}

inline void drop(Barrier& b, const char* what) {
    b.expected--;
    b.dropped++;
    if (b.arrived > 0 && b.arrived >= b.expected) complete(b, what);
}

inline unsigned linear_tid() {
    return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}

inline void fiber_main() {
    Launch* L = current_launch;
    (*L->body)();
    L = current_launch;
    Fiber& f = L->fibers[L->current];
    f.exited = true;
    unsigned t = linear_tid();
    drop(L->block, "__syncthreads()");
    drop(L->warps[t / kWarp], "full-mask warp shuffle");
    // Returning resumes uc_link, the scheduler.
}

// Stacks for `n` fibers, kept from one launch to the next: allocating (and page-faulting)
// 32 MiB for every launch of a 256-thread block dominated the emulator's time. Launches are
// serialised by the Rust side (strata_kernels::cuda::emu), and none runs after a launch was
// abandoned (see launch()), so one process-wide buffer is safe.
inline char* fiber_stacks(unsigned n) {
    static std::unique_ptr<char[]> stacks;
    static unsigned capacity = 0;
    if (n > capacity) {
        stacks.reset(new char[(size_t)n * kStackBytes]);
        capacity = n;
    }
    return stacks.get();
}

// Whether the threads of the block with linear index `block` are resumed in reverse order
// (see "Execution model" above): even blocks run forward, odd blocks in reverse.
inline bool reversed_block(unsigned long long block) { return (block & 1) != 0; }

inline bool runnable(const Fiber& f) {
    if (f.exited) return false;
    return f.waiting_on == nullptr || f.waiting_on->generation != f.waiting_generation;
}

inline void start_fibers(Launch& L) {
    for (unsigned t = 0; t < L.nthreads; ++t) {
        Fiber& f = L.fibers[t];
        f.exited = false;
        f.waiting_on = nullptr;
        f.tid = uint3{t % blockDim.x, (t / blockDim.x) % blockDim.y,
                      t / (blockDim.x * blockDim.y)};
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = L.stacks + (size_t)t * kStackBytes;
        f.ctx.uc_stack.ss_size = kStackBytes;
        f.ctx.uc_link = &L.scheduler;
        makecontext(&f.ctx, fiber_main, 0);
    }
}

inline void fail_deadlock(Launch& L, unsigned live) {
    std::string waiting;
    unsigned shown = 0;
    for (unsigned t = 0; t < L.nthreads && shown < 8; ++t) {
        if (!L.fibers[t].exited) {
            waiting += (shown ? ", " : "") + std::to_string(t);
            shown++;
        }
    }
    L.fail(L.where() + ": deadlock: " + std::to_string(live) +
           " thread(s) wait at barriers that can never complete (linear ids " + waiting +
           (live > shown ? ", ..." : "") + "): some at __syncthreads(), some in a warp shuffle");
}

// Runs one block; false (with L.error set) on deadlock. Always resumes the first runnable
// thread in the block's order. Between two barrier openings threads only stop being runnable,
// so the scan goes on from where it stopped and restarts from the first position after each.
inline bool run_block(Launch& L, bool reversed) {
    const unsigned n = L.nthreads;
    L.block = Barrier{};
    L.block.expected = n;
    for (unsigned w = 0; w < L.warps.size(); ++w) {
        L.warps[w] = Barrier{};
        L.warps[w].expected = (w + 1) * kWarp <= n ? kWarp : n - w * kWarp;
    }
    start_fibers(L);
    unsigned live = n;
    unsigned pos = 0;
    while (live > 0) {
        if (pos == n) {
            fail_deadlock(L, live);
            return false;
        }
        const unsigned t = reversed ? n - 1 - pos : pos;
        Fiber& f = L.fibers[t];
        if (!runnable(f)) {
            pos++;
            continue;
        }
        const unsigned long long opened = L.completions;
        f.waiting_on = nullptr;
        L.current = t;
        threadIdx = f.tid;
        swapcontext(&L.scheduler, &f.ctx);
        if (f.exited) live--;
        if (L.completions != opened) pos = 0;
    }
    return true;
}

// Runs `body` (the kernel call) over the grid. Returns 0, or 1 with the message in
// strata_emu_last_error().
inline int launch(const char* kernel, dim3 grid, dim3 block, const std::function<void()>& body) {
    Launch L;
    L.kernel = kernel;
    L.body = &body;
    unsigned long long nthreads = (unsigned long long)block.x * block.y * block.z;
    auto report = [&](const std::string& msg) {
        std::lock_guard<std::mutex> g(error_mutex());
        last_error() = msg;
        return 1;
    };
    std::string abandoned;
    {
        std::lock_guard<std::mutex> g(error_mutex());
        abandoned = abandoned_kernel();
    }
    if (!abandoned.empty()) {
        return report(std::string("kernel ") + kernel +
                      " not launched: the emulator is poisoned: an abandoned launch of kernel " +
                      abandoned +
                      " (watchdog timeout) may still be running on the shared state");
    }
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || nthreads == 0) {
        return report(std::string("kernel ") + kernel + ": empty grid or block");
    }
    if (nthreads > 1024 || block.z > 64 || grid.y > 65535 || grid.z > 65535) {
        return report(std::string("kernel ") + kernel +
                      ": launch exceeds CUDA limits (at most 1024 threads per block, "
                      "blockDim.z <= 64, gridDim.y/z <= 65535)");
    }
    L.nthreads = (unsigned)nthreads;
    L.fibers.resize(L.nthreads);
    L.stacks = fiber_stacks(L.nthreads);
    L.warps.resize((L.nthreads + kWarp - 1) / kWarp);
    L.exchange.assign(L.nthreads, 0);
    Launch* saved = current_launch;
    current_launch = &L;
    gridDim = grid;
    blockDim = block;
    for (unsigned z = 0; z < grid.z && L.error.empty(); ++z)
        for (unsigned y = 0; y < grid.y && L.error.empty(); ++y)
            for (unsigned x = 0; x < grid.x && L.error.empty(); ++x) {
                blockIdx = uint3{x, y, z};
                const unsigned long long linear =
                    x + (unsigned long long)grid.x * (y + (unsigned long long)grid.y * z);
                if (!run_block(L, reversed_block(linear))) break;
            }
    current_launch = saved;
    if (!L.error.empty()) return report(L.error);
    return 0;
}

template <class T>
inline T shuffle(unsigned mask, T value, int src_lane, const char* name) {
    static_assert(sizeof(T) <= sizeof(unsigned long long), "shuffle of a wide type");
    Launch* L = current_launch;
    if (mask != 0xffffffffu) {
        L->fail(L->where() + ": " + name + " with mask " + std::to_string(mask) +
                ": only the full mask 0xffffffff is supported (kernel conventions)");
    }
    unsigned t = linear_tid();
    unsigned warp = t / kWarp;
    unsigned long long bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    L->exchange[t] = bits;
    barrier_wait(L->warps[warp], "full-mask warp shuffle");
    unsigned src = warp * kWarp + (unsigned)src_lane;
    T out = value;
    if (src_lane >= 0 && src_lane < (int)kWarp && src < L->nthreads) {
        bits = L->exchange[src];
        std::memcpy(&out, &bits, sizeof(T));
    }
    barrier_wait(L->warps[warp], "full-mask warp shuffle");
    return out;
}

}  // namespace strata_emu

inline void __syncthreads() {
    strata_emu::barrier_wait(strata_emu::current_launch->block, "__syncthreads()");
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    (void)strata_emu::shuffle(mask, 0, 0, "__syncwarp");
}

template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    int lane = (int)(strata_emu::linear_tid() % strata_emu::kWarp);
    int src = (lane % width) + (int)delta < width ? lane + (int)delta : lane;
    return strata_emu::shuffle(mask, v, src, "__shfl_down_sync");
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    int lane = (int)(strata_emu::linear_tid() % strata_emu::kWarp);
    int src = (lane % width) >= (int)delta ? lane - (int)delta : lane;
    return strata_emu::shuffle(mask, v, src, "__shfl_up_sync");
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    int lane = (int)(strata_emu::linear_tid() % strata_emu::kWarp);
    int src = lane ^ lane_mask;
    if (src / width != lane / width) src = lane;
    return strata_emu::shuffle(mask, v, src, "__shfl_xor_sync");
}
template <class T>
inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
    int lane = (int)(strata_emu::linear_tid() % strata_emu::kWarp);
    int src = (lane / width) * width + (src_lane % width);
    return strata_emu::shuffle(mask, v, src, "__shfl_sync");
}

// Atomics: the threads of a launch are fibers on one OS thread and never switch inside these,
// so plain read-modify-write is atomic. Updates land in the thread order above, so a float
// atomicAdd total can differ in its last bits between even and odd blocks, as between GPU runs.
inline float atomicAdd(float* p, float v) {
    float old = *p;
    *p = old + v;
    return old;
}
inline int atomicAdd(int* p, int v) {
    int old = *p;
    *p = old + v;
    return old;
}
inline unsigned int atomicAdd(unsigned int* p, unsigned int v) {
    unsigned int old = *p;
    *p = old + v;
    return old;
}
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    unsigned long long old = *p;
    *p = old + v;
    return old;
}
inline int atomicMax(int* p, int v) {
    int old = *p;
    if (v > old) *p = v;
    return old;
}
inline unsigned int atomicMax(unsigned int* p, unsigned int v) {
    unsigned int old = *p;
    if (v > old) *p = v;
    return old;
}
inline int atomicMin(int* p, int v) {
    int old = *p;
    if (v < old) *p = v;
    return old;
}
inline int atomicCAS(int* p, int compare, int v) {
    int old = *p;
    if (old == compare) *p = v;
    return old;
}
inline unsigned int atomicCAS(unsigned int* p, unsigned int compare, unsigned int v) {
    unsigned int old = *p;
    if (old == compare) *p = v;
    return old;
}
inline int atomicExch(int* p, int v) {
    int old = *p;
    *p = v;
    return old;
}
inline void __threadfence() {}
inline void __threadfence_block() {}

// Device math that libm lacks, and CUDA's integer min/max overloads.
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __int_as_float(int v) { float f; std::memcpy(&f, &v, 4); return f; }
inline int __float_as_int(float v) { int i; std::memcpy(&i, &v, 4); return i; }
inline float __uint_as_float(unsigned v) { float f; std::memcpy(&f, &v, 4); return f; }
inline unsigned __float_as_uint(float v) { unsigned i; std::memcpy(&i, &v, 4); return i; }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }
inline unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }

extern "C" size_t strata_emu_last_error(char* buf, size_t len);
extern "C" void strata_emu_poison(const char* kernel);
