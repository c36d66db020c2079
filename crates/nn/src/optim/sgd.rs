use super::{state_tensor, with_gradient, Optimizer, OptimizerState, SgdConfig};
use strata_kernels::optim::sgd_step;
use strata_tensor::Tensor;

/// Stochastic gradient descent with optional momentum, dampening, weight decay and Nesterov.
pub struct Sgd {
    parameters: Vec<(String, Tensor)>,
    /// The hyper-parameters; `config.lr` is what [`Optimizer::set_learning_rate`] changes.
    pub config: SgdConfig,
    momentum_buffers: Vec<Option<Vec<f32>>>,
}

impl Sgd {
    /// Plain SGD with learning rate `lr`; set the other fields of `config` for more.
    pub fn new(parameters: Vec<(String, Tensor)>, lr: f32) -> Sgd {
        Sgd::with_config(
            parameters,
            SgdConfig {
                lr,
                momentum: 0.0,
                dampening: 0.0,
                weight_decay: 0.0,
                nesterov: false,
            },
        )
    }

    /// SGD with every hyper-parameter given (PyTorch `torch.optim.SGD(params, lr, momentum, ...)`).
    /// Panics if `nesterov` is set without a positive momentum and zero dampening, as PyTorch does.
    pub fn with_config(parameters: Vec<(String, Tensor)>, config: SgdConfig) -> Sgd {
        assert!(
            !config.nesterov || (config.momentum > 0.0 && config.dampening == 0.0),
            "Sgd: Nesterov momentum requires a momentum and zero dampening"
        );
        let n = parameters.len();
        Sgd {
            parameters,
            config,
            momentum_buffers: vec![None; n],
        }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self) {
        let config = self.config;
        for ((_, p), buffer) in self.parameters.iter().zip(&mut self.momentum_buffers) {
            let Some(grad) = p.grad() else { continue };
            let first_step = buffer.is_none();
            if config.momentum != 0.0 && buffer.is_none() {
                *buffer = Some(vec![0.0; grad.numel()]);
            }
            let momentum = if config.momentum != 0.0 {
                buffer.as_deref_mut()
            } else {
                None
            };
            with_gradient(p, &grad, |data, grad| {
                sgd_step(&config, data, grad, momentum, first_step)
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
        "sgd"
    }

    fn state(&self) -> OptimizerState {
        let tensors = self
            .parameters
            .iter()
            .zip(&self.momentum_buffers)
            .filter_map(|((name, p), b)| {
                b.as_ref().map(|b| {
                    (
                        format!("{name}.momentum_buffer"),
                        Tensor::from_vec(b.clone(), p.shape()),
                    )
                })
            })
            .collect();
        OptimizerState {
            tensors,
            counters: vec![],
        }
    }

    fn load_state(&mut self, state: &OptimizerState) -> Result<(), String> {
        for ((name, p), buffer) in self.parameters.iter().zip(&mut self.momentum_buffers) {
            *buffer = state_tensor(state, &format!("{name}.momentum_buffer"), p.numel())?;
        }
        Ok(())
    }
}
