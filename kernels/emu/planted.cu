// Planted bugs: kernels that are WRONG on purpose, compiled into the CPU emulation only (they
// are not in kernels/*.cu, so NVRTC, ptxas and the product kernel count never see them).
// crates/kernels/tests/cuda_emulator.rs (and cuda_emulator_timeout.rs) runs each one and
// expects the harness to catch it.
// Same conventions as the product kernels.

#define TREE_THREADS 256

// Shared-memory tree sum of each row of a [rows, cols] buffer, written correctly: the control
// for planted_sum_rows_missing_sync. blockDim.x must be 256; one block per row (grid-stride).
extern "C" __global__ void planted_sum_rows_tree_ok(const float* x, float* out, int rows,
                                                    int cols) {
    __shared__ float s[TREE_THREADS];
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        float acc = 0.0f;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) acc += x[r * cols + c];
        s[threadIdx.x] = acc;
        __syncthreads();
        for (int half = TREE_THREADS / 2; half > 0; half /= 2) {
            if (threadIdx.x < half) s[threadIdx.x] += s[threadIdx.x + half];
            __syncthreads();
        }
        if (threadIdx.x == 0) out[r] = s[0];
        __syncthreads();
    }
}

// BUG: the same kernel without the __syncthreads() between filling s[] and the first tree
// step, so thread t reads s[t + 128] before thread t + 128 has written it.
extern "C" __global__ void planted_sum_rows_missing_sync(const float* x, float* out, int rows,
                                                         int cols) {
    __shared__ float s[TREE_THREADS];
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        float acc = 0.0f;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) acc += x[r * cols + c];
        s[threadIdx.x] = acc;
        for (int half = TREE_THREADS / 2; half > 0; half /= 2) {
            if (threadIdx.x < half) s[threadIdx.x] += s[threadIdx.x + half];
            __syncthreads();
        }
        if (threadIdx.x == 0) out[r] = s[0];
        __syncthreads();
    }
}

// out[i] = x[i - 1] within each blockDim.x-element tile (0 at a tile's start), through shared
// memory, written correctly: the control for planted_shift_missing_sync. One thread per
// element of a tile (blockDim.x <= 1024), grid-stride over the tiles.
extern "C" __global__ void planted_shift_ok(const float* x, float* out, int n) {
    __shared__ float s[1024];
    for (int base = blockIdx.x * blockDim.x; base < n; base += gridDim.x * blockDim.x) {
        int i = base + threadIdx.x;
        s[threadIdx.x] = i < n ? x[i] : 0.0f;
        __syncthreads();
        if (i < n) out[i] = threadIdx.x > 0 ? s[threadIdx.x - 1] : 0.0f;
        __syncthreads();
    }
}

// BUG: the same kernel without the __syncthreads() between writing s[] and reading it, so
// thread t reads s[t - 1] before thread t - 1 may have written it: the reader has the HIGHER
// thread id, a race that running threads in increasing id order never shows.
extern "C" __global__ void planted_shift_missing_sync(const float* x, float* out, int n) {
    __shared__ float s[1024];
    for (int base = blockIdx.x * blockDim.x; base < n; base += gridDim.x * blockDim.x) {
        int i = base + threadIdx.x;
        s[threadIdx.x] = i < n ? x[i] : 0.0f;
        if (i < n) out[i] = threadIdx.x > 0 ? s[threadIdx.x - 1] : 0.0f;
        __syncthreads();
    }
}

// BUG: out[i] = 2 x[i] with one thread per element and no `if (i < n)`: with n not a multiple
// of blockDim.x the last block reads and writes past the end of both buffers.
extern "C" __global__ void planted_scale_ragged(const float* x, float* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    out[i] = 2.0f * x[i];
}

// BUG: a divergent barrier. Threads past `active` leave early, the others then wait at a
// __syncthreads() the leavers never reach (undefined behaviour in CUDA).
extern "C" __global__ void planted_divergent_barrier(float* out, int active) {
    __shared__ float s[1024];
    if ((int)threadIdx.x >= active) return;
    s[threadIdx.x] = (float)threadIdx.x;
    __syncthreads();
    out[threadIdx.x] = s[(threadIdx.x + 1) % active];
}

// BUG: a true deadlock. Thread 0 waits at a barrier before raising the flag that every other
// thread spins on, so the barrier never fills and the spinners never stop.
extern "C" __global__ void planted_spin_deadlock(int* flag_out) {
    __shared__ volatile int flag;
    if (threadIdx.x == 0) {
        flag = 0;
        __syncthreads();
        flag = 1;
    } else {
        while (flag == 0) {
        }
    }
    flag_out[threadIdx.x] = flag;
}
