//! Device memory and kernel launches for tensors that live on a CUDA device.
//!
//! A [`CudaDevice`] is either a real GPU (cudarc, the kernels compiled by NVRTC for its exact
//! architecture) or the virtual device ([`Device::CudaSim`]), which interprets the PTX NVRTC
//! compiles from the very same `kernels/*.cu` sources, with buffers in its own device memory
//! and every launch checked (memcheck, racecheck, initcheck, synccheck). Both take the same launch:
//! a kernel name, a grid, a block and a list of [`KernelArg`]s, checked argument by argument
//! against the kernel's declaration in its `.cu` file before anything runs, so a launcher
//! that passes a float where the kernel expects an int fails with a message instead of
//! corrupting memory. The tensor crate builds its CUDA ops on [`CudaDevice::launch`]; tests
//! drive the whole training path through the virtual device on machines without a GPU.
//!
//! Each backend is behind its feature (`cuda`, `cuda-sim`); this API is compiled in every
//! build, and [`CudaDevice::open`] of a device whose feature is off says which feature it needs.

// Built with neither feature, `Backend` has no variants: no `CudaDevice` can exist, and every
// method body below stops at an empty `match`.
#![cfg_attr(
    not(feature = "cuda"),
    allow(unreachable_code, unused_mut, unused_variables)
)]

#[cfg(feature = "cuda")]
use super::gpu::Gpu;
#[cfg(feature = "cuda-sim")]
use super::sim::{ArgValue, Simulator};
#[cfg(feature = "cuda")]
use super::sources;
use crate::Device;
#[cfg(feature = "cuda")]
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Element types a device buffer can hold: what the kernels' pointer parameters point to.
///
/// `Pod` (plain old data: no padding, every bit pattern a valid value) is what makes a GPU copy
/// sound: a buffer travels as its bytes ([`bytemuck::cast_slice`]), and whatever bytes come
/// back from the device are a valid `T`.
pub trait Element: bytemuck::Pod + Default + Send + Sync + std::fmt::Debug + 'static {}
impl Element for f32 {}
impl Element for i32 {}
impl Element for u32 {}
impl Element for u16 {}

/// A buffer of `T` in a device's memory (the virtual device's own memory for `cuda-sim`).
pub struct DeviceBuffer<T: Element> {
    repr: Repr<T>,
    /// Elements the buffer holds. A GPU allocation is never empty (`cuMemAlloc` refuses zero
    /// bytes), so an empty buffer is backed by one unused element.
    len: usize,
}

enum Repr<T: Element> {
    /// The elements' bytes in GPU memory (at least one element's worth).
    #[cfg(feature = "cuda")]
    Gpu(CudaSlice<u8>),
    /// The address of an allocation of the virtual device ([`Simulator::global`]), holding
    /// at least one element.
    #[cfg(feature = "cuda-sim")]
    Simulated(u64),
    /// Keeps `T` in the type in every build; has no values.
    _Never(std::convert::Infallible, std::marker::PhantomData<T>),
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

    /// The GPU memory behind the buffer, for NCCL; `None` on the virtual device.
    #[cfg(feature = "nccl")]
    pub(crate) fn gpu_slice_mut(&mut self) -> Option<&mut CudaSlice<u8>> {
        match &mut self.repr {
            Repr::Gpu(slice) => Some(slice),
            #[cfg(feature = "cuda-sim")]
            Repr::Simulated(_) => None,
            Repr::_Never(never, _) => match *never {},
        }
    }
}

#[cfg(feature = "cuda-sim")]
impl<T: Element> Drop for DeviceBuffer<T> {
    fn drop(&mut self) {
        if let Repr::Simulated(ptr) = self.repr {
            // Freed addresses stay reserved: a kernel that still holds one is caught.
            let _ = Simulator::global().free(ptr);
        }
    }
}

impl<T: Element> std::fmt::Debug for DeviceBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let place: &str = match self.repr {
            #[cfg(feature = "cuda")]
            Repr::Gpu(_) => "gpu",
            #[cfg(feature = "cuda-sim")]
            Repr::Simulated(_) => "simulated",
            Repr::_Never(never, _) => match never {},
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
#[cfg(feature = "cuda")]
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
    #[cfg(feature = "cuda")]
    Gpu(Gpu),
    #[cfg(feature = "cuda-sim")]
    Simulated(&'static Simulator),
}

/// A CUDA device tensors can live on: a GPU, or the virtual device.
pub struct CudaDevice {
    device: Device,
    backend: Backend,
}

impl std::fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.backend {
            #[cfg(feature = "cuda")]
            Backend::Gpu(ref gpu) => write!(f, "{gpu:?}"),
            #[cfg(feature = "cuda-sim")]
            Backend::Simulated(sim) => write!(
                f,
                "cuda-sim (NVRTC's PTX for sm_{} interpreted, with memcheck, racecheck, initcheck \
                 and synccheck)",
                sim.arch()
            ),
        }
    }
}

#[cfg(feature = "cuda")]
fn copy_error(what: &str, e: impl std::fmt::Debug) -> String {
    format!("CUDA {what} failed: {e:?}")
}

/// Why `device` cannot be opened in a build without `feature`.
#[cfg(not(all(feature = "cuda", feature = "cuda-sim")))]
fn compiled_out(device: Device, feature: &str) -> String {
    format!(
        "{device}: strata-kernels was built without its `{feature}` feature (enable it, e.g. \
         the default features, to use this device)"
    )
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
            #[cfg(feature = "cuda")]
            Device::Cuda(ordinal) => {
                Backend::Gpu(Gpu::open(ordinal).map_err(|e| format!("{device}: {e}"))?)
            }
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(_) => return Err(compiled_out(device, "cuda")),
            #[cfg(feature = "cuda-sim")]
            Device::CudaSim => {
                // The kernels are NVRTC's PTX: without NVRTC there is nothing to run.
                super::nvrtc::availability().map_err(|e| format!("{device}: {e}"))?;
                Backend::Simulated(Simulator::global())
            }
            #[cfg(not(feature = "cuda-sim"))]
            Device::CudaSim => return Err(compiled_out(device, "cuda-sim")),
        };
        let opened = Arc::new(CudaDevice { device, backend });
        open.insert(device, opened.clone());
        Ok(opened)
    }

    /// Which device this is.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The GPU's stream, for NCCL; `None` on the virtual device.
    #[cfg(feature = "nccl")]
    pub(crate) fn gpu_stream(&self) -> Option<&Arc<cudarc::driver::CudaStream>> {
        match self.backend {
            Backend::Gpu(ref gpu) => Some(gpu.stream()),
            #[cfg(feature = "cuda-sim")]
            Backend::Simulated(_) => None,
        }
    }

    /// A new buffer holding a copy of `values`.
    pub fn upload<T: Element>(&self, values: &[T]) -> Result<DeviceBuffer<T>, String> {
        if values.is_empty() {
            return self.zeros(0);
        }
        let repr = match self.backend {
            #[cfg(feature = "cuda")]
            Backend::Gpu(ref gpu) => Repr::Gpu(
                gpu.stream()
                    .clone_htod(bytemuck::cast_slice::<T, u8>(values))
                    .map_err(|e| copy_error("host-to-device copy", e))?,
            ),
            #[cfg(feature = "cuda-sim")]
            Backend::Simulated(sim) => {
                let bytes = bytemuck::cast_slice::<T, u8>(values);
                let ptr = sim.alloc(bytes.len() as u64);
                sim.write(ptr, bytes)?;
                Repr::Simulated(ptr)
            }
        };
        Ok(DeviceBuffer {
            repr,
            len: values.len(),
        })
    }

    /// A new buffer of `len` zeros.
    pub fn zeros<T: Element>(&self, len: usize) -> Result<DeviceBuffer<T>, String> {
        let repr = match self.backend {
            #[cfg(feature = "cuda")]
            Backend::Gpu(ref gpu) => {
                let bytes = len
                    .max(1)
                    .checked_mul(std::mem::size_of::<T>())
                    .ok_or_else(|| format!("{}: {len} elements overflow usize", self.device))?;
                Repr::Gpu(
                    gpu.stream()
                        .alloc_zeros::<u8>(bytes)
                        .map_err(|e| copy_error(&format!("allocating {len} elements"), e))?,
                )
            }
            #[cfg(feature = "cuda-sim")]
            Backend::Simulated(sim) => {
                let bytes = (len.max(1) as u64)
                    .checked_mul(std::mem::size_of::<T>() as u64)
                    .ok_or_else(|| format!("{}: {len} elements overflow u64", self.device))?;
                let ptr = sim.alloc(bytes);
                sim.fill(ptr, 0, bytes)?;
                Repr::Simulated(ptr)
            }
        };
        Ok(DeviceBuffer { repr, len })
    }

    /// The buffer's elements, copied to the host (waits for the work queued before it).
    pub fn download<T: Element>(&self, buffer: &DeviceBuffer<T>) -> Result<Vec<T>, String> {
        match buffer.repr {
            #[cfg(feature = "cuda")]
            Repr::Gpu(ref slice) => match self.backend {
                Backend::Gpu(ref gpu) => {
                    // The allocation holds max(len, 1) elements: copy them all, keep `len`.
                    let mut values = vec![T::zeroed(); buffer.len.max(1)];
                    gpu.stream()
                        .memcpy_dtoh(slice, bytemuck::cast_slice_mut::<T, u8>(&mut values))
                        .map_err(|e| copy_error("device-to-host copy", e))?;
                    values.truncate(buffer.len);
                    Ok(values)
                }
                #[cfg(feature = "cuda-sim")]
                Backend::Simulated(_) => Err(self.foreign()),
            },
            #[cfg(feature = "cuda-sim")]
            Repr::Simulated(ptr) => {
                let mut values = vec![T::zeroed(); buffer.len];
                Simulator::global().read(ptr, bytemuck::cast_slice_mut::<T, u8>(&mut values))?;
                Ok(values)
            }
            Repr::_Never(never, _) => match never {},
        }
    }

    /// A new buffer with the same elements (a device-to-device copy).
    pub fn duplicate<T: Element>(
        &self,
        buffer: &DeviceBuffer<T>,
    ) -> Result<DeviceBuffer<T>, String> {
        let repr = match (&self.backend, &buffer.repr) {
            #[cfg(feature = "cuda")]
            (Backend::Gpu(gpu), Repr::Gpu(slice)) => Repr::Gpu(
                gpu.stream()
                    .clone_dtod(slice)
                    .map_err(|e| copy_error("device-to-device copy", e))?,
            ),
            #[cfg(feature = "cuda-sim")]
            (Backend::Simulated(sim), Repr::Simulated(src)) => {
                let bytes = (buffer.len.max(1) * std::mem::size_of::<T>()) as u64;
                let ptr = sim.alloc(bytes);
                sim.copy(ptr, *src, bytes)?;
                Repr::Simulated(ptr)
            }
            (_, Repr::_Never(never, _)) => match *never {},
            #[cfg(feature = "cuda-sim")]
            _ => return Err(self.foreign()),
        };
        Ok(DeviceBuffer {
            repr,
            len: buffer.len,
        })
    }

    /// Waits until every launch and copy queued on this device has finished (the virtual device
    /// finishes each launch before returning, so there it has nothing to wait for).
    pub fn synchronize(&self) -> Result<(), String> {
        match self.backend {
            #[cfg(feature = "cuda")]
            Backend::Gpu(ref gpu) => gpu.synchronize(),
            #[cfg(feature = "cuda-sim")]
            Backend::Simulated(_) => Ok(()),
        }
    }

    /// A buffer of the other backend (only a build with both can have one).
    #[cfg(feature = "cuda-sim")]
    fn foreign(&self) -> String {
        format!(
            "{}: a buffer of another device was passed to it",
            self.device
        )
    }

    /// Runs kernel `name` (any `__global__` of `kernels/*.cu`) over `launch` with `args`.
    /// The arguments are checked against the kernel's declaration first (count, and the C
    /// type of each); every buffer must belong to this device. On a GPU the launch is queued
    /// on the device's stream; the virtual device runs it before returning.
    ///
    /// The caller must size every buffer for what the kernel reads and writes under `launch`:
    /// that contract lives in each kernel's comment and cannot be checked here.
    pub fn launch(&self, name: &str, launch: Launch, args: &mut [KernelArg]) -> Result<(), String> {
        let file = self.check_arguments(name, args)?;
        if launch.grid.contains(&0) || launch.block.contains(&0) {
            return Ok(());
        }
        match self.backend {
            #[cfg(feature = "cuda")]
            Backend::Gpu(ref gpu) => self.launch_gpu(gpu, file, name, launch, args),
            #[cfg(feature = "cuda-sim")]
            Backend::Simulated(sim) => self.launch_simulated(sim, file, name, launch, args),
        }
    }

    /// The file that declares kernel `name`, if `args` match its parameters in count and C type.
    #[cfg(feature = "cuda")]
    fn check_arguments(&self, name: &str, args: &[KernelArg]) -> Result<&'static str, String> {
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
        Ok(file)
    }

    /// Without a backend there is no device to launch on (nor kernels to check against).
    #[cfg(not(feature = "cuda"))]
    fn check_arguments(&self, name: &str, args: &[KernelArg]) -> Result<&'static str, String> {
        match self.backend {}
    }

    #[cfg(feature = "cuda")]
    fn launch_gpu(
        &self,
        gpu: &Gpu,
        file: &'static str,
        name: &str,
        launch: Launch,
        args: &mut [KernelArg],
    ) -> Result<(), String> {
        let function = gpu.function(file, name)?;
        let mut builder = gpu.stream().launch_builder(&function);
        macro_rules! slice {
            ($buffer:expr) => {
                match &$buffer.repr {
                    Repr::Gpu(slice) => slice,
                    #[cfg(feature = "cuda-sim")]
                    Repr::Simulated(_) => return Err(self.foreign()),
                    Repr::_Never(never, _) => match *never {},
                }
            };
        }
        macro_rules! slice_mut {
            ($buffer:expr) => {
                match &mut $buffer.repr {
                    Repr::Gpu(slice) => slice,
                    #[cfg(feature = "cuda-sim")]
                    Repr::Simulated(_) => return Err(self.foreign()),
                    Repr::_Never(never, _) => match *never {},
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
}

impl CudaDevice {
    #[cfg(feature = "cuda-sim")]
    fn launch_simulated(
        &self,
        sim: &Simulator,
        file: &str,
        name: &str,
        launch: Launch,
        args: &mut [KernelArg],
    ) -> Result<(), String> {
        fn address<T: Element>(
            device: &CudaDevice,
            b: &DeviceBuffer<T>,
        ) -> Result<ArgValue, String> {
            match b.repr {
                Repr::Simulated(ptr) => Ok(ArgValue::Ptr(ptr)),
                _ => Err(device.foreign()),
            }
        }
        let mut values = Vec::with_capacity(args.len());
        for arg in args.iter() {
            values.push(match arg {
                KernelArg::I32(v) => ArgValue::U32(*v as u32),
                KernelArg::U64(v) => ArgValue::U64(*v),
                KernelArg::F32(v) => ArgValue::F32(*v),
                KernelArg::F32s(b) => address(self, b)?,
                KernelArg::F32sMut(b) => address(self, b)?,
                KernelArg::I32s(b) => address(self, b)?,
                KernelArg::U32s(b) => address(self, b)?,
                KernelArg::U32sMut(b) => address(self, b)?,
                KernelArg::U16s(b) => address(self, b)?,
                KernelArg::U16sMut(b) => address(self, b)?,
            });
        }
        sim.launch(file, name, launch.grid, launch.block, &values)
            .map(|_| ())
            .map_err(|e| format!("{}: kernel {name} (kernels/{file}): {e}", self.device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_whose_feature_is_off_says_which_feature() {
        assert!(CudaDevice::open(Device::Cpu).is_err());
        #[cfg(not(feature = "cuda"))]
        {
            let err = CudaDevice::open(Device::Cuda(0)).unwrap_err();
            assert!(
                err.starts_with("cuda:0: ") && err.contains("`cuda` feature"),
                "{err}"
            );
        }
        #[cfg(not(feature = "cuda-sim"))]
        {
            let err = CudaDevice::open(Device::CudaSim).unwrap_err();
            assert!(err.contains("`cuda-sim` feature"), "{err}");
        }
        #[cfg(feature = "cuda-sim")]
        {
            let device = CudaDevice::open(Device::CudaSim).unwrap();
            let bits = [0u16, 1, 0x7c00, 0xffff];
            let buffer = device.upload(&bits).unwrap();
            assert_eq!(device.download(&buffer).unwrap(), bits);
        }
    }
}
