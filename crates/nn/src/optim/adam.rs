use super::{state_tensor, with_gradient, AdamConfig, Optimizer, OptimizerState};
use strata_kernels::optim::adam_step;
use strata_tensor::Tensor;

struct Moments {
    step: u64,
    exp_avg: Vec<f32>,
    exp_avg_sq: Vec<f32>,
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
                exp_avg: vec![0.0; grad.numel()],
                exp_avg_sq: vec![0.0; grad.numel()],
            });
            m.step += 1;
            with_gradient(p, &grad, |data, grad| {
                adam_step(
                    &config,
                    m.step,
                    data,
                    grad,
                    &mut m.exp_avg,
                    &mut m.exp_avg_sq,
                )
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
                state.tensors.push((
                    format!("{name}.exp_avg"),
                    Tensor::from_vec(m.exp_avg.clone(), p.shape()),
                ));
                state.tensors.push((
                    format!("{name}.exp_avg_sq"),
                    Tensor::from_vec(m.exp_avg_sq.clone(), p.shape()),
                ));
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
                    exp_avg,
                    exp_avg_sq,
                }),
                (None, None, None) => None,
                _ => return Err(format!("optimizer state for '{name}' is incomplete")),
            };
        }
        Ok(())
    }
}
