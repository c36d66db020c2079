// Device helpers shared by several kernels/*.cu files: `#include "common.cuh"`.
//
// NVRTC is handed this file by name (strata_kernels::cuda::nvrtc, from the embedded
// kernels/*.cuh); the CPU emulation (crates/kernels/build.rs) has kernels/ on its include path.
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
// loop of the elementwise kernels, so any grid size covers n (int indices: n < 2^31).
#define GRID_STRIDE_LOOP(i, n) \
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += gridDim.x * blockDim.x)
