//! Differentiable ops defined outside this crate, in the spirit of `torch.autograd.Function`.
//!
//! A user type implements [`Function`]: `forward` computes the output from plain tensors and
//! may save what `backward` will need in a [`Context`]; `backward` maps the gradient of the
//! output to one gradient per input. [`Tensor::apply`] runs the forward pass and, when an input
//! requires a gradient, records a graph node exactly like a built-in op's, so `backward()`,
//! optimizers and [`gradcheck`](crate::gradcheck::gradcheck) treat the new op as their own.
//!
//! ```
//! use strata_tensor::{Context, Function, Tensor};
//!
//! /// softplus(x) = ln(1 + eˣ);  d softplus / dx = sigmoid(x).
//! struct Softplus;
//!
//! impl Function for Softplus {
//!     fn name(&self) -> &'static str {
//!         "softplus"
//!     }
//!     fn forward(&self, ctx: &mut Context, inputs: &[Tensor]) -> Tensor {
//!         ctx.save_for_backward(&[&inputs[0]]);
//!         inputs[0].exp().add_scalar(1.0).log()
//!     }
//!     fn backward(&self, ctx: &Context, grad_output: &Tensor) -> Vec<Option<Tensor>> {
//!         let x = &ctx.saved_tensors()[0];
//!         vec![Some(grad_output.mul(&x.sigmoid()))]
//!     }
//! }
//!
//! let x = Tensor::from_vec(vec![-1.0, 0.0, 2.0], &[3]).set_requires_grad(true);
//! let y = Tensor::apply(Softplus, &[&x]);
//! y.sum_all().backward();
//! let expected: Vec<f32> = [-1.0f32, 0.0, 2.0].iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect();
//! assert_eq!(x.grad().unwrap().to_vec(), expected);
//! ```

use crate::{no_grad, Tensor};
use std::sync::Arc;

/// A differentiable op supplied by the user.
///
/// Both passes run with graph recording switched off, so they may use any tensor op freely;
/// what they compute is linked into the graph once, as a single node named [`Function::name`].
pub trait Function: Send + Sync + 'static {
    /// Name used in error messages and graph printouts (`Tensor::op_name`).
    fn name(&self) -> &'static str;

    /// Computes the output from the inputs. Whatever `backward` needs (inputs, intermediate
    /// results) goes into `ctx` with [`Context::save_for_backward`].
    fn forward(&self, ctx: &mut Context, inputs: &[Tensor]) -> Tensor;

    /// Given `d loss / d output` (the output's shape), returns `d loss / d input` for each
    /// input in order, each of that input's shape, or `None` where no gradient flows. Inputs for
    /// which `ctx.needs_input_grad(i)` is false may be answered with `None` to save the work.
    fn backward(&self, ctx: &Context, grad_output: &Tensor) -> Vec<Option<Tensor>>;
}

/// What a [`Function`]'s forward pass leaves for its backward pass.
pub struct Context {
    saved: Vec<Tensor>,
    needs_input_grad: Vec<bool>,
}

impl Context {
    /// Keeps tensors for the backward pass. They are detached: saving never extends the graph.
    pub fn save_for_backward(&mut self, tensors: &[&Tensor]) {
        self.saved.extend(tensors.iter().map(|t| t.detach()));
    }

    /// The tensors saved by the forward pass, in the order they were saved.
    pub fn saved_tensors(&self) -> &[Tensor] {
        &self.saved
    }

    /// Whether input `i` requires a gradient (false for an index out of range).
    pub fn needs_input_grad(&self, i: usize) -> bool {
        self.needs_input_grad.get(i).copied().unwrap_or(false)
    }
}

impl Tensor {
    /// Applies a user-defined [`Function`] to `inputs`, recording it in the graph when grad
    /// mode is on and any input requires a gradient.
    ///
    /// # Panics
    /// When the backward pass later returns the wrong number of gradients, or a gradient whose
    /// shape differs from its input's; the message names the function.
    pub fn apply(function: impl Function, inputs: &[&Tensor]) -> Tensor {
        let mut ctx = Context {
            saved: Vec::new(),
            needs_input_grad: inputs.iter().map(|t| t.requires_grad()).collect(),
        };
        let output = {
            let _guard = no_grad();
            let detached: Vec<Tensor> = inputs.iter().map(|t| t.detach()).collect();
            function.forward(&mut ctx, &detached)
        };
        let name = function.name();
        let state = Arc::new((function, ctx));
        Tensor::from_result(&output, name, inputs, move |grad_output| {
            let (function, ctx) = &*state;
            function.backward(ctx, grad_output)
        })
    }
}
