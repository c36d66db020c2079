// Batch normalisation over a contiguous [n, c, spatial] tensor (spatial = h*w for BatchNorm2d,
// 1 for BatchNorm1d). Per channel ci, over its m = n*spatial elements:
//
//   mean   = sum x / m                  var = sum (x - mean)^2 / m      (biased)
//   invstd = 1 / sqrt(var + eps)        xhat = (x - mean) * invstd
//   y      = xhat * gamma + beta
//   dbeta  = sum dy                     dgamma = sum dy * xhat
//   dx     = gamma * invstd * (dy - sum dy / m - xhat * sum(dy * xhat) / m)
//
// Element j (0 <= j < m) of channel ci is at ((j / spatial) * c + ci) * spatial + j % spatial:
// a channel's data is n planes strided across the batch.
//
// The statistics kernels run one block per channel (grid-stride over channels): each thread
// folds its elements in increasing j, then a fixed-shape block reduction (warp shuffles, then
// the warp totals through shared memory) combines them: deterministic for a fixed blockDim. The
// variance takes a second pass over (x - mean)^2, never the cancellation-prone
// sum x^2 - (sum x)^2 / m. The CPU twin accumulates in f64; this file has float only (the
// portable type set), so each thread's running sum is compensated (Kahan): its rounding error
// stays O(1 ulp) however many elements the thread folds, and the tree of 256 partials adds only
// about 8 more roundings. Results agree with the CPU to a relative tolerance (~1e-6), not bit for
// bit. Compensation relies on IEEE addition order: do not compile this file with fast-math
// reassociation (NVRTC never reassociates; --use_fast_math does not either).
//
// affine = false (gamma = 1, beta = 0) is has_affine = 0: gamma and beta are then never read
// and may be null. Block requirement for the per-channel kernels: blockDim.x a multiple of 32,
// at most 1024; 256 intended. No early returns before the barriers.
// All indices are int: buffers must have fewer than 2^31 elements.

#include "common.cuh" // block_sum

// Kahan summation step: *sum + *comp carries the exact running total to about one rounding.
// *comp holds the low-order part lost by the last addition (with the opposite sign).
static __device__ inline void kahan_add(float* sum, float* comp, float v)
{
    float y = v - *comp;
    float t = *sum + y;
    *comp = (t - *sum) - y;
    *sum = t;
}

// Offset of element j of channel ci.
static __device__ inline int bn_offset(int j, int c, int spatial, int ci)
{
    return ((j / spatial) * c + ci) * spatial + j % spatial;
}

// Train mode: normalise each channel with its own batch mean and biased variance, and write
// save_mean[ci], save_invstd[ci] (for backward) and batch_var[ci] (biased: the host applies the
// m/(m-1) correction to the running variance). output = (x - mean) * (invstd * gamma) + beta,
// the CPU twin's grouping. m must be > 0 (the host checks, as the CPU twin panics).
// Launch: block (256), grid (min(c, 65535)).
// CPU twin: strata_kernels::batchnorm::batch_norm_forward_train
extern "C" __global__ void batch_norm_forward_train(int n, int c, int spatial, float eps,
                                                    const float* input, const float* gamma,
                                                    const float* beta, int has_affine,
                                                    float* output, float* save_mean,
                                                    float* save_invstd, float* batch_var)
{
    int m = n * spatial;
    for (int ci = blockIdx.x; ci < c; ci += gridDim.x) {
        float sum = 0.0f;
        float comp = 0.0f;
        for (int j = threadIdx.x; j < m; j += blockDim.x) {
            kahan_add(&sum, &comp, input[bn_offset(j, c, spatial, ci)]);
        }
        float mean = block_sum(sum - comp) / (float)m;
        sum = 0.0f;
        comp = 0.0f;
        for (int j = threadIdx.x; j < m; j += blockDim.x) {
            float d = input[bn_offset(j, c, spatial, ci)] - mean;
            kahan_add(&sum, &comp, d * d);
        }
        float var = block_sum(sum - comp) / (float)m;
        float invstd = 1.0f / sqrtf(var + eps);
        if (threadIdx.x == 0) {
            save_mean[ci] = mean;
            save_invstd[ci] = invstd;
            batch_var[ci] = var;
        }
        float scale = has_affine ? invstd * gamma[ci] : invstd;
        float shift = has_affine ? beta[ci] : 0.0f;
        for (int j = threadIdx.x; j < m; j += blockDim.x) {
            int off = bn_offset(j, c, spatial, ci);
            output[off] = (input[off] - mean) * scale + shift;
        }
    }
}

// Eval mode: y = (x - running_mean) * (gamma / sqrt(running_var + eps)) + beta. Elementwise:
// one thread per element (grid-stride loop), any block size.
// Launch: block (256), grid (min(ceil(n*c*spatial/256), 65535)).
// CPU twin: strata_kernels::batchnorm::batch_norm_forward_eval
extern "C" __global__ void batch_norm_forward_eval(int n, int c, int spatial, float eps,
                                                   const float* input, const float* running_mean,
                                                   const float* running_var, const float* gamma,
                                                   const float* beta, int has_affine,
                                                   float* output)
{
    int total = n * c * spatial;
    GRID_STRIDE_LOOP(idx, total) {
        int ci = (idx / spatial) % c;
        float g = has_affine ? gamma[ci] : 1.0f;
        float b = has_affine ? beta[ci] : 0.0f;
        float scale = g / sqrtf(running_var[ci] + eps);
        output[idx] = (input[idx] - running_mean[ci]) * scale + b;
    }
}

// Backward of batch_norm_forward_train. Per channel (one block): sum dy and sum dy*xhat in one
// pass, then dx = k * (dy - a - xhat * b) with k = gamma*invstd, a = sum dy / m,
// b = sum(dy*xhat) / m. Overwrites grad_input; writes grad_gamma[ci] = sum dy*xhat and
// grad_beta[ci] = sum dy when want_grad_affine (they may be null otherwise). has_affine says
// whether gamma is read (else 1); the two flags are independent, as in the CPU twin.
// Launch: block (256), grid (min(c, 65535)).
// CPU twin: strata_kernels::batchnorm::batch_norm_backward
extern "C" __global__ void batch_norm_backward(int n, int c, int spatial, const float* input,
                                               const float* gamma, int has_affine,
                                               const float* save_mean, const float* save_invstd,
                                               const float* grad_output, float* grad_input,
                                               float* grad_gamma, float* grad_beta,
                                               int want_grad_affine)
{
    int m = n * spatial;
    for (int ci = blockIdx.x; ci < c; ci += gridDim.x) {
        float mean = save_mean[ci];
        float invstd = save_invstd[ci];
        float s_dy = 0.0f;
        float c_dy = 0.0f;
        float s_dyx = 0.0f;
        float c_dyx = 0.0f;
        for (int j = threadIdx.x; j < m; j += blockDim.x) {
            int off = bn_offset(j, c, spatial, ci);
            float dy = grad_output[off];
            kahan_add(&s_dy, &c_dy, dy);
            kahan_add(&s_dyx, &c_dyx, dy * ((input[off] - mean) * invstd));
        }
        float sum_dy = block_sum(s_dy - c_dy);
        float sum_dyx = block_sum(s_dyx - c_dyx);
        if (threadIdx.x == 0 && want_grad_affine) {
            grad_gamma[ci] = sum_dyx;
            grad_beta[ci] = sum_dy;
        }
        float k = (has_affine ? gamma[ci] : 1.0f) * invstd;
        float a = sum_dy / (float)m;
        float b = sum_dyx / (float)m;
        for (int j = threadIdx.x; j < m; j += blockDim.x) {
            int off = bn_offset(j, c, spatial, ci);
            float xhat = (input[off] - mean) * invstd;
            grad_input[off] = k * (grad_output[off] - a - xhat * b);
        }
    }
}
