// Fused optimizer updates: one pass over a parameter, its gradient and its state, element by
// element, with PyTorch's formulas (torch.optim), exactly as strata_kernels::optim:
//
// SGD with weight decay wd, momentum mu, dampening tau, learning rate lr:
//   g <- grad + wd * p
//   b <- g on the first step, else mu * b + (1 - tau) * g        (only when mu != 0)
//   g <- g + mu * b  (Nesterov)  or  g <- b
//   p <- p - lr * g
//
// Adam (beta1, beta2, eps, step t from 1); AdamW decays the weight directly instead of adding
// wd * p to the gradient:
//   AdamW: p <- p * (1 - lr * wd)        Adam: g <- grad + wd * p
//   m <- beta1 * m + (1 - beta1) * g;    v <- beta2 * v + (1 - beta2) * g * g
//   p <- p - step_size * m / (sqrt(v) / bias2_sqrt + eps)
//   where step_size = lr / (1 - beta1^t) and bias2_sqrt = sqrt(1 - beta2^t)
//
// Every element is independent: one thread per element (grid-stride loop), any block size,
// no reductions, so the launch shape cannot change the result. The expressions keep the CPU
// twin's operation order; the remaining difference is FMA contraction (NVRTC contracts a*b + c
// by default; compile with --fmad=false for bit parity with the CPU).

#include "common.cuh" // GRID_STRIDE_LOOP

// One SGD step in place. With momentum != 0, momentum_buffer (n floats) is read and written and
// first_step != 0 initialises it to the gradient; with momentum == 0 it is never touched and may
// be null. nesterov and first_step are 0/1 flags.
// Launch: block (256), grid (min(ceil(n/256), 65535)).
// CPU twin: strata_kernels::optim::sgd_step
extern "C" __global__ void sgd_step(int n, float lr, float momentum, float dampening,
                                    float weight_decay, int nesterov, int first_step,
                                    float* param, const float* grad, float* momentum_buffer)
{
    GRID_STRIDE_LOOP(i, n) {
        float p = param[i];
        float g = grad[i] + weight_decay * p;
        if (momentum != 0.0f) {
            float b = first_step ? g : momentum * momentum_buffer[i] + (1.0f - dampening) * g;
            momentum_buffer[i] = b;
            float step = nesterov ? g + momentum * b : b;
            param[i] = p - lr * step;
        } else {
            param[i] = p - lr * g;
        }
    }
}

// One Adam/AdamW step in place. The bias corrections depend only on the step number, so the
// host computes them once, in f32 exactly as the CPU twin does:
//   bias1 = 1 - beta1.powi(t);  step_size = lr / bias1;  bias2_sqrt = sqrt(1 - beta2.powi(t))
// and passes step_size and bias2_sqrt (computing powf per element here would also round
// differently from Rust's powi). decoupled = 1 for AdamW.
// Launch: block (256), grid (min(ceil(n/256), 65535)).
// CPU twin: strata_kernels::optim::adam_step
extern "C" __global__ void adam_step(int n, float lr, float beta1, float beta2, float eps,
                                     float weight_decay, int decoupled, float step_size,
                                     float bias2_sqrt, float* param, const float* grad,
                                     float* exp_avg, float* exp_avg_sq)
{
    GRID_STRIDE_LOOP(i, n) {
        float p = param[i];
        float g = grad[i];
        if (decoupled) {
            p = p * (1.0f - lr * weight_decay);
        } else {
            g = g + weight_decay * p;
        }
        float m = beta1 * exp_avg[i] + (1.0f - beta1) * g;
        float v = beta2 * exp_avg_sq[i] + (1.0f - beta2) * g * g;
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
        float denom = sqrtf(v) / bias2_sqrt + eps;
        param[i] = p - step_size * m / denom;
    }
}
