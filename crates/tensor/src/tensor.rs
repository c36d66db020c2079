//! The tensor: shared storage plus a strided layout, and a link into the autograd graph.

use crate::autograd::{is_grad_enabled, Node};
use crate::random::Generator;
use rand_distr::{Distribution, Normal};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use strata_kernels::elementwise::{unary, UnaryOp};
use strata_kernels::strided::{contiguous_strides, is_contiguous, numel, Strided};
use strata_kernels::{DType, Device};

/// The flat buffer behind one or more tensors (a tensor and all its views share one).
pub(crate) struct Storage {
    pub(crate) data: RwLock<Vec<f32>>,
}

impl Drop for Storage {
    /// The buffer goes back to the pool for the next op output of the same size.
    fn drop(&mut self) {
        let data = self
            .data
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        crate::pool::recycle(std::mem::take(data));
    }
}

/// An n-dimensional array of `f32` with an optional place in the autograd graph.
///
/// Cloning a `Tensor` is cheap: it clones a handle, not the data. Views share storage with
/// the tensor they come from. Tensors are `Send + Sync`.
///
/// ```
/// use strata_tensor::Tensor;
/// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
/// assert_eq!(x.shape(), &[2, 3]);
/// assert_eq!(x.strides(), &[3, 1]);
///
/// // A transpose is a view: same storage, swapped strides, nothing copied.
/// let xt = x.t();
/// assert_eq!(xt.shape(), &[3, 2]);
/// assert_eq!(xt.strides(), &[1, 3]);
/// assert!(xt.shares_storage_with(&x) && !xt.is_contiguous());
/// assert_eq!(xt.to_vec(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
/// assert_eq!(xt.get(&[2, 1]), 6.0);
/// ```
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<TensorInner>);

pub(crate) struct TensorInner {
    id: usize,
    storage: Arc<Storage>,
    shape: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
    requires_grad: bool,
    /// Name of the op that made this tensor, or `None` for a leaf.
    pub(crate) op: Option<&'static str>,
    /// How to send a gradient back to the inputs. Taken (and so freed) by `backward()`.
    pub(crate) node: Mutex<Option<Arc<Node>>>,
    /// Accumulated gradient of a leaf that requires one.
    pub(crate) grad: Mutex<Option<Tensor>>,
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

impl Tensor {
    // ----- creation ---------------------------------------------------------------------

    fn make(
        storage: Arc<Storage>,
        shape: Vec<usize>,
        strides: Vec<usize>,
        offset: usize,
        requires_grad: bool,
        node: Option<Arc<Node>>,
    ) -> Tensor {
        Tensor(Arc::new(TensorInner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            storage,
            shape,
            strides,
            offset,
            requires_grad,
            op: node.as_ref().map(|n| n.op),
            node: Mutex::new(node),
            grad: Mutex::new(None),
        }))
    }

    /// A contiguous tensor owning `data`, laid out row-major as `shape`.
    /// Panics if the element count does not match the shape.
    pub fn from_vec(data: Vec<f32>, shape: &[usize]) -> Tensor {
        assert_eq!(
            data.len(),
            numel(shape),
            "from_vec: {} values cannot fill shape {shape:?} ({} elements)",
            data.len(),
            numel(shape)
        );
        Tensor::make(
            Arc::new(Storage {
                data: RwLock::new(data),
            }),
            shape.to_vec(),
            contiguous_strides(shape),
            0,
            false,
            None,
        )
    }

    /// A 0-dimensional tensor holding `value`.
    pub fn scalar(value: f32) -> Tensor {
        Tensor::from_vec(vec![value], &[])
    }

    /// A tensor of `shape` filled with `value`.
    pub fn full(shape: &[usize], value: f32) -> Tensor {
        Tensor::from_vec(vec![value; numel(shape)], shape)
    }

    /// A tensor of `shape` filled with 0 (PyTorch `torch.zeros`). An empty `shape` gives a scalar.
    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor::full(shape, 0.0)
    }

    /// A tensor of `shape` filled with 1 (PyTorch `torch.ones`).
    pub fn ones(shape: &[usize]) -> Tensor {
        Tensor::full(shape, 1.0)
    }

    /// `[0, 1, ..., n-1]`.
    pub fn arange(n: usize) -> Tensor {
        Tensor::from_vec((0..n).map(|i| i as f32).collect(), &[n])
    }

    /// Independent draws from U(low, high).
    pub fn uniform(shape: &[usize], low: f32, high: f32, generator: &mut Generator) -> Tensor {
        let data = (0..numel(shape))
            .map(|_| low + (high - low) * generator.uniform())
            .collect();
        Tensor::from_vec(data, shape)
    }

    /// Independent draws from N(mean, std²).
    pub fn normal(shape: &[usize], mean: f32, std: f32, generator: &mut Generator) -> Tensor {
        let dist = Normal::new(mean, std).unwrap_or_else(|e| {
            panic!("normal: invalid distribution (mean {mean}, std {std}): {e}")
        });
        let data = (0..numel(shape))
            .map(|_| dist.sample(&mut generator.0))
            .collect();
        Tensor::from_vec(data, shape)
    }

    /// A tensor of this tensor's shape filled with `value`.
    pub fn full_like(&self, value: f32) -> Tensor {
        Tensor::full(self.shape(), value)
    }

    /// A new contiguous tensor of this tensor's shape filled with 0; it does not require a gradient.
    pub fn zeros_like(&self) -> Tensor {
        self.full_like(0.0)
    }

    /// A new contiguous tensor of this tensor's shape filled with 1; it does not require a gradient.
    pub fn ones_like(&self) -> Tensor {
        self.full_like(1.0)
    }

    // ----- layout -----------------------------------------------------------------------

    /// Size of each dimension, outermost first (`[]` for a scalar). PyTorch `x.shape`.
    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }

    /// Step in storage elements for each dimension (not bytes, unlike NumPy). A contiguous
    /// `[2, 3]` tensor has strides `[3, 1]`; its transpose has `[1, 3]`; an expanded
    /// (broadcast) dimension has stride 0.
    pub fn strides(&self) -> &[usize] {
        &self.0.strides
    }

    /// Offset of element `[0, 0, ...]` in the storage.
    pub fn offset(&self) -> usize {
        self.0.offset
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.shape.len()
    }

    /// Size of dimension `axis` (negative counts from the end).
    pub fn dim(&self, axis: isize) -> usize {
        self.0.shape[crate::shape::normalize_axis("dim", axis, self.rank())]
    }

    /// Number of elements: the product of the shape (1 for a scalar).
    pub fn numel(&self) -> usize {
        numel(&self.0.shape)
    }

    /// Whether the elements are row-major and adjacent (views by permute or expand are not).
    pub fn is_contiguous(&self) -> bool {
        is_contiguous(&self.0.shape, &self.0.strides)
    }

    /// Element type; always [`DType::F32`] for now.
    pub fn dtype(&self) -> DType {
        DType::F32
    }

    /// Where the data lives; always [`Device::Cpu`] for now.
    pub fn device(&self) -> Device {
        Device::Cpu
    }

    /// Unique identity of this tensor handle (views get their own).
    pub fn id(&self) -> usize {
        self.0.id
    }

    /// Whether two tensors share one storage buffer (e.g. a tensor and its view).
    pub fn shares_storage_with(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0.storage, &other.0.storage)
    }

    // ----- data -------------------------------------------------------------------------

    /// Read access to the whole storage; pair it with [`Tensor::strided`].
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Vec<f32>> {
        self.0
            .storage
            .data
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// This tensor's layout over a storage slice obtained from [`Tensor::read`].
    pub(crate) fn strided<'a>(&'a self, data: &'a [f32]) -> Strided<'a> {
        Strided::new(data, self.0.offset, &self.0.strides)
    }

    /// Runs `f` on the elements as one contiguous row-major slice, copying only if needed.
    pub fn with_contiguous<R>(&self, f: impl FnOnce(&[f32]) -> R) -> R {
        let guard = self.read();
        if self.is_contiguous() {
            f(&guard[self.0.offset..self.0.offset + self.numel()])
        } else {
            let mut copy = crate::pool::take_for_overwrite(self.numel());
            unary(
                UnaryOp::Identity,
                self.shape(),
                self.strided(&guard),
                &mut copy,
            );
            drop(guard);
            f(&copy)
        }
    }

    /// The elements in row-major order.
    pub fn to_vec(&self) -> Vec<f32> {
        self.with_contiguous(|d| d.to_vec())
    }

    /// The value of a one-element tensor. Panics otherwise.
    pub fn item(&self) -> f32 {
        assert_eq!(
            self.numel(),
            1,
            "item: tensor of shape {:?} has {} elements, not one",
            self.shape(),
            self.numel()
        );
        self.read()[self.0.offset]
    }

    /// Element at a full index. Panics naming the index and shape if out of range.
    pub fn get(&self, index: &[usize]) -> f32 {
        assert!(
            index.len() == self.rank() && index.iter().zip(self.shape()).all(|(i, n)| i < n),
            "get: index {index:?} is out of range for shape {:?}",
            self.shape()
        );
        let at: usize = index.iter().zip(self.strides()).map(|(i, s)| i * s).sum();
        self.read()[self.0.offset + at]
    }

    /// Overwrites the elements in place (on the shared storage, so views see it too). Meant for
    /// optimizers and initialisers acting on parameters: it is invisible to autograd.
    /// Panics unless the tensor is contiguous.
    pub fn update_data(&self, f: impl FnOnce(&mut [f32])) {
        assert!(
            self.is_contiguous(),
            "update_data: tensor of shape {:?} with strides {:?} is not contiguous",
            self.shape(),
            self.strides()
        );
        let mut guard = self
            .0
            .storage
            .data
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let n = self.numel();
        f(&mut guard[self.0.offset..self.0.offset + n]);
    }

    /// Copies `source`'s values into this tensor in place (shapes must match).
    pub fn copy_from(&self, source: &Tensor) {
        assert_eq!(
            self.shape(),
            source.shape(),
            "copy_from: destination shape {:?} and source shape {:?} differ",
            self.shape(),
            source.shape()
        );
        let values = source.to_vec();
        self.update_data(|d| d.copy_from_slice(&values));
    }

    // ----- autograd ---------------------------------------------------------------------

    /// Whether gradients flow to or through this tensor.
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }

    /// A leaf sharing this tensor's storage, that does (or does not) collect a gradient.
    pub fn set_requires_grad(self, requires_grad: bool) -> Tensor {
        Tensor::make(
            self.0.storage.clone(),
            self.0.shape.clone(),
            self.0.strides.clone(),
            self.0.offset,
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

    /// Builds the output of a differentiable op: a fresh contiguous tensor, linked into the
    /// graph when grad mode is on and any input requires a gradient.
    pub(crate) fn from_op(
        data: Vec<f32>,
        shape: &[usize],
        op: &'static str,
        inputs: &[&Tensor],
        backward: impl Fn(&Tensor) -> Vec<Option<Tensor>> + Send + Sync + 'static,
    ) -> Tensor {
        assert_eq!(
            data.len(),
            numel(shape),
            "{op}: produced a wrong-sized buffer"
        );
        let storage = Arc::new(Storage {
            data: RwLock::new(data),
        });
        Tensor::link(
            storage,
            shape.to_vec(),
            contiguous_strides(shape),
            0,
            op,
            inputs,
            backward,
        )
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
            result.0.shape.clone(),
            result.0.strides.clone(),
            result.0.offset,
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
        Tensor::link(
            base.0.storage.clone(),
            shape,
            strides,
            offset,
            op,
            &[base],
            backward,
        )
    }

    fn link(
        storage: Arc<Storage>,
        shape: Vec<usize>,
        strides: Vec<usize>,
        offset: usize,
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
        Tensor::make(storage, shape, strides, offset, tracked, node)
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// PyTorch-like printing: nested brackets, 4 decimals, long dimensions elided with `...`.
impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const EDGE: usize = 3;
        const FULL_LIMIT: usize = 1000;
        let values = self.to_vec();
        let shape = self.shape();
        let summarise = values.len() > FULL_LIMIT;
        fn write_level(
            f: &mut fmt::Formatter<'_>,
            values: &[f32],
            shape: &[usize],
            depth: usize,
            summarise: bool,
        ) -> fmt::Result {
            if shape.is_empty() {
                return write!(f, "{:.4}", values[0]);
            }
            let n = shape[0];
            let inner: usize = shape[1..].iter().product();
            write!(f, "[")?;
            let show = |i: usize| !summarise || n <= 2 * EDGE || i < EDGE || i >= n - EDGE;
            let mut skipped = false;
            for i in 0..n {
                if !show(i) {
                    if !skipped {
                        write!(f, "...")?;
                        if shape.len() > 1 {
                            write!(f, ",\n{:width$}", "", width = depth + 8)?;
                        } else {
                            write!(f, ", ")?;
                        }
                        skipped = true;
                    }
                    continue;
                }
                write_level(
                    f,
                    &values[i * inner..(i + 1) * inner],
                    &shape[1..],
                    depth + 1,
                    summarise,
                )?;
                if i + 1 < n {
                    if shape.len() > 1 {
                        write!(f, ",\n{:width$}", "", width = depth + 8)?;
                    } else {
                        write!(f, ", ")?;
                    }
                }
            }
            write!(f, "]")
        }
        write!(f, "tensor(")?;
        write_level(f, &values, shape, 0, summarise)?;
        write!(f, ", shape={shape:?}")?;
        if let Some(op) = self.op_name() {
            write!(f, ", grad_fn={op}")?;
        } else if self.requires_grad() {
            write!(f, ", requires_grad=true")?;
        }
        write!(f, ")")
    }
}
