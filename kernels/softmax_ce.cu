// Softmax, log-softmax and fused softmax + cross-entropy over the last axis of a row-major
// [rows, cols] matrix (rows = batch, cols = classes). Per row, with m = max_c x[c] and
// s = sum_c exp(x[c] - m):
//
//   softmax(x)[c]     = exp(x[c] - m) / s
//   log_softmax(x)[c] = x[c] - m - ln s
//   dX                = dY - softmax(x) * sum_c dY            (log-softmax backward)
//   loss_r            = m + ln s - x[label]                   (= -log_softmax(x)[label])
//   dLogits           = (softmax(x) - onehot(label)) * dLoss / rows
//
// Subtracting the row max makes every exponent <= 0 (no overflow) and the largest term exactly
// 1 (s >= 1, ln s finite).
//
// One block per row (a grid-stride loop over rows, so any grid size works). The block's threads
// stride over the row's columns, so any class count is handled, ragged or not. Reductions:
// each thread folds its columns in increasing order, then a warp reduces with __shfl_xor_sync
// (butterfly: every lane ends with the total), the warp totals go through shared memory and
// every warp reduces them again the same way. The order depends only on blockDim, so results
// are deterministic for a fixed launch (they differ from the CPU twin's sequential sum in the
// last bits: compare with a tolerance).
//
// Block requirement for the row kernels: blockDim.x a multiple of 32, at most 1024 (full warps:
// the shuffles use the full mask). 256 is the intended size. No thread returns early: every
// thread of a block walks the same rows and reaches every barrier.

#include "common.cuh" // block_sum

#define SOFTMAX_MAX_WARPS 32

// Max of v over the block (NaN-ignoring, like fmaxf and Rust's f32::max), returned to every
// thread.
static __device__ inline float block_max(float v)
{
    __shared__ float warp_maxima[SOFTMAX_MAX_WARPS];
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int lane = threadIdx.x & 31;
    int warp = threadIdx.x >> 5;
    int warps = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) warp_maxima[warp] = v;
    __syncthreads();
    float t = lane < warps ? warp_maxima[lane] : -INFINITY;
    for (int o = 16; o > 0; o >>= 1) t = fmaxf(t, __shfl_xor_sync(0xffffffffu, t, o));
    return t;
}

// Row max m and s = sum exp(x - m) of one row, both returned to every thread.
static __device__ inline void row_max_and_sum_exp(const float* x, int cols, float* m, float* s)
{
    float local_max = -INFINITY;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) local_max = fmaxf(local_max, x[c]);
    float row_max = block_max(local_max);
    float local_sum = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) local_sum += expf(x[c] - row_max);
    *m = row_max;
    *s = block_sum(local_sum);
}

// output = log_softmax(input), row by row.
// Launch: block (256), grid (min(rows, 65535)).
// CPU twin: strata_kernels::softmax_ce::log_softmax_forward
extern "C" __global__ void log_softmax_forward(int rows, int cols, const float* input,
                                               float* output)
{
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* x = input + r * cols;
        float* y = output + r * cols;
        float m, s;
        row_max_and_sum_exp(x, cols, &m, &s);
        float shift = m + logf(s);
        for (int c = threadIdx.x; c < cols; c += blockDim.x) y[c] = x[c] - shift;
    }
}

// grad_input = grad_output - exp(output) * sum_c grad_output, from log_softmax's output.
// Launch: block (256), grid (min(rows, 65535)).
// CPU twin: strata_kernels::softmax_ce::log_softmax_backward
extern "C" __global__ void log_softmax_backward(int rows, int cols, const float* output,
                                                const float* grad_output, float* grad_input)
{
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* y = output + r * cols;
        const float* dy = grad_output + r * cols;
        float* dx = grad_input + r * cols;
        float local = 0.0f;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) local += dy[c];
        float sum_dy = block_sum(local);
        for (int c = threadIdx.x; c < cols; c += blockDim.x) dx[c] = dy[c] - expf(y[c]) * sum_dy;
    }
}

// Writes exp(x - m) into y and, after the sum is known, scales it by 1/s (one reciprocal and a
// multiply per element, as the CPU twin). Each thread rescales exactly the columns it wrote, so
// no barrier is needed between the two passes.
static __device__ inline void softmax_row(const float* x, float* y, int cols, float* m, float* s)
{
    float local_max = -INFINITY;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) local_max = fmaxf(local_max, x[c]);
    float row_max = block_max(local_max);
    float local_sum = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float e = expf(x[c] - row_max);
        y[c] = e;
        local_sum += e;
    }
    float total = block_sum(local_sum);
    float inv = 1.0f / total;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) y[c] *= inv;
    *m = row_max;
    *s = total;
}

// output = softmax(input), row by row (inference path).
// Launch: block (256), grid (min(rows, 65535)).
// CPU twin: strata_kernels::softmax_ce::softmax_forward
extern "C" __global__ void softmax_forward(int rows, int cols, const float* input, float* output)
{
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        float m, s;
        softmax_row(input + r * cols, output + r * cols, cols, &m, &s);
    }
}

// probs = softmax(logits); row_loss[r] = m + ln s - logits[r][label_r], computed from the
// logits rather than as -ln(probs[label]), which may have underflowed to 0. The host reduces
// the loss as the CPU twin does: sum row_loss in row order in f64, divide by rows (so the mean
// is deterministic). Labels must be < cols (the host checks, as the CPU twin panics); an
// out-of-range label writes NaN here rather than reading out of bounds.
// Launch: block (256), grid (min(rows, 65535)).
// CPU twin: strata_kernels::softmax_ce::softmax_cross_entropy_forward
extern "C" __global__ void softmax_cross_entropy_forward(int rows, int cols, const float* logits,
                                                         const unsigned int* labels,
                                                         float* probs, float* row_loss)
{
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* x = logits + r * cols;
        float m, s;
        softmax_row(x, probs + r * cols, cols, &m, &s);
        if (threadIdx.x == 0) {
            unsigned int label = labels[r];
            row_loss[r] = label < (unsigned int)cols ? m + logf(s) - x[label] : NAN;
        }
    }
}

// grad_logits[r][c] = (probs[r][c] - (c == label_r)) * grad_loss / rows.
// Purely elementwise, so one thread per element (grid-stride loop), any block size.
// Launch: block (256), grid (min(ceil(rows*cols/256), 65535)).
// CPU twin: strata_kernels::softmax_ce::softmax_cross_entropy_backward
extern "C" __global__ void softmax_cross_entropy_backward(int rows, int cols, const float* probs,
                                                          const unsigned int* labels,
                                                          float grad_loss, float* grad_logits)
{
    float scale = grad_loss / (float)rows;
    int total = rows * cols;
    GRID_STRIDE_LOOP(idx, total) {
        int r = idx / cols;
        int c = idx % cols;
        float p = probs[idx];
        grad_logits[idx] = (unsigned int)c == labels[r] ? (p - 1.0f) * scale : p * scale;
    }
}
