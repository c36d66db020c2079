use super::{
    device_gradient, restored_state, saved_state, state_tensor, with_gradient, zero_state,
    Optimizer, OptimizerState, SgdConfig,
};
use strata_kernels::optim::{self, sgd_step};
use strata_tensor::Tensor;

/// Stochastic gradient descent with optional momentum, dampening, weight decay and Nesterov.
pub struct Sgd {
    parameters: Vec<(String, Tensor)>,
    /// The hyper-parameters; `config.lr` is what [`Optimizer::set_learning_rate`] changes.
    pub config: SgdConfig,
    /// One per parameter once momentum has started, on the parameter's device.
    momentum_buffers: Vec<Option<Tensor>>,
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
                *buffer = Some(zero_state(p));
            }
            if let Some(b) = buffer.as_ref() {
                b.move_to(p.device())
                    .unwrap_or_else(|e| panic!("sgd: moving a momentum buffer: {e}"));
            }
            let momentum = buffer.as_ref().filter(|_| config.momentum != 0.0);
            if p.device().is_cuda() {
                sgd_on_device(&config, p, &grad, momentum, first_step);
                continue;
            }
            with_gradient(p, &grad, |data, grad| match momentum {
                Some(b) => b.update_data(|b| sgd_step(&config, data, grad, Some(b), first_step)),
                None => sgd_step(&config, data, grad, None, first_step),
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
                    debug_assert_eq!(b.shape(), p.shape());
                    (format!("{name}.momentum_buffer"), saved_state(b))
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
            *buffer = state_tensor(state, &format!("{name}.momentum_buffer"), p.numel())?
                .map(|values| restored_state(p, values));
        }
        Ok(())
    }
}

/// One SGD step of a parameter on a CUDA device by the fused `sgd_step` kernel
/// (`kernels/optim.cu`), which applies the CPU twin's expressions element by element.
fn sgd_on_device(
    config: &SgdConfig,
    parameter: &Tensor,
    grad: &Tensor,
    momentum: Option<&Tensor>,
    first_step: bool,
) {
    let grad = device_gradient(parameter, grad);
    let n = parameter.numel();
    strata_kernels::cuda::runtime::check_int_sizes("sgd", &[n]).unwrap_or_else(|e| panic!("{e}"));
    let c = *config;
    parameter.update_on_device(|device, param| {
        grad.with_device_buffer(|_, grad| {
            let mut launch = |momentum_buffer: &mut _| {
                optim::cuda::sgd_step(device, &c, first_step, param, grad, momentum_buffer, n)
            };
            let result = match momentum {
                Some(b) => b.update_on_device(|_, b| launch(b)),
                // With no momentum the kernel never touches the buffer: one element stands in.
                None => device.zeros(1).and_then(|mut unused| launch(&mut unused)),
            };
            result.unwrap_or_else(|e| panic!("sgd: {e}"));
        })
    });
}
