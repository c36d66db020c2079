use super::{
    device_gradient, restored_state, saved_state, state_tensor, with_gradient, zero_state,
    AdamConfig, Optimizer, OptimizerState,
};
use strata_kernels::optim::{self, adam_step};
use strata_tensor::Tensor;

/// A parameter's step count and moment estimates, on the parameter's device.
struct Moments {
    step: u64,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

/// Adam (L2 penalty through the gradient) or AdamW (decoupled weight decay).
pub struct Adam {
    parameters: Vec<(String, Tensor)>,
    /// The hyper-parameters; `config.lr` is what [`Optimizer::set_learning_rate`] changes.
    pub config: AdamConfig,
    moments: Vec<Option<Moments>>,
}

impl Adam {
    /// Adam with PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, no weight decay.
    pub fn new(parameters: Vec<(String, Tensor)>, lr: f32) -> Adam {
        Adam::with_config(
            parameters,
            AdamConfig {
                lr,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
                decoupled_weight_decay: false,
            },
        )
    }

    /// AdamW with PyTorch's defaults (weight decay 0.01).
    pub fn adamw(parameters: Vec<(String, Tensor)>, lr: f32) -> Adam {
        let mut adam = Adam::new(parameters, lr);
        adam.config.weight_decay = 0.01;
        adam.config.decoupled_weight_decay = true;
        adam
    }

    /// Adam or AdamW with every hyper-parameter given (`decoupled_weight_decay` picks AdamW).
    pub fn with_config(parameters: Vec<(String, Tensor)>, config: AdamConfig) -> Adam {
        let n = parameters.len();
        Adam {
            parameters,
            config,
            moments: (0..n).map(|_| None).collect(),
        }
    }
}

impl Optimizer for Adam {
    fn step(&mut self) {
        let config = self.config;
        for ((_, p), moments) in self.parameters.iter().zip(&mut self.moments) {
            let Some(grad) = p.grad() else { continue };
            let m = moments.get_or_insert_with(|| Moments {
                step: 0,
                exp_avg: zero_state(p),
                exp_avg_sq: zero_state(p),
            });
            m.step += 1;
            for state in [&m.exp_avg, &m.exp_avg_sq] {
                state
                    .move_to(p.device())
                    .unwrap_or_else(|e| panic!("adam: moving a moment estimate: {e}"));
            }
            if p.device().is_cuda() {
                adam_on_device(&config, p, &grad, m);
                continue;
            }
            with_gradient(p, &grad, |data, grad| {
                m.exp_avg.update_data(|exp_avg| {
                    m.exp_avg_sq.update_data(|exp_avg_sq| {
                        adam_step(&config, m.step, data, grad, exp_avg, exp_avg_sq)
                    })
                })
            });
        }
    }

    fn parameters(&self) -> &[(String, Tensor)] {
        &self.parameters
    }

    fn learning_rate(&self) -> f32 {
        self.config.lr
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.config.lr = lr;
    }

    fn name(&self) -> &'static str {
        if self.config.decoupled_weight_decay {
            "adamw"
        } else {
            "adam"
        }
    }

    fn state(&self) -> OptimizerState {
        let mut state = OptimizerState::default();
        for ((name, p), m) in self.parameters.iter().zip(&self.moments) {
            if let Some(m) = m {
                debug_assert_eq!(m.exp_avg.shape(), p.shape());
                state
                    .tensors
                    .push((format!("{name}.exp_avg"), saved_state(&m.exp_avg)));
                state
                    .tensors
                    .push((format!("{name}.exp_avg_sq"), saved_state(&m.exp_avg_sq)));
                state.counters.push((format!("{name}.step"), m.step));
            }
        }
        state
    }

    fn load_state(&mut self, state: &OptimizerState) -> Result<(), String> {
        for ((name, p), moments) in self.parameters.iter().zip(&mut self.moments) {
            let avg = state_tensor(state, &format!("{name}.exp_avg"), p.numel())?;
            let avg_sq = state_tensor(state, &format!("{name}.exp_avg_sq"), p.numel())?;
            let step = state
                .counters
                .iter()
                .find(|(n, _)| *n == format!("{name}.step"))
                .map(|(_, s)| *s);
            *moments = match (avg, avg_sq, step) {
                (Some(exp_avg), Some(exp_avg_sq), Some(step)) => Some(Moments {
                    step,
                    exp_avg: restored_state(p, exp_avg),
                    exp_avg_sq: restored_state(p, exp_avg_sq),
                }),
                (None, None, None) => None,
                _ => return Err(format!("optimizer state for '{name}' is incomplete")),
            };
        }
        Ok(())
    }
}

/// One Adam/AdamW step of a parameter on a CUDA device by the fused `adam_step` kernel, which
/// takes the bias corrections from the step number exactly as the CPU twin does.
fn adam_on_device(config: &AdamConfig, parameter: &Tensor, grad: &Tensor, m: &Moments) {
    let grad = device_gradient(parameter, grad);
    let n = parameter.numel();
    strata_kernels::cuda::runtime::check_int_sizes("adam", &[n]).unwrap_or_else(|e| panic!("{e}"));
    let c = *config;
    parameter
        .update_on_device(|device, param| {
            grad.with_device_buffer(|_, grad| {
                m.exp_avg.update_on_device(|_, exp_avg| {
                    m.exp_avg_sq.update_on_device(|_, exp_avg_sq| {
                        optim::cuda::adam_step(
                            device, &c, m.step, param, grad, exp_avg, exp_avg_sq, n,
                        )
                    })
                })
            })
        })
        .unwrap_or_else(|e| panic!("adam: {e}"));
}
