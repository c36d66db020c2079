//! Where a tensor's values live: a flat buffer in host memory or on a CUDA device (a GPU or
//! the virtual device), f32 or 16-bit, shared by a tensor and all its views; how a buffer moves
//! between places; and the device-buffer helpers every op's CUDA path uses (allocation,
//! copies to and from the host, dense operands, finding the operands' device).
//!
//! A failed copy or allocation (out of device memory, a driver error) panics with the op's
//! name, as a shape error does on the CPU: ops return tensors, not `Result`s.

use super::layout::Layout;
use super::Tensor;
use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use strata_kernels::cuda::runtime::{CudaDevice, DeviceBuffer};
use strata_kernels::elementwise::cuda::{self as elementwise, View};
use strata_kernels::elementwise::UnaryOp;
use strata_kernels::half_precision::HalfFormat;
use strata_kernels::strided::numel;
use strata_kernels::{DType, Device};

/// The flat buffer behind one or more tensors (a tensor and all its views share one): host
/// memory, or a buffer on a CUDA device (a GPU or the virtual device). One lock guards the place and
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
    /// f16 or bf16 bits in host memory (see [`Tensor::to_dtype`]).
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
    pub(crate) fn dtype(&self) -> DType {
        match self {
            Buffer::Host(_) | Buffer::Cuda { .. } => DType::F32,
            Buffer::HostHalf { format, .. } | Buffer::CudaHalf { format, .. } => match format {
                HalfFormat::F16 => DType::F16,
                HalfFormat::Bf16 => DType::BF16,
            },
        }
    }

    /// The same values placed on `target`: `Err` if the copy or the device fails.
    pub(crate) fn moved(&self, target: Device) -> Result<Buffer, String> {
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
            crate::buffer_cache::recycle(std::mem::take(data));
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
pub(super) fn half_message(dtype: DType, shape: &[usize]) -> String {
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
    pub(crate) fn len(&self) -> usize {
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

    pub(crate) fn into_storage(self) -> Arc<Storage> {
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

impl Tensor {
    pub(crate) fn lock_read(&self) -> RwLockReadGuard<'_, Buffer> {
        self.0
            .storage
            .buffer
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn lock_write(&self) -> RwLockWriteGuard<'_, Buffer> {
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

    /// A leaf with this tensor's shape, strides and offset over a new storage holding `buffer`
    /// (for elementwise transforms of a whole storage: moves and dtype conversions).
    pub(crate) fn with_layout_over(&self, buffer: Buffer) -> Tensor {
        Tensor::make(
            Arc::new(Storage {
                buffer: RwLock::new(buffer),
            }),
            self.0.layout.clone(),
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
        Tensor::make(data.into_storage(), Layout::contiguous(shape), false, None)
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
            self.0.layout.is_dense() && buffer.len() == self.numel(),
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
            self.0.layout.is_dense() && guard.len() == self.numel(),
            "with_device_buffer: tensor of shape {:?} is a view, not its whole buffer",
            self.shape()
        );
        f(&device, &guard)
    }
}

/// Unwraps a device result, panicking with the op's name and the driver's message.
pub(crate) fn check<T>(op: &str, result: Result<T, String>) -> T {
    result.unwrap_or_else(|e| panic!("{op}: {e}"))
}

/// The CUDA device all of `tensors` live on, or `None` when they are all on the host. Panics,
/// naming `op`, when they are on different devices.
pub(crate) fn device_of(op: &str, tensors: &[&Tensor]) -> Option<Arc<CudaDevice>> {
    let first = tensors[0].device();
    if let Some(other) = tensors.iter().find(|t| t.device() != first) {
        panic!(
            "{op}: operands are on {first} and {}; move them to one device with .to(device)",
            other.device()
        );
    }
    tensors[0].cuda()
}

/// A new device buffer of `len` zeros (every output is allocated zeroed: kernels that
/// accumulate rely on it, and the others overwrite it).
pub(crate) fn zeros(device: &CudaDevice, len: usize) -> DeviceBuffer<f32> {
    check("alloc", device.zeros(len))
}

/// A contiguous host tensor copied onto `device`.
pub(crate) fn upload(device: &Arc<CudaDevice>, host: &Tensor) -> Tensor {
    let buffer = host.with_contiguous(|values| check("upload", device.upload(values)));
    Tensor::from_data(Data::Cuda(device.clone(), buffer), host.shape())
}

/// A device tensor's elements in row-major order, on the host.
pub(crate) fn download(t: &Tensor) -> Vec<f32> {
    let device = t.cuda().expect("download: a host tensor");
    let dense = dense(&device, t);
    let mut values = check("download", device.download(&dense));
    values.truncate(t.numel());
    values
}

/// A new tensor of `shape` over `buffer`, on `device`.
pub(crate) fn tensor(
    device: &Arc<CudaDevice>,
    buffer: DeviceBuffer<f32>,
    shape: &[usize],
) -> Tensor {
    Tensor::from_data(Data::Cuda(device.clone(), buffer), shape)
}

/// `Data` for `Tensor::from_op`.
pub(crate) fn data(device: &Arc<CudaDevice>, buffer: DeviceBuffer<f32>) -> Data {
    Data::Cuda(device.clone(), buffer)
}

/// A tensor's elements as one dense row-major buffer starting at element 0: the tensor's own
/// buffer when it already is one, else a copy.
pub(crate) enum Dense<'a> {
    Borrowed(DeviceRead<'a>),
    Owned(DeviceBuffer<f32>),
}

impl std::ops::Deref for Dense<'_> {
    type Target = DeviceBuffer<f32>;
    fn deref(&self) -> &DeviceBuffer<f32> {
        match self {
            Dense::Borrowed(guard) => guard,
            Dense::Owned(buffer) => buffer,
        }
    }
}

pub(crate) fn dense<'a>(device: &CudaDevice, t: &'a Tensor) -> Dense<'a> {
    if t.0.layout.is_dense() {
        Dense::Borrowed(t.device_buffer())
    } else {
        Dense::Owned(dense_copy(device, t))
    }
}

/// A view's elements gathered in row-major order into a new buffer, by the identity op of
/// `unary_strided` (the strided branch of `ops::cuda::map`, which `dense` needs below the ops).
fn dense_copy(device: &CudaDevice, t: &Tensor) -> DeviceBuffer<f32> {
    let mut out = zeros(device, t.numel());
    let source = t.device_buffer();
    let view = View {
        buffer: &source,
        offset: t.offset(),
        strides: t.strides(),
    };
    check(
        "unary",
        elementwise::unary_strided(device, UnaryOp::Identity, t.shape(), view, &mut out),
    );
    out
}
