// Device helpers shared by several kernels/*.cu files: `#include "common.cuh"`.
//
// NVRTC is handed this file by name (strata_kernels::cuda::nvrtc, from the embedded
// kernels/*.cuh), for GPUs and the virtual device alike.
// Everything here is `static` or a macro, so each including file gets its own copy.
#pragma once

// Sum of v over the block, returned to every thread. Every thread of the block must call it
// (it holds two barriers), blockDim.x a multiple of 32, at most 1024.
//
// Order, fixed by blockDim alone (deterministic, no atomics): each warp sums its 32 values with
// a butterfly (__shfl_xor_sync with offsets 16, 8, 4, 2, 1: lane l adds lane l ^ offset, and
// since a + b == b + a every lane ends with the same bits); the warp totals meet in shared
// memory, padded with zeros to 32, and every warp sums them the same way.
static __device__ inline float block_sum(float v)
{
    __shared__ float warp_totals[32];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31;
    int warp = threadIdx.x >> 5;
    int warps = blockDim.x >> 5;
    __syncthreads(); // the previous call's readers are done with warp_totals
    if (lane == 0) warp_totals[warp] = v;
    __syncthreads();
    float t = lane < warps ? warp_totals[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
    return t;
}

// `for (int i = first index of this thread; i < n; i += threads in the grid)`: the grid-stride
// loop of the one-thread-per-element kernels, so any grid size covers n (int indices: n < 2^31).
#define GRID_STRIDE_LOOP(i, n) \
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += gridDim.x * blockDim.x)

// The same with 64-bit indices (the elementwise kernels, whose n may exceed 2^31). The stride
// is computed once, before the first index, into `<i>_step`.
#define GRID_STRIDE_LOOP_U64(i, n)                                          \
    for (unsigned long long i##_step = (unsigned long long)gridDim.x * blockDim.x, \
                            i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; \
         i < (n); i += i##_step)

// The k loop of a shared-memory tiled GEMM (sgemm_tiled in gemm.cu, hgemm_* in
// half_precision.cu): thread (ty, tx) of a T x T block computes C[row][col] = Σ_p A[row][p] *
// B[p][col] in increasing p. Per T-wide step of k the block stages a T x T tile of A and of B
// in shared memory (thread (ty, tx) loads A[row][p0 + tx] = load_a(row, p0 + tx) and
// B[p0 + ty][col] = load_b(p0 + ty, col), widened to float; 0 outside m, n or k, so ragged
// edges add nothing), waits, reads a row of the A tile and a column of the B tile, and waits
// again before the tiles are overwritten. Every thread of the block must call it (barriers),
// including those outside C. The tiles are [T][T + 1]: the padding column keeps column-wise
// reads free of bank conflicts.
template <int T, typename LoadA, typename LoadB>
static __device__ inline float tiled_dot(float (*a_tile)[T + 1], float (*b_tile)[T + 1], int m,
                                         int n, int k, int row, int col, LoadA load_a,
                                         LoadB load_b)
{
    int tx = threadIdx.x;
    int ty = threadIdx.y;
    float sum = 0.0f;
    for (int p0 = 0; p0 < k; p0 += T) {
        int pa = p0 + tx;
        int pb = p0 + ty;
        a_tile[ty][tx] = (row < m && pa < k) ? load_a(row, pa) : 0.0f;
        b_tile[ty][tx] = (pb < k && col < n) ? load_b(pb, col) : 0.0f;
        __syncthreads();
        for (int p = 0; p < T; ++p) {
            sum += a_tile[ty][p] * b_tile[p][tx];
        }
        __syncthreads();
    }
    return sum;
}
