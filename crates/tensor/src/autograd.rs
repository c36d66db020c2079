//! Reverse-mode automatic differentiation.
//!
//! Every op that receives an input requiring a gradient records a [`Node`]: its inputs and a
//! closure mapping the output's gradient to one gradient per input. `backward()` sorts the
//! graph topologically (inputs before the ops that use them), then walks it from the loss
//! backwards, summing the gradients that reach each tensor from all its uses, and stores the
//! totals in the leaves. This is micrograd's algorithm, with tensors instead of scalars.

use crate::tensor::Tensor;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// One recorded op: the tensors it read and how its gradient flows back into them.
pub(crate) struct Node {
    pub(crate) op: &'static str,
    pub(crate) inputs: Vec<Tensor>,
    /// `grad_output -> [grad_input_0, grad_input_1, ...]`; `None` where an input needs none.
    #[allow(clippy::type_complexity)]
    pub(crate) backward: Box<dyn Fn(&Tensor) -> Vec<Option<Tensor>> + Send + Sync>,
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops on this thread currently record the graph.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Restores the previous grad mode when dropped.
#[must_use = "grad recording resumes as soon as the guard is dropped"]
pub struct NoGradGuard {
    previous: bool,
}

/// Stops recording the graph on this thread until the guard is dropped (inference, optimizer
/// steps, and the backward pass itself run this way).
///
/// ```
/// use strata_tensor::{no_grad, Tensor};
/// let w = Tensor::ones(&[2]).set_requires_grad(true);
/// let y = {
///     let _guard = no_grad();
///     w.mul_scalar(2.0)
/// };
/// assert!(!y.requires_grad());
/// ```
pub fn no_grad() -> NoGradGuard {
    let previous = GRAD_ENABLED.with(|g| g.replace(false));
    NoGradGuard { previous }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}

impl Tensor {
    /// Back-propagates from this one-element tensor, accumulating `d self / d leaf` into the
    /// `grad()` of every leaf that requires a gradient. The graph is freed as it is walked, so
    /// each graph supports one `backward()`, as in PyTorch without `retain_graph`.
    pub fn backward(&self) {
        assert_eq!(
            self.numel(),
            1,
            "backward: needs a one-element tensor (a loss) but got shape {:?}; reduce it first \
             with sum_all() or mean_all()",
            self.shape()
        );
        self.backward_with(&self.ones_like());
    }

    /// Back-propagates `grad` (same shape as `self`) as the gradient of this tensor.
    pub fn backward_with(&self, grad: &Tensor) {
        assert!(
            self.requires_grad(),
            "backward: the tensor does not require a gradient (no input was created with \
             set_requires_grad(true), or it was computed under no_grad)"
        );
        assert_eq!(
            grad.shape(),
            self.shape(),
            "backward: gradient shape {:?} differs from tensor shape {:?}",
            grad.shape(),
            self.shape()
        );
        let _guard = crate::no_grad();
        let order = topological_order(self);
        let mut grads: HashMap<usize, Tensor> = HashMap::new();
        grads.insert(self.id(), grad.clone());
        for (tensor, node) in order.iter().rev() {
            let Some(g) = grads.remove(&tensor.id()) else {
                continue;
            };
            match node {
                Some(node) => {
                    let input_grads = (node.backward)(&g);
                    assert_eq!(
                        input_grads.len(),
                        node.inputs.len(),
                        "{}: backward returned the wrong number of gradients",
                        node.op
                    );
                    for (input, input_grad) in node.inputs.iter().zip(input_grads) {
                        let Some(input_grad) = input_grad else {
                            continue;
                        };
                        if !input.requires_grad() {
                            continue;
                        }
                        assert_eq!(
                            input_grad.shape(),
                            input.shape(),
                            "{}: backward produced a gradient of shape {:?} for an input of \
                             shape {:?}",
                            node.op,
                            input_grad.shape(),
                            input.shape()
                        );
                        let total = match grads.remove(&input.id()) {
                            Some(previous) => previous.add(&input_grad),
                            None => input_grad,
                        };
                        grads.insert(input.id(), total);
                    }
                }
                None => {
                    if let Some(op) = tensor.op_name() {
                        panic!(
                            "backward: the graph through '{op}' was already freed by an earlier \
                             backward(); recompute the forward pass"
                        );
                    }
                    let mut slot = tensor.0.grad.lock().unwrap_or_else(|p| p.into_inner());
                    let total = match slot.take() {
                        Some(previous) => previous.add(&g),
                        None => g.contiguous(),
                    };
                    *slot = Some(total);
                }
            }
        }
    }
}

/// Tensors reachable from `root` through recorded nodes, each after all of its inputs,
/// paired with the node taken out of it (the walk frees the graph). Iterative depth-first
/// search, so deep networks cannot overflow the stack. A tensor is marked when it is expanded,
/// not when it is pushed, so one reached again through a longer path still lands after every
/// op that uses it in the reversed order.
fn topological_order(root: &Tensor) -> Vec<(Tensor, Option<Arc<Node>>)> {
    enum Step {
        Visit(Tensor),
        Finish(Tensor, Option<Arc<Node>>),
    }
    let mut order = Vec::new();
    let mut visited = HashSet::new();
    let mut stack = vec![Step::Visit(root.clone())];
    while let Some(step) = stack.pop() {
        match step {
            Step::Finish(tensor, node) => order.push((tensor, node)),
            Step::Visit(tensor) => {
                if !visited.insert(tensor.id()) {
                    continue;
                }
                let node = tensor
                    .0
                    .node
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                let inputs: Vec<Tensor> =
                    node.as_ref().map(|n| n.inputs.clone()).unwrap_or_default();
                stack.push(Step::Finish(tensor, node));
                for input in inputs {
                    if input.requires_grad() && !visited.contains(&input.id()) {
                        stack.push(Step::Visit(input));
                    }
                }
            }
        }
    }
    order
}
