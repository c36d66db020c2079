//! The tensor: shared storage plus a strided layout, and a link into the autograd graph.

use crate::autograd::{is_grad_enabled, Node};
use crate::random::Generator;
use rand_distr::{Distribution, Normal};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use strata_kernels::cuda::runtime::{CudaDevice, DeviceBuffer};
use strata_kernels::elementwise::{unary, UnaryOp};
use strata_kernels::half_precision::HalfFormat;
use strata_kernels::strided::{contiguous_strides, is_contiguous, numel, Strided};
use strata_kernels::{DType, Device};

/// The flat buffer behind one or more tensors (a tensor and all its views share one): host
/// memory, or a buffer on a CUDA device (a GPU or the emulator). One lock guards the place and
/// the values, so [`Tensor::move_to`] can move a parameter and every handle to it at once.
pub(crate) struct Storage {
    buffer: RwLock<Buffer>,
}

pub(crate) enum Buffer {
    Host(Vec<f32>),
    Cuda {
        device: Arc<CudaDevice>,
        buffer: DeviceBuffer<f32>,
    },
    /// f16 or bf16 bits in host memory (see `ops/half.rs`).
    HostHalf {
        format: HalfFormat,
        bits: Vec<u16>,
    },
    /// f16 or bf16 bits on a CUDA device.
    CudaHalf {
        device: Arc<CudaDevice>,
        format: HalfFormat,
        bits: DeviceBuffer<u16>,
    },
}

impl Buffer {
    fn dtype(&self) -> DType {
        match self {
            Buffer::Host(_) | Buffer::Cuda { .. } => DType::F32,
            Buffer::HostHalf { format, .. } | Buffer::CudaHalf { format, .. } => match format {
                HalfFormat::F16 => DType::F16,
                HalfFormat::Bf16 => DType::BF16,
            },
        }
    }

    /// The same values placed on `target`: `Err` if the copy or the device fails.
    fn moved(&self, target: Device) -> Result<Buffer, String> {
        let cuda = || CudaDevice::open(target);
        Ok(match (self, target) {
            (Buffer::Host(values), Device::Cpu) => Buffer::Host(values.clone()),
            (Buffer::Host(values), _) => {
                let device = cuda()?;
                let buffer = device.upload(values)?;
                Buffer::Cuda { device, buffer }
            }
            (Buffer::Cuda { device, buffer }, _) => {
                Buffer::Host(device.download(buffer)?).moved(target)?
            }
            (Buffer::HostHalf { format, bits }, Device::Cpu) => Buffer::HostHalf {
                format: *format,
                bits: bits.clone(),
            },
            (Buffer::HostHalf { format, bits }, _) => {
                let device = cuda()?;
                let bits = device.upload(bits)?;
                Buffer::CudaHalf {
                    device,
                    format: *format,
                    bits,
                }
            }
            (
                Buffer::CudaHalf {
                    device,
                    format,
                    bits,
                },
                _,
            ) => Buffer::HostHalf {
                format: *format,
                bits: device.download(bits)?,
            }
            .moved(target)?,
        })
    }
}

impl Drop for Storage {
    /// A host buffer goes back to the pool for the next op output of the same size.
    fn drop(&mut self) {
        let buffer = self
            .buffer
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Buffer::Host(data) = buffer {
            crate::pool::recycle(std::mem::take(data));
        }
    }
}

/// Read access to a host tensor's whole storage.
pub(crate) struct HostRead<'a>(RwLockReadGuard<'a, Buffer>);

impl std::ops::Deref for HostRead<'_> {
    type Target = Vec<f32>;
    fn deref(&self) -> &Vec<f32> {
        match &*self.0 {
            Buffer::Host(values) => values,
            _ => unreachable!("HostRead is only made for f32 host storage"),
        }
    }
}

/// Read access to a device tensor's whole buffer.
pub(crate) struct DeviceRead<'a>(RwLockReadGuard<'a, Buffer>);

impl std::ops::Deref for DeviceRead<'_> {
    type Target = DeviceBuffer<f32>;
    fn deref(&self) -> &DeviceBuffer<f32> {
        match &*self.0 {
            Buffer::Cuda { buffer, .. } => buffer,
            _ => unreachable!("DeviceRead is only made for f32 device storage"),
        }
    }
}

/// What an op that needs f32 values says when given a 16-bit tensor.
fn half_message(dtype: DType, shape: &[usize]) -> String {
    format!(
        "a tensor of shape {shape:?} stores {dtype}: ops compute in f32, and 16-bit tensors \
         support to_dtype, to(device), views, to_vec and matmul; convert with \
         .to_dtype(DType::F32) first"
    )
}

/// The values of a new tensor: a host vector, or a buffer on a CUDA device.
pub(crate) enum Data {
    Host(Vec<f32>),
    Cuda(Arc<CudaDevice>, DeviceBuffer<f32>),
    HostHalf(HalfFormat, Vec<u16>),
    CudaHalf(Arc<CudaDevice>, HalfFormat, DeviceBuffer<u16>),
}

impl From<Vec<f32>> for Data {
    fn from(values: Vec<f32>) -> Data {
        Data::Host(values)
    }
}

impl Data {
    fn len(&self) -> usize {
        match self {
            Data::Host(v) => v.len(),
            Data::Cuda(_, b) => b.len(),
            Data::HostHalf(_, bits) => bits.len(),
            Data::CudaHalf(_, _, bits) => bits.len(),
        }
    }

    fn into_buffer(self) -> Buffer {
        match self {
            Data::Host(values) => Buffer::Host(values),
            Data::Cuda(device, buffer) => Buffer::Cuda { device, buffer },
            Data::HostHalf(format, bits) => Buffer::HostHalf { format, bits },
            Data::CudaHalf(device, format, bits) => Buffer::CudaHalf {
                device,
                format,
                bits,
            },
        }
    }

    fn into_storage(self) -> Arc<Storage> {
        Arc::new(Storage {
            buffer: RwLock::new(self.into_buffer()),
        })
    }
}

/// A tensor could not be moved to a device (no GPU, a failed copy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceError(pub String);

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeviceError {}

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
            Data::Host(data).into_storage(),
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

    /// A tensor of this tensor's shape filled with `value`, on this tensor's device.
    pub fn full_like(&self, value: f32) -> Tensor {
        let host = Tensor::full(self.shape(), value);
        match self.cuda() {
            None => host,
            Some(device) => crate::ops::cuda::upload(&device, &host),
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

    /// Element type of the storage: f32, or f16/bf16 after [`Tensor::to_dtype`].
    pub fn dtype(&self) -> DType {
        self.lock_read().dtype()
    }

    /// Where the data lives and the ops on it run.
    pub fn device(&self) -> Device {
        self.cuda().map_or(Device::Cpu, |device| device.device())
    }

    pub(crate) fn lock_read(&self) -> RwLockReadGuard<'_, Buffer> {
        self.0
            .storage
            .buffer
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_write(&self) -> RwLockWriteGuard<'_, Buffer> {
        self.0
            .storage
            .buffer
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The CUDA device holding this tensor, or `None` for a host tensor.
    pub(crate) fn cuda(&self) -> Option<Arc<CudaDevice>> {
        match &*self.lock_read() {
            Buffer::Host(_) | Buffer::HostHalf { .. } => None,
            Buffer::Cuda { device, .. } | Buffer::CudaHalf { device, .. } => Some(device.clone()),
        }
    }

    /// Moves this tensor's storage to `device` in place: this handle, its clones and views
    /// (which share the storage) all live on `device` afterwards. This is how `Module::to`
    /// moves a model's parameters while the layers and the optimizer keep their handles.
    /// Any accumulated gradient is cleared (it would be left on the old device).
    pub fn move_to(&self, device: Device) -> Result<(), DeviceError> {
        if self.device() == device {
            return Ok(());
        }
        let mut guard = self.lock_write();
        *guard = guard.moved(device).map_err(DeviceError)?;
        drop(guard);
        self.set_grad(None);
        Ok(())
    }

    /// A copy of this tensor on `device` (this tensor itself if it is already there), with the
    /// same shape, contiguous. Gradients flow back across the move, so `x.to(cuda)?` can
    /// stand inside a differentiable computation; a model's parameters are moved with
    /// `Module::to`, which keeps them leaves.
    ///
    /// ```
    /// use strata_tensor::{Device, Tensor};
    /// let x = Tensor::from_vec(vec![1.0, -2.0, 3.0], &[3]);
    /// // The emulated CUDA device runs the real kernels on the CPU.
    /// let on_device = x.to(Device::CudaEmulated).unwrap();
    /// assert_eq!(on_device.device(), Device::CudaEmulated);
    /// assert_eq!(on_device.relu().to_vec(), vec![1.0, 0.0, 3.0]);
    /// ```
    pub fn to(&self, device: Device) -> Result<Tensor, DeviceError> {
        let source = self.device();
        if source == device {
            return Ok(self.clone());
        }
        if self.dtype() != DType::F32 {
            // 16-bit storage moves whole, layout kept; it is not part of autograd.
            let moved = self.lock_read().moved(device).map_err(DeviceError)?;
            return Ok(self.with_layout_over(moved));
        }
        let moved = match device {
            Device::Cpu => Tensor::from_vec(self.to_vec(), self.shape()),
            _ => {
                let cuda = CudaDevice::open(device).map_err(DeviceError)?;
                let host = if self.cuda().is_some() {
                    Tensor::from_vec(self.to_vec(), self.shape())
                } else {
                    self.clone()
                };
                let buffer = host
                    .with_contiguous(|values| cuda.upload(values))
                    .map_err(DeviceError)?;
                Tensor::from_data(Data::Cuda(cuda, buffer), self.shape())
            }
        };
        Ok(Tensor::from_result(&moved, "to", &[self], move |dy| {
            vec![Some(dy.to(source).unwrap_or_else(|e| {
                panic!("to: moving the gradient back to {source}: {e}")
            }))]
        }))
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

    /// A leaf with this tensor's shape, strides and offset over a new storage holding `buffer`
    /// (for elementwise transforms of a whole storage: moves and dtype conversions).
    pub(crate) fn with_layout_over(&self, buffer: Buffer) -> Tensor {
        Tensor::make(
            Arc::new(Storage {
                buffer: RwLock::new(buffer),
            }),
            self.shape().to_vec(),
            self.strides().to_vec(),
            self.offset(),
            false,
            None,
        )
    }

    /// `data` as a storage buffer.
    pub(crate) fn buffer_of(data: Data) -> Buffer {
        data.into_buffer()
    }

    /// A contiguous tensor of `shape` over `data` (host or device), not in the graph.
    pub(crate) fn from_data(data: Data, shape: &[usize]) -> Tensor {
        assert_eq!(
            data.len(),
            numel(shape),
            "from_data: buffer does not fit {shape:?}"
        );
        Tensor::make(
            data.into_storage(),
            shape.to_vec(),
            contiguous_strides(shape),
            0,
            false,
            None,
        )
    }

    /// Read access to the whole host storage; pair it with [`Tensor::strided`]. Panics for a
    /// tensor on a CUDA device: every op checks the device before it reads.
    pub(crate) fn read(&self) -> HostRead<'_> {
        let guard = self.lock_read();
        match &*guard {
            Buffer::Host(_) => HostRead(guard),
            Buffer::Cuda { device, .. } => panic!(
                "a host kernel was asked to read a tensor of shape {:?} that lives on {}; \
                 move it with .to(Device::Cpu) first",
                self.shape(),
                device.device()
            ),
            half => panic!("{}", half_message(half.dtype(), self.shape())),
        }
    }

    /// Read access to the whole device buffer (the layout says which elements are this
    /// tensor's). Panics for a host tensor.
    pub(crate) fn device_buffer(&self) -> DeviceRead<'_> {
        let guard = self.lock_read();
        if let Buffer::Host(_) = &*guard {
            panic!(
                "device_buffer: tensor of shape {:?} is on the host",
                self.shape()
            );
        }
        DeviceRead(guard)
    }

    /// Runs `f` on this contiguous device tensor's buffer with write access, in place (views
    /// see the change): how optimizers update parameters on a GPU with their fused kernels.
    /// Panics unless the tensor lives on a CUDA device and covers its whole buffer.
    pub fn update_on_device<R>(
        &self,
        f: impl FnOnce(&CudaDevice, &mut DeviceBuffer<f32>) -> R,
    ) -> R {
        let mut guard = self.lock_write();
        let Buffer::Cuda { device, buffer } = &mut *guard else {
            panic!(
                "update_on_device: tensor of shape {:?} is on the host",
                self.shape()
            );
        };
        assert!(
            self.is_contiguous() && self.0.offset == 0 && buffer.len() == self.numel(),
            "update_on_device: tensor of shape {:?} is a view, not its whole buffer",
            self.shape()
        );
        f(device, buffer)
    }

    /// Runs `f` on this device tensor's buffer with read access. Panics for a host tensor or
    /// a view that does not cover its whole buffer.
    pub fn with_device_buffer<R>(&self, f: impl FnOnce(&CudaDevice, &DeviceBuffer<f32>) -> R) -> R {
        let device = self.cuda().unwrap_or_else(|| {
            panic!(
                "with_device_buffer: tensor of shape {:?} is on the host",
                self.shape()
            )
        });
        let guard = self.device_buffer();
        assert!(
            self.is_contiguous() && self.0.offset == 0 && guard.len() == self.numel(),
            "with_device_buffer: tensor of shape {:?} is a view, not its whole buffer",
            self.shape()
        );
        f(&device, &guard)
    }

    /// This tensor's layout over a storage slice obtained from [`Tensor::read`].
    pub(crate) fn strided<'a>(&'a self, data: &'a [f32]) -> Strided<'a> {
        Strided::new(data, self.0.offset, &self.0.strides)
    }

    /// Runs `f` on the elements as one contiguous row-major slice, copying only if needed.
    /// A tensor on a CUDA device is first copied to the host.
    pub fn with_contiguous<R>(&self, f: impl FnOnce(&[f32]) -> R) -> R {
        if self.dtype() != DType::F32 {
            return self.to_dtype(DType::F32).with_contiguous(f);
        }
        if self.cuda().is_some() {
            return f(&crate::ops::cuda::download(self));
        }
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
        if self.cuda().is_some() {
            return self.to_vec()[0];
        }
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
        if self.cuda().is_some() {
            let row_major: usize = index
                .iter()
                .zip(contiguous_strides(self.shape()))
                .map(|(i, s)| i * s)
                .sum();
            return self.to_vec()[row_major];
        }
        self.read()[self.0.offset + at]
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
            Buffer::Host(data) => f(&mut data[self.0.offset..self.0.offset + n]),
            half @ (Buffer::HostHalf { .. } | Buffer::CudaHalf { .. }) => {
                panic!("{}", half_message(half.dtype(), self.shape()))
            }
            Buffer::Cuda { device, buffer } => {
                let mut values = device
                    .download(buffer)
                    .unwrap_or_else(|e| panic!("update_data on {}: {e}", device.device()));
                f(&mut values[self.0.offset..self.0.offset + n]);
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
        data: impl Into<Data>,
        shape: &[usize],
        op: &'static str,
        inputs: &[&Tensor],
        backward: impl Fn(&Tensor) -> Vec<Option<Tensor>> + Send + Sync + 'static,
    ) -> Tensor {
        let data = data.into();
        assert_eq!(
            data.len(),
            numel(shape),
            "{op}: produced a wrong-sized buffer"
        );
        let storage = data.into_storage();
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
