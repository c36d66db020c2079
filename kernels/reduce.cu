// Row reductions over the last axis of a contiguous [rows, cols] buffer.
//
// CPU twin: strata_kernels::reduce::reduce with axes = [1] on shape [rows, cols]
// (ReduceOp::Sum; ReduceOp::Max with argmax).
//
// Launch geometry (both kernels): blockDim.x a multiple of 32, at most 1024 (256 intended);
// blockIdx.x loops over rows with a grid-stride (gridDim.x = min(rows, a few thousand)).
// Thread t of a block folds columns t, t + blockDim.x, ... of its row in order, then the
// block combines the per-thread results with a warp-shuffle tree (lane l takes lane l + 16,
// + 8, ...), the warp leaders meet in shared memory and warp 0 folds them. The order of
// every addition is fixed by (cols, blockDim.x), so results are deterministic: no atomics.
// Sums are accumulated in f32 (the CPU twin uses f64: compare with a tolerance).

#include "common.cuh" // block_sum

#define WARP 32
#define MAX_WARPS 32

// out[r] = Σ_c x[r * cols + c].
extern "C" __global__ void reduce_sum_rows(const float* x, float* out, int rows, int cols) {
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* row = x + (unsigned long long)r * cols;
        float acc = 0.0f;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            acc += row[c];
        }
        acc = block_sum(acc);
        if (threadIdx.x == 0) {
            out[r] = acc;
        }
    }
}

// Does candidate (v, i) beat the current best (best, best_i)? NaN wins (as PyTorch and the
// CPU twin), and among equal values or NaNs the smaller index wins. Index UINT_MAX marks "no
// element yet" and loses to anything.
static __device__ bool max_beats(float v, unsigned int i, float best, unsigned int best_i) {
    bool v_nan = v != v;
    bool best_nan = best != best;
    if (best_i == UINT_MAX) return i != UINT_MAX;
    if (i == UINT_MAX) return false;
    if (v_nan || best_nan) return v_nan && (!best_nan || i < best_i);
    return v > best || (v == best && i < best_i);
}

static __device__ void warp_argmax(float* v, unsigned int* i) {
    for (int offset = WARP / 2; offset > 0; offset /= 2) {
        float ov = __shfl_down_sync(0xffffffffu, *v, offset);
        unsigned int oi = __shfl_down_sync(0xffffffffu, *i, offset);
        if (max_beats(ov, oi, *v, *i)) {
            *v = ov;
            *i = oi;
        }
    }
}

// out[r] = max_c x[r * cols + c], argmax[r] = the first c attaining it (a NaN if any).
extern "C" __global__ void reduce_max_rows(const float* x, float* out, unsigned int* argmax,
                                          int rows, int cols) {
    __shared__ float part_v[MAX_WARPS];
    __shared__ unsigned int part_i[MAX_WARPS];
    unsigned int lane = threadIdx.x % WARP;
    unsigned int warp = threadIdx.x / WARP;
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* row = x + (unsigned long long)r * cols;
        float best = -INFINITY;
        unsigned int best_i = UINT_MAX;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            if (max_beats(row[c], (unsigned int)c, best, best_i)) {
                best = row[c];
                best_i = (unsigned int)c;
            }
        }
        warp_argmax(&best, &best_i);
        if (lane == 0) {
            part_v[warp] = best;
            part_i[warp] = best_i;
        }
        __syncthreads();
        if (warp == 0) {
            unsigned int warps = blockDim.x / WARP;
            best = lane < warps ? part_v[lane] : -INFINITY;
            best_i = lane < warps ? part_i[lane] : UINT_MAX;
            warp_argmax(&best, &best_i);
            if (lane == 0) {
                out[r] = best;
                argmax[r] = best_i;
            }
        }
        __syncthreads();
    }
}
