//! The `Module` trait: what every layer and network provides.

use std::any::Any;

use strata_tensor::{Device, DeviceError, Tensor};

/// A layer or a network of layers.
///
/// Parameters and buffers are reported with names relative to the module, joined with `.`
/// by containers, so a network's names equal PyTorch's `state_dict()` keys for the same
/// structure (`conv1.weight`, `net.0.bias`, `convblock1.2.running_mean`, ...).
///
/// A new layer implements [`forward`](Module::forward), [`parameters`](Module::parameters) if
/// it has any, and [`describe`](Module::describe). A [`Sequential`](crate::layers::Sequential)
/// recognises its built-in layers by type (the reason for the `Any` bound) to fuse some of
/// them; any other layer runs as its own `forward` says.
pub trait Module: Any + Send + Sync {
    /// Applies the module to a batch.
    fn forward(&self, x: &Tensor) -> Tensor;

    /// Trainable tensors, in registration order.
    fn parameters(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    /// Non-trainable state that belongs in a checkpoint (BatchNorm's running statistics).
    fn buffers(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    /// Switches between training behaviour (batch statistics, dropout) and evaluation.
    fn set_training(&self, _training: bool) {}

    /// Restarts every random stream the module draws from in training (Dropout's masks) from
    /// `seed`; containers hand each child its own seed derived from it. A training loop calls
    /// this at the start of each epoch with a seed fixed by the run's seed and the epoch, so a
    /// run resumed from a checkpoint draws the same masks as one that never stopped.
    fn reseed(&self, _seed: u64) {}

    /// A one-line description such as `Conv2d(1, 6, kernel=5x5, stride=1, pad=2)`.
    fn describe(&self) -> String;

    /// Named sub-modules, for containers; empty for a single layer.
    fn children(&self) -> Vec<(String, &dyn Module)> {
        Vec::new()
    }
}

/// Conveniences every module gets.
pub trait ModuleExt: Module {
    /// Number of trainable scalars.
    fn num_parameters(&self) -> usize {
        self.parameters().iter().map(|(_, t)| t.numel()).sum()
    }

    /// Parameters then buffers: everything a checkpoint holds, by name.
    fn state_dict(&self) -> Vec<(String, Tensor)> {
        let mut all = self.parameters();
        all.extend(self.buffers());
        all
    }

    /// Moves every parameter and buffer to `device` in place (PyTorch's `model.to(device)`):
    /// the layers, and an optimizer already holding the parameters, see them there. Inputs
    /// must then be on `device` too (`x.to(device)?`).
    fn move_to(&self, device: Device) -> Result<(), DeviceError> {
        for (_, t) in self.state_dict() {
            t.move_to(device)?;
        }
        Ok(())
    }

    /// The device of the first parameter (or buffer), where the module computes;
    /// [`Device::Cpu`] for a module without any.
    fn device(&self) -> Device {
        self.state_dict()
            .first()
            .map_or(Device::Cpu, |(_, t)| t.device())
    }

    /// Training mode (the default after construction).
    fn train(&self) {
        self.set_training(true);
    }

    /// Evaluation mode.
    fn eval(&self) {
        self.set_training(false);
    }

    /// Clears every parameter's accumulated gradient.
    fn zero_grad(&self) {
        for (_, p) in self.parameters() {
            p.zero_grad();
        }
    }
}

impl<M: Module + ?Sized> ModuleExt for M {}

/// `prefix.name`, or `name` at the top.
pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}
