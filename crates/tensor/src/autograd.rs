//! Reverse-mode automatic differentiation.
//!
//! Every op that receives an input requiring a gradient records a [`Node`] in its output: its
//! inputs and a closure mapping the output's gradient to one gradient per input.
//! `backward()` sorts the graph topologically (inputs before the ops that use them), then
//! walks it from the loss backwards, summing the gradients that reach each tensor from all its
//! uses, and stores the totals in the leaves. This is micrograd's algorithm, with tensors
//! instead of scalars.
//!
//! Reading order: grad mode, how an op's output is linked into the graph (`from_op`,
//! `from_result` and `view_of`, all through `link`), a tensor's gradient state, then
//! `backward()` and the topological walk.

use crate::tensor::layout::Layout;
use crate::tensor::storage::Storage;
use crate::tensor::{Data, Node, Tensor};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

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

// ----- graph construction ---------------------------------------------------------------

impl Tensor {
    /// Builds the output of a differentiable op: a fresh contiguous tensor, linked into the
    /// graph when grad mode is on and any input requires a gradient.
    pub(crate) fn from_op(
        data: impl Into<Data>,
        shape: &[usize],
        op: &'static str,
        inputs: &[&Tensor],
        backward: impl Fn(&Tensor) -> Vec<Option<Tensor>> + Send + Sync + 'static,
    ) -> Tensor {
        let data = data.into();
        let layout = Layout::contiguous(shape);
        assert_eq!(
            data.len(),
            layout.numel(),
            "{op}: produced a wrong-sized buffer"
        );
        let storage = data.into_storage();
        Tensor::link(storage, layout, op, inputs, backward)
    }

    /// Links a freshly computed, untracked tensor `result` into the graph as the output of `op`,
    /// sharing its storage (so a backward pass may keep `result` as the saved output for free).
    pub(crate) fn from_result(
        result: &Tensor,
        op: &'static str,
        inputs: &[&Tensor],
        backward: impl Fn(&Tensor) -> Vec<Option<Tensor>> + Send + Sync + 'static,
    ) -> Tensor {
        Tensor::link(
            result.0.storage.clone(),
            result.0.layout.clone(),
            op,
            inputs,
            backward,
        )
    }

    /// Builds a view of `base` (same storage, new layout), linked into the graph like `from_op`.
    pub(crate) fn view_of(
        base: &Tensor,
        shape: Vec<usize>,
        strides: Vec<usize>,
        offset: usize,
        op: &'static str,
        backward: impl Fn(&Tensor) -> Vec<Option<Tensor>> + Send + Sync + 'static,
    ) -> Tensor {
        let layout = Layout {
            shape,
            strides,
            offset,
        };
        Tensor::link(base.0.storage.clone(), layout, op, &[base], backward)
    }

    /// The one place a graph node is made: `storage` under `layout` becomes the output of
    /// `op`, tracked when grad mode is on and any input requires a gradient.
    fn link(
        storage: Arc<Storage>,
        layout: Layout,
        op: &'static str,
        inputs: &[&Tensor],
        backward: impl Fn(&Tensor) -> Vec<Option<Tensor>> + Send + Sync + 'static,
    ) -> Tensor {
        let tracked = is_grad_enabled() && inputs.iter().any(|t| t.requires_grad());
        let node = tracked.then(|| {
            Arc::new(Node {
                op,
                inputs: inputs.iter().map(|t| (*t).clone()).collect(),
                backward: Box::new(backward),
            })
        });
        Tensor::make(storage, layout, tracked, node)
    }
}

// ----- a tensor's gradient state ---------------------------------------------------------

impl Tensor {
    /// Whether gradients flow to or through this tensor.
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }

    /// A leaf sharing this tensor's storage, that does (or does not) collect a gradient.
    pub fn set_requires_grad(self, requires_grad: bool) -> Tensor {
        Tensor::make(
            self.0.storage.clone(),
            self.0.layout.clone(),
            requires_grad,
            None,
        )
    }

    /// The same data cut out of the graph: no gradient flows back through the result.
    pub fn detach(&self) -> Tensor {
        self.clone().set_requires_grad(false)
    }

    /// True for tensors not produced by a differentiable op.
    pub fn is_leaf(&self) -> bool {
        self.0.op.is_none()
    }

    /// Name of the op that produced this tensor (`None` for leaves).
    pub fn op_name(&self) -> Option<&'static str> {
        self.0.op
    }

    /// The gradient accumulated by `backward()` in a leaf that requires it.
    pub fn grad(&self) -> Option<Tensor> {
        self.0
            .grad
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the accumulated gradient (e.g. after clipping); `None` clears it.
    pub fn set_grad(&self, grad: Option<Tensor>) {
        if let Some(g) = &grad {
            assert_eq!(
                g.shape(),
                self.shape(),
                "set_grad: gradient shape {:?} differs from tensor shape {:?}",
                g.shape(),
                self.shape()
            );
        }
        *self.0.grad.lock().unwrap_or_else(|p| p.into_inner()) = grad;
    }

    /// Clears the accumulated gradient.
    pub fn zero_grad(&self) {
        self.set_grad(None);
    }
}

// ----- the backward pass ----------------------------------------------------------------

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
        self.backward_with_hook(grad, &mut |_| {});
    }

    /// [`Tensor::backward_with`], calling `ready(leaf)` the moment each leaf's gradient is
    /// final: every op that uses the leaf has sent its share, and nothing later will add to it.
    /// Leaves come in reverse topological order, so the last layer's parameters come first.
    /// Data-parallel training starts all-reducing a bucket of gradients as soon as its last
    /// gradient is ready, while backward goes on with the earlier layers.
    pub fn backward_with_hook(&self, grad: &Tensor, ready: &mut dyn FnMut(&Tensor)) {
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
                    drop(slot);
                    ready(tensor);
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
