// Planted bugs for the virtual CUDA device (crates/kernels/src/cuda/sim/tests.rs): kernels that
// are WRONG on purpose, each beside a correct control, compiled by NVRTC like the product
// kernels but outside kernels/*.cu (so the product kernel count never sees them). Each test
// runs the control (which must pass every check) and the bug (which must fail the check named
// in its comment).

// Sum of each 256-element row through a shared-memory tree. blockDim.x == 256, one block per row.
extern "C" __global__ void sum_rows_ok(const float* x, float* out) {
    __shared__ float s[256];
    int t = threadIdx.x;
    s[t] = x[blockIdx.x * 256 + t];
    __syncthreads();
    for (int half = 128; half > 0; half /= 2) {
        if (t < half) s[t] += s[t + half];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = s[0];
}

// racecheck: no barrier between filling s[] and the first tree step.
extern "C" __global__ void sum_rows_missing_barrier(const float* x, float* out) {
    __shared__ float s[256];
    int t = threadIdx.x;
    s[t] = x[blockIdx.x * 256 + t];
    for (int half = 128; half > 0; half /= 2) {
        if (t < half) s[t] += s[t + half];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = s[0];
}

// out[t] = x[63 - t] through shared memory, blockDim.x == 64 (two warps).
extern "C" __global__ void reverse_ok(const float* x, float* out) {
    __shared__ float s[64];
    int t = threadIdx.x;
    s[t] = x[t];
    __syncthreads();
    out[t] = s[63 - t];
}

// racecheck: warp 0 reads what warp 1 writes with no barrier. Run in lock-step, warp by warp
// in order, it even gives the right answer for warp 1; a warp that overtakes the other reads
// stale data.
extern "C" __global__ void reverse_warp_overtaking(const float* x, float* out) {
    __shared__ float s[64];
    int t = threadIdx.x;
    s[t] = x[t];
    __syncwarp();
    out[t] = s[63 - t];
}

// y[i] = 2 x[i] for i < n.
extern "C" __global__ void scale_ok(const float* x, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = 2.0f * x[i];
}

// memcheck: `<=` overruns the ragged last block by one element.
extern "C" __global__ void scale_ragged_overrun(const float* x, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) y[i] = 2.0f * x[i];
}

// Four floats per thread with one 16-byte load from x + offset (offset a multiple of 4 is fine).
extern "C" __global__ void load4(const float* x, float* y, int offset) {
    int i = threadIdx.x;
    float4 v = reinterpret_cast<const float4*>(x + offset)[i];
    y[i] = v.x + v.y + v.z + v.w;
}

// out[t] = s[t] where only the first `written` threads filled s[]; blockDim.x == 64.
// initcheck with written < 64: the others read shared memory nobody wrote.
extern "C" __global__ void partly_written(const float* x, float* out, int written) {
    __shared__ float s[64];
    int t = threadIdx.x;
    if (t < written) s[t] = x[t];
    __syncthreads();
    out[t] = s[t];
}

// synccheck with split < blockDim.x: only threads below `split` reach the barrier.
extern "C" __global__ void barrier_below(float* out, int split) {
    int t = threadIdx.x;
    if (t < split) {
        out[t] = 1.0f;
        __syncthreads();
        out[t] += 1.0f;
    }
}

// deadlock: warp 0 spins on a flag that warp 1 sets only after a barrier warp 0 never
// reaches. blockDim.x == 64.
extern "C" __global__ void spin_on_flag(float* out) {
    __shared__ volatile int flag;
    if (threadIdx.x == 0) flag = 0;
    __syncthreads();
    if (threadIdx.x < 32) {
        while (flag == 0) {
        }
    } else {
        __syncthreads();
        flag = 1;
    }
    out[threadIdx.x] = 1.0f;
}

// Butterfly sum over a full warp, with lane `gone` returning first (none if gone >= 32).
// synccheck when a lane has exited: the full mask names it.
extern "C" __global__ void warp_sum_without(const float* x, float* out, int gone) {
    int t = threadIdx.x;
    if (t == gone) return;
    float v = x[t];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    out[t] = v;
}

// Lane 0 of each warp publishes a value in shared memory, __syncwarp, and every lane of that
// warp reads it: correct (the warp's lanes are ordered by __syncwarp), so racecheck must stay
// quiet. blockDim.x == 64.
extern "C" __global__ void publish_in_warp(const float* x, float* out) {
    __shared__ float slot[2];
    int t = threadIdx.x;
    if ((t & 31) == 0) slot[t >> 5] = x[t];
    __syncwarp();
    out[t] = slot[t >> 5];
}
