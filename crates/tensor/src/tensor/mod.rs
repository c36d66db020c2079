//! The tensor: shared storage plus a strided layout, and a link into the autograd graph.
//!
//! `storage` holds the values (host or device, f32 or 16-bit) and the device-buffer helpers;
//! `layout` says which storage elements are the tensor's; this file is the API over both
//! (creation, the layout accessors, reading and writing the elements) and the graph record
//! a tensor keeps, which `crate::autograd` makes and walks.

pub(crate) mod layout;
pub(crate) mod storage;

use crate::random::Generator;
use layout::Layout;
use rand_distr::{Distribution, Normal};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
pub use storage::DeviceError;
use storage::Storage;
pub(crate) use storage::{Buffer, Data};
use strata_kernels::elementwise::{unary, UnaryOp};
use strata_kernels::strided::{contiguous_strides, numel, Strided};
use strata_kernels::{DType, Device};

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
    pub(crate) storage: Arc<Storage>,
    pub(crate) layout: Layout,
    pub(crate) requires_grad: bool,
    /// Name of the op that made this tensor, or `None` for a leaf.
    pub(crate) op: Option<&'static str>,
    /// How to send a gradient back to the inputs. Taken (and so freed) by `backward()`.
    pub(crate) node: Mutex<Option<Arc<Node>>>,
    /// Accumulated gradient of a leaf that requires one.
    pub(crate) grad: Mutex<Option<Tensor>>,
}

/// One recorded op, kept by its output: the tensors it read and how its gradient flows back
/// into them (`crate::autograd` makes and walks these).
pub(crate) struct Node {
    pub(crate) op: &'static str,
    pub(crate) inputs: Vec<Tensor>,
    /// `grad_output -> [grad_input_0, grad_input_1, ...]`; `None` where an input needs none.
    #[allow(clippy::type_complexity)]
    pub(crate) backward: Box<dyn Fn(&Tensor) -> Vec<Option<Tensor>> + Send + Sync>,
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

impl Tensor {
    // ----- creation ---------------------------------------------------------------------

    /// A tensor handle over `storage` with `layout`; `node` (if any) links it into the graph.
    pub(crate) fn make(
        storage: Arc<Storage>,
        layout: Layout,
        requires_grad: bool,
        node: Option<Arc<Node>>,
    ) -> Tensor {
        Tensor(Arc::new(TensorInner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            storage,
            layout,
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
            Data::Host(data).into_storage(),
            Layout::contiguous(shape),
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

    /// A tensor of this tensor's shape filled with `value`, on this tensor's device.
    pub fn full_like(&self, value: f32) -> Tensor {
        let host = Tensor::full(self.shape(), value);
        match self.cuda() {
            None => host,
            Some(device) => storage::upload(&device, &host),
        }
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
        &self.0.layout.shape
    }

    /// Step in storage elements for each dimension (not bytes, unlike NumPy). A contiguous
    /// `[2, 3]` tensor has strides `[3, 1]`; its transpose has `[1, 3]`; an expanded
    /// (broadcast) dimension has stride 0.
    pub fn strides(&self) -> &[usize] {
        &self.0.layout.strides
    }

    /// Offset of element `[0, 0, ...]` in the storage.
    pub fn offset(&self) -> usize {
        self.0.layout.offset
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.layout.shape.len()
    }

    /// Size of dimension `axis` (negative counts from the end).
    pub fn dim(&self, axis: isize) -> usize {
        self.0.layout.shape[crate::shape::normalize_axis("dim", axis, self.rank())]
    }

    /// Number of elements: the product of the shape (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.0.layout.numel()
    }

    /// Whether the elements are row-major and adjacent (views by permute or expand are not).
    pub fn is_contiguous(&self) -> bool {
        self.0.layout.is_contiguous()
    }

    /// Element type of the storage: f32, or f16/bf16 after [`Tensor::to_dtype`].
    pub fn dtype(&self) -> DType {
        self.lock_read().dtype()
    }

    /// Where the data lives and the ops on it run.
    pub fn device(&self) -> Device {
        self.cuda().map_or(Device::Cpu, |device| device.device())
    }

    /// Unique identity of this tensor handle (views get their own).
    pub fn id(&self) -> usize {
        self.0.id
    }

    /// Whether two tensors share one storage buffer (e.g. a tensor and its view).
    pub fn shares_storage_with(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0.storage, &other.0.storage)
    }

    /// This tensor's layout over a storage slice obtained from [`Tensor::read`].
    pub(crate) fn strided<'a>(&'a self, data: &'a [f32]) -> Strided<'a> {
        self.0.layout.strided(data)
    }

    /// Runs `f` on the elements as one contiguous row-major slice, copying only if needed.
    /// A tensor on a CUDA device is first copied to the host.
    pub fn with_contiguous<R>(&self, f: impl FnOnce(&[f32]) -> R) -> R {
        if self.dtype() != DType::F32 {
            return self.to_dtype(DType::F32).with_contiguous(f);
        }
        if self.cuda().is_some() {
            return f(&storage::download(self));
        }
        let guard = self.read();
        if self.is_contiguous() {
            f(&guard[self.offset()..self.offset() + self.numel()])
        } else {
            let mut copy = crate::buffer_cache::take_for_overwrite(self.numel());
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
        if self.cuda().is_some() {
            return self.to_vec()[0];
        }
        self.read()[self.offset()]
    }

    /// Element at a full index. Panics naming the index and shape if out of range.
    pub fn get(&self, index: &[usize]) -> f32 {
        assert!(
            index.len() == self.rank() && index.iter().zip(self.shape()).all(|(i, n)| i < n),
            "get: index {index:?} is out of range for shape {:?}",
            self.shape()
        );
        let at: usize = index.iter().zip(self.strides()).map(|(i, s)| i * s).sum();
        if self.cuda().is_some() {
            let row_major: usize = index
                .iter()
                .zip(contiguous_strides(self.shape()))
                .map(|(i, s)| i * s)
                .sum();
            return self.to_vec()[row_major];
        }
        self.read()[self.offset() + at]
    }

    /// Overwrites the elements in place (on the shared storage, so views see it too). Meant for
    /// optimizers and initialisers acting on parameters: it is invisible to autograd.
    /// Panics unless the tensor is contiguous. On a CUDA device the values make a round trip
    /// through host memory.
    pub fn update_data(&self, f: impl FnOnce(&mut [f32])) {
        assert!(
            self.is_contiguous(),
            "update_data: tensor of shape {:?} with strides {:?} is not contiguous",
            self.shape(),
            self.strides()
        );
        let n = self.numel();
        match &mut *self.lock_write() {
            Buffer::Host(data) => f(&mut data[self.offset()..self.offset() + n]),
            half @ (Buffer::HostHalf { .. } | Buffer::CudaHalf { .. }) => {
                panic!("{}", storage::half_message(half.dtype(), self.shape()))
            }
            Buffer::Cuda { device, buffer } => {
                let mut values = device
                    .download(buffer)
                    .unwrap_or_else(|e| panic!("update_data on {}: {e}", device.device()));
                f(&mut values[self.offset()..self.offset() + n]);
                *buffer = device
                    .upload(&values)
                    .unwrap_or_else(|e| panic!("update_data on {}: {e}", device.device()));
            }
        }
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
