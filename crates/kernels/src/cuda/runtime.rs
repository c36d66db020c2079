//! Device memory and kernel launches for tensors that live on a CUDA device.
//!
//! A [`CudaDevice`] is either a real GPU (cudarc, the kernels compiled by NVRTC for its exact
//! architecture) or the emulator ([`Device::CudaEmulated`]), which runs the very same
//! `kernels/*.cu` sources on the CPU with buffers in host memory. Both take the same launch:
//! a kernel name, a grid, a block and a list of [`KernelArg`]s, checked argument by argument
//! against the kernel's declaration in its `.cu` file before anything runs, so a launcher
//! that passes a float where the kernel expects an int fails with a message instead of
//! corrupting memory. The tensor crate builds its CUDA ops on [`CudaDevice::launch`]; tests
//! drive the whole training path through the emulator on machines without a GPU.

use super::emu::{self, EmuArg};
use super::gpu::Gpu;
use super::sources;
use crate::Device;
use cudarc::driver::{CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Element types a device buffer can hold: what the kernels' pointer parameters point to.
pub trait Element:
    DeviceRepr + ValidAsZeroBits + Copy + Default + Send + Sync + std::fmt::Debug + 'static
{
}
impl Element for f32 {}
impl Element for i32 {}
impl Element for u32 {}
impl Element for u16 {}

/// A buffer of `T` in a device's memory (host memory for the emulator).
pub struct DeviceBuffer<T: Element> {
    repr: Repr<T>,
    /// Elements the buffer holds. A GPU allocation is never empty (`cuMemAlloc` refuses zero
    /// bytes), so an empty buffer is backed by one unused element.
    len: usize,
}

enum Repr<T: Element> {
    Gpu(CudaSlice<T>),
    Emulated(Vec<T>),
}

impl<T: Element> DeviceBuffer<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` for a buffer of no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Element> std::fmt::Debug for DeviceBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let place = match self.repr {
            Repr::Gpu(_) => "gpu",
            Repr::Emulated(_) => "emulated",
        };
        write!(
            f,
            "DeviceBuffer<{}>({place}, {} elements)",
            std::any::type_name::<T>(),
            self.len()
        )
    }
}

/// One argument of a kernel launch. Pointer parameters take buffers: `const T*` a shared one,
/// `T*` an exclusive one (the kernel may write it).
#[derive(Debug)]
pub enum KernelArg<'a> {
    /// `int`.
    I32(i32),
    /// `unsigned long long`.
    U64(u64),
    /// `float`.
    F32(f32),
    /// `const float*`.
    F32s(&'a DeviceBuffer<f32>),
    /// `float*`.
    F32sMut(&'a mut DeviceBuffer<f32>),
    /// `const int*`.
    I32s(&'a DeviceBuffer<i32>),
    /// `const unsigned int*`.
    U32s(&'a DeviceBuffer<u32>),
    /// `unsigned int*`.
    U32sMut(&'a mut DeviceBuffer<u32>),
    /// `const unsigned short*` (f16 or bf16 bits).
    U16s(&'a DeviceBuffer<u16>),
    /// `unsigned short*`.
    U16sMut(&'a mut DeviceBuffer<u16>),
}

impl KernelArg<'_> {
    /// The C parameter type (as `signature` normalises it) this argument may be passed as.
    pub fn c_type(&self) -> &'static str {
        match self {
            KernelArg::I32(_) => "int",
            KernelArg::U64(_) => "unsigned long long",
            KernelArg::F32(_) => "float",
            KernelArg::F32s(_) => "const float*",
            KernelArg::F32sMut(_) => "float*",
            KernelArg::I32s(_) => "const int*",
            KernelArg::U32s(_) => "const unsigned int*",
            KernelArg::U32sMut(_) => "unsigned int*",
            KernelArg::U16s(_) => "const unsigned short*",
            KernelArg::U16sMut(_) => "unsigned short*",
        }
    }
}

/// Grid and block of a launch, `(x, y, z)` each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch {
    /// Blocks per grid.
    pub grid: [u32; 3],
    /// Threads per block.
    pub block: [u32; 3],
}

impl Launch {
    /// The usual 1-D grid-stride launch over `n` elements: blocks of 256 threads, at most
    /// 65,535 blocks (every such kernel loops, so any grid covers `n`).
    pub fn elements(n: usize) -> Launch {
        Launch::rows(n.div_ceil(256), 256)
    }

    /// One block of `threads` per row over `rows`, at most 65,535 blocks (grid-stride rows).
    pub fn rows(rows: usize, threads: u32) -> Launch {
        Launch {
            grid: [rows.clamp(1, 65_535) as u32, 1, 1],
            block: [threads, 1, 1],
        }
    }
}

/// Most kernels index with 32-bit `int`s and walk grid-stride loops of up to 65,535 blocks
/// of 256 threads, so a buffer must stay that far below 2^31 elements for every index to
/// fit. `Err` names `op` and the first size over the limit.
pub fn check_int_sizes(op: &str, sizes: &[usize]) -> Result<(), String> {
    const LIMIT: usize = i32::MAX as usize - 65_535 * 256;
    match sizes.iter().find(|&&n| n > LIMIT) {
        None => Ok(()),
        Some(n) => Err(format!(
            "{op} on CUDA: a buffer of {n} elements; the kernels index with 32-bit ints and \
             take at most {LIMIT}"
        )),
    }
}

/// Where a kernel is declared and its parameters' C types, for every `kernels/*.cu` kernel.
fn signatures() -> &'static HashMap<String, (&'static str, Vec<String>)> {
    static SIGNATURES: OnceLock<HashMap<String, (&'static str, Vec<String>)>> = OnceLock::new();
    SIGNATURES.get_or_init(|| {
        sources::SOURCES
            .iter()
            .flat_map(|(file, source)| {
                sources::kernels(file, source).into_iter().map(move |k| {
                    let params = k.params.into_iter().map(|p| p.c_type).collect();
                    (k.name, (*file, params))
                })
            })
            .collect()
    })
}

enum Backend {
    Gpu(Gpu),
    Emulated,
}

/// A CUDA device tensors can live on: a GPU, or the CPU emulation of one.
pub struct CudaDevice {
    device: Device,
    backend: Backend,
}

impl std::fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backend {
            Backend::Gpu(gpu) => write!(f, "{gpu:?}"),
            Backend::Emulated => write!(f, "cuda-emu (CUDA kernels emulated on the CPU)"),
        }
    }
}

fn copy_error(what: &str, e: impl std::fmt::Debug) -> String {
    format!("CUDA {what} failed: {e:?}")
}

impl CudaDevice {
    /// The device behind `device`, opened once per process and shared. `Err` says why it
    /// cannot be used (no driver, no such ordinal, ...); [`Device::Cpu`] is not a CUDA device.
    pub fn open(device: Device) -> Result<Arc<CudaDevice>, String> {
        static OPEN: OnceLock<Mutex<HashMap<Device, Arc<CudaDevice>>>> = OnceLock::new();
        let mut open = OPEN
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(found) = open.get(&device) {
            return Ok(found.clone());
        }
        let backend = match device {
            Device::Cpu => return Err("cpu is not a CUDA device".into()),
            Device::Cuda(ordinal) => {
                Backend::Gpu(Gpu::open(ordinal).map_err(|e| format!("{device}: {e}"))?)
            }
            Device::CudaEmulated => Backend::Emulated,
        };
        let opened = Arc::new(CudaDevice { device, backend });
        open.insert(device, opened.clone());
        Ok(opened)
    }

    /// Which device this is.
    pub fn device(&self) -> Device {
        self.device
    }

    /// A new buffer holding a copy of `values`.
    pub fn upload<T: Element>(&self, values: &[T]) -> Result<DeviceBuffer<T>, String> {
        if values.is_empty() {
            return self.zeros(0);
        }
        let repr = match &self.backend {
            Backend::Gpu(gpu) => Repr::Gpu(
                gpu.stream()
                    .clone_htod(values)
                    .map_err(|e| copy_error("host-to-device copy", e))?,
            ),
            Backend::Emulated => Repr::Emulated(values.to_vec()),
        };
        Ok(DeviceBuffer {
            repr,
            len: values.len(),
        })
    }

    /// A new buffer of `len` zeros.
    pub fn zeros<T: Element>(&self, len: usize) -> Result<DeviceBuffer<T>, String> {
        let repr = match &self.backend {
            Backend::Gpu(gpu) => Repr::Gpu(
                gpu.stream()
                    .alloc_zeros(len.max(1))
                    .map_err(|e| copy_error(&format!("allocating {len} elements"), e))?,
            ),
            Backend::Emulated => Repr::Emulated(vec![T::default(); len]),
        };
        Ok(DeviceBuffer { repr, len })
    }

    /// The buffer's elements, copied to the host (waits for the work queued before it).
    pub fn download<T: Element>(&self, buffer: &DeviceBuffer<T>) -> Result<Vec<T>, String> {
        match &buffer.repr {
            Repr::Gpu(slice) => match &self.backend {
                Backend::Gpu(gpu) => {
                    let mut values = gpu
                        .stream()
                        .clone_dtoh(slice)
                        .map_err(|e| copy_error("device-to-host copy", e))?;
                    values.truncate(buffer.len);
                    Ok(values)
                }
                Backend::Emulated => Err(self.foreign()),
            },
            Repr::Emulated(values) => Ok(values.clone()),
        }
    }

    /// A new buffer with the same elements (a device-to-device copy).
    pub fn duplicate<T: Element>(
        &self,
        buffer: &DeviceBuffer<T>,
    ) -> Result<DeviceBuffer<T>, String> {
        let repr = match (&self.backend, &buffer.repr) {
            (Backend::Gpu(gpu), Repr::Gpu(slice)) => Repr::Gpu(
                gpu.stream()
                    .clone_dtod(slice)
                    .map_err(|e| copy_error("device-to-device copy", e))?,
            ),
            (Backend::Emulated, Repr::Emulated(values)) => Repr::Emulated(values.clone()),
            _ => return Err(self.foreign()),
        };
        Ok(DeviceBuffer {
            repr,
            len: buffer.len,
        })
    }

    /// Waits until every launch and copy queued on this device has finished (the emulator
    /// finishes each launch before returning, so there it has nothing to wait for).
    pub fn synchronize(&self) -> Result<(), String> {
        match &self.backend {
            Backend::Gpu(gpu) => gpu.synchronize(),
            Backend::Emulated => Ok(()),
        }
    }

    fn foreign(&self) -> String {
        format!(
            "{}: a buffer of another device was passed to it",
            self.device
        )
    }

    /// Runs kernel `name` (any `__global__` of `kernels/*.cu`) over `launch` with `args`.
    /// The arguments are checked against the kernel's declaration first (count, and the C
    /// type of each); every buffer must belong to this device. On a GPU the launch is queued
    /// on the device's stream; the emulator runs it before returning.
    ///
    /// The caller must size every buffer for what the kernel reads and writes under `launch`:
    /// that contract lives in each kernel's comment and cannot be checked here.
    pub fn launch(&self, name: &str, launch: Launch, args: &mut [KernelArg]) -> Result<(), String> {
        let (file, params) = signatures()
            .get(name)
            .ok_or_else(|| format!("no kernel named {name} in kernels/*.cu"))?;
        if params.len() != args.len() {
            return Err(format!(
                "kernel {name} (kernels/{file}) takes {} arguments, was given {}",
                params.len(),
                args.len()
            ));
        }
        for (i, (param, arg)) in params.iter().zip(args.iter()).enumerate() {
            if param != arg.c_type() {
                return Err(format!(
                    "kernel {name} (kernels/{file}): parameter {i} is `{param}`, was given `{}`",
                    arg.c_type()
                ));
            }
        }
        if launch.grid.contains(&0) || launch.block.contains(&0) {
            return Ok(());
        }
        match &self.backend {
            Backend::Gpu(gpu) => self.launch_gpu(gpu, file, name, launch, args),
            Backend::Emulated => self.launch_emulated(name, launch, args),
        }
    }

    fn launch_gpu(
        &self,
        gpu: &Gpu,
        file: &'static str,
        name: &str,
        launch: Launch,
        args: &mut [KernelArg],
    ) -> Result<(), String> {
        let function = gpu.function(file, name)?;
        let foreign = self.foreign();
        let mut builder = gpu.stream().launch_builder(&function);
        macro_rules! slice {
            ($buffer:expr) => {
                match &$buffer.repr {
                    Repr::Gpu(slice) => slice,
                    Repr::Emulated(_) => return Err(foreign),
                }
            };
        }
        macro_rules! slice_mut {
            ($buffer:expr) => {
                match &mut $buffer.repr {
                    Repr::Gpu(slice) => slice,
                    Repr::Emulated(_) => return Err(foreign),
                }
            };
        }
        for arg in args.iter_mut() {
            match arg {
                KernelArg::I32(v) => builder.arg(&*v),
                KernelArg::U64(v) => builder.arg(&*v),
                KernelArg::F32(v) => builder.arg(&*v),
                KernelArg::F32s(b) => builder.arg(slice!(b)),
                KernelArg::F32sMut(b) => builder.arg(slice_mut!(b)),
                KernelArg::I32s(b) => builder.arg(slice!(b)),
                KernelArg::U32s(b) => builder.arg(slice!(b)),
                KernelArg::U32sMut(b) => builder.arg(slice_mut!(b)),
                KernelArg::U16s(b) => builder.arg(slice!(b)),
                KernelArg::U16sMut(b) => builder.arg(slice_mut!(b)),
            };
        }
        let config = LaunchConfig {
            grid_dim: (launch.grid[0], launch.grid[1], launch.grid[2]),
            block_dim: (launch.block[0], launch.block[1], launch.block[2]),
            shared_mem_bytes: 0,
        };
        // SAFETY: the arguments match the kernel's declaration in count and C type (checked in
        // `launch`), every buffer is a live allocation of this device, and the caller sized
        // them for the launch.
        unsafe { builder.launch(config) }
            .map(|_| ())
            .map_err(|e| copy_error(&format!("launching {name}"), e))
    }

    fn launch_emulated(
        &self,
        name: &str,
        launch: Launch,
        args: &mut [KernelArg],
    ) -> Result<(), String> {
        let foreign = self.foreign();
        let mut emu_args = Vec::with_capacity(args.len());
        macro_rules! ptr {
            ($buffer:expr) => {
                match &$buffer.repr {
                    Repr::Emulated(values) => EmuArg::Ptr(values.as_ptr() as *mut std::ffi::c_void),
                    Repr::Gpu(_) => return Err(foreign),
                }
            };
        }
        macro_rules! ptr_mut {
            ($buffer:expr) => {
                match &mut $buffer.repr {
                    Repr::Emulated(values) => {
                        EmuArg::Ptr(values.as_mut_ptr() as *mut std::ffi::c_void)
                    }
                    Repr::Gpu(_) => return Err(foreign),
                }
            };
        }
        for arg in args.iter_mut() {
            emu_args.push(match arg {
                KernelArg::I32(v) => EmuArg::I32(*v),
                KernelArg::U64(v) => EmuArg::U64(*v),
                KernelArg::F32(v) => EmuArg::F32(*v),
                KernelArg::F32s(b) => ptr!(b),
                KernelArg::F32sMut(b) => ptr_mut!(b),
                KernelArg::I32s(b) => ptr!(b),
                KernelArg::U32s(b) => ptr!(b),
                KernelArg::U32sMut(b) => ptr_mut!(b),
                KernelArg::U16s(b) => ptr!(b),
                KernelArg::U16sMut(b) => ptr_mut!(b),
            });
        }
        // SAFETY: the pointers come from live host buffers borrowed for this call (the mutable
        // ones exclusively); their sizes are the caller's contract, as on a GPU.
        unsafe { emu::launch_by_name(name, launch.grid, launch.block, &emu_args) }
            .map_err(|e| format!("{}: kernel {name}: {e}", self.device))
    }
}
