//! Running the kernels on a real GPU: one context and stream per device, each `kernels/*.cu`
//! file compiled once per process for the device's exact architecture, device buffers, and
//! typed launchers that pass the arguments in the order the `.cu` signatures declare.
//!
//! The modules are CUBINs for `sm_XY` of the device (NVRTC runs ptxas itself), so a driver older
//! than the NVRTC wheel still loads them; if a CUBIN cannot be built, the PTX for `compute_XY`
//! is loaded instead and the driver compiles it.
//!
//! Everything here returns `Err` with a message instead of panicking: [`Gpu::open`] first asks
//! [`super::device::probe`], which never panics, whether a driver and a device exist.

use super::device::{probe, DriverStatus};
use super::nvrtc::{compile_cached, Target};
/// The GEMM ladder lives with the rest of the GEMM, in `gemm/cuda.rs`.
pub use crate::gemm::cuda::GemmKernel;
use crate::half_precision::HalfFormat;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::Ptx;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One CUDA device, ready to run strata's kernels.
pub struct Gpu {
    ordinal: usize,
    name: String,
    /// Compute capability as `10 * major + minor` (80 for an A100, 90 for an H100).
    arch: u32,
    context: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cuda:{} {} (sm_{})", self.ordinal, self.name, self.arch)
    }
}

fn driver(what: &str, e: impl std::fmt::Debug) -> String {
    format!("CUDA {what} failed: {e:?}")
}

impl Gpu {
    /// Opens device `ordinal`. `Err` says why there is none: no driver library, no device,
    /// an ordinal past the last device, or a driver error.
    pub fn open(ordinal: usize) -> Result<Gpu, String> {
        let devices = match probe() {
            DriverStatus::Devices(devices) => devices,
            other => return Err(other.to_string()),
        };
        let info = devices.get(ordinal).ok_or_else(|| {
            format!(
                "there is no cuda:{ordinal}; this machine has {} CUDA device(s)",
                devices.len()
            )
        })?;
        let context = CudaContext::new(ordinal).map_err(|e| driver("context creation", e))?;
        let stream = context.default_stream();
        let (major, minor) = info.compute_capability;
        Ok(Gpu {
            ordinal,
            name: info.name.clone(),
            arch: (10 * major + minor) as u32,
            context,
            stream,
            modules: Mutex::new(HashMap::new()),
        })
    }

    /// The device's name, as the driver reports it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Compute capability as `10 * major + minor`.
    pub fn arch(&self) -> u32 {
        self.arch
    }

    /// The stream every launch and copy of this device is queued on.
    pub(crate) fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The module of `kernels/<file>`, compiled and loaded on first use.
    fn module(&self, file: &'static str) -> Result<Arc<CudaModule>, String> {
        let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(module) = modules.get(file) {
            return Ok(module.clone());
        }
        let cubin = compile_cached(file, Target::Cubin(self.arch));
        let module = match cubin.as_ref() {
            Ok(compiled) if compiled.cubin.is_some() => {
                let image = compiled.cubin.clone().unwrap_or_default();
                self.context.load_module(Ptx::from_binary(image))
            }
            _ => {
                // No CUBIN for this architecture (an NVRTC too old for the device, say): hand
                // the driver PTX for the matching virtual architecture.
                let ptx = compile_cached(file, Target::Ptx(self.arch));
                let compiled = ptx.as_ref().as_ref().map_err(|e| e.clone())?;
                self.context
                    .load_module(Ptx::from_src(compiled.ptx.clone()))
            }
        }
        .map_err(|e| driver(&format!("loading kernels/{file}"), e))?;
        modules.insert(file, module.clone());
        Ok(module)
    }

    /// Kernel `name` of `kernels/<file>`.
    pub fn function(&self, file: &'static str, name: &str) -> Result<CudaFunction, String> {
        self.module(file)?
            .load_function(name)
            .map_err(|e| driver(&format!("finding {name} in kernels/{file}"), e))
    }

    /// Copies `values` to a new device buffer.
    pub fn upload(&self, values: &[f32]) -> Result<CudaSlice<f32>, String> {
        self.stream
            .clone_htod(values)
            .map_err(|e| driver("host-to-device copy", e))
    }

    /// Copies 16-bit values (f16 or bf16 bits) to a new device buffer.
    pub fn upload_half(&self, bits: &[u16]) -> Result<CudaSlice<u16>, String> {
        self.stream
            .clone_htod(bits)
            .map_err(|e| driver("host-to-device copy", e))
    }

    /// A new device buffer of `len` zeros.
    pub fn zeros(&self, len: usize) -> Result<CudaSlice<f32>, String> {
        self.stream
            .alloc_zeros(len)
            .map_err(|e| driver(&format!("allocating {len} floats"), e))
    }

    /// Copies a device buffer back (waits for the work queued before it).
    pub fn download(&self, buffer: &CudaSlice<f32>) -> Result<Vec<f32>, String> {
        self.stream
            .clone_dtoh(buffer)
            .map_err(|e| driver("device-to-host copy", e))
    }

    /// Waits until every queued kernel and copy has finished.
    pub fn synchronize(&self) -> Result<(), String> {
        self.stream
            .synchronize()
            .map_err(|e| driver("synchronize", e))
    }

    /// `C[m,n] = A[m,k] · B[k,n]`, all row-major and contiguous, with one rung of the GEMM
    /// ladder. Queued on the device's stream; [`Gpu::download`] or [`Gpu::synchronize`] waits.
    pub fn gemm(
        &self,
        kernel: GemmKernel,
        shape: (usize, usize, usize),
        a: &CudaSlice<f32>,
        b: &CudaSlice<f32>,
        c: &mut CudaSlice<f32>,
    ) -> Result<(), String> {
        let launch = kernel.launch(shape.0, shape.1);
        let config = LaunchConfig {
            grid_dim: launch.grid.into(),
            block_dim: launch.block.into(),
            shared_mem_bytes: 0,
        };
        self.launch_gemm(("gemm.cu", kernel.name()), config, shape, a, b, c)
    }

    /// `C[m,n] = A[m,k] · B[k,n]` with `A` and `B` in 16-bit `format` (row-major, contiguous)
    /// and `C` in f32, by `hgemm_f16` / `hgemm_bf16` of `kernels/half_precision.cu`: f32
    /// accumulation.
    pub fn gemm_half(
        &self,
        format: HalfFormat,
        (m, n, k): (usize, usize, usize),
        a: &CudaSlice<u16>,
        b: &CudaSlice<u16>,
        c: &mut CudaSlice<f32>,
    ) -> Result<(), String> {
        let name = match format {
            HalfFormat::F16 => "hgemm_f16",
            HalfFormat::Bf16 => "hgemm_bf16",
        };
        let config = LaunchConfig {
            grid_dim: (n.div_ceil(16) as u32, m.div_ceil(16) as u32, 1),
            block_dim: (16, 16, 1),
            shared_mem_bytes: 0,
        };
        self.launch_gemm(("half_precision.cu", name), config, (m, n, k), a, b, c)
    }

    /// Checks the sizes and launches `file`'s kernel `name`, whose parameters are
    /// `(int m, int n, int k, float alpha, const T* a, int rsa, int csa, const T* b, int rsb,
    /// int csb, float beta, float* c, int rsc, int csc)`, for contiguous row-major operands.
    fn launch_gemm<T>(
        &self,
        (file, name): (&'static str, &str),
        config: LaunchConfig,
        (m, n, k): (usize, usize, usize),
        a: &CudaSlice<T>,
        b: &CudaSlice<T>,
        c: &mut CudaSlice<f32>,
    ) -> Result<(), String> {
        let fits = |x: usize| i32::try_from(x).is_ok();
        if !(fits(m * k) && fits(k * n) && fits(m * n)) {
            return Err(format!(
                "{name} {m}x{n}x{k}: the kernels index with int; every operand must have fewer \
                 than 2^31 elements"
            ));
        }
        for (what, len, want) in [
            ("A", a.len(), m * k),
            ("B", b.len(), k * n),
            ("C", c.len(), m * n),
        ] {
            if len < want {
                return Err(format!(
                    "{name} {m}x{n}x{k}: {what} has {len} elements, needs {want}"
                ));
            }
        }
        if m == 0 || n == 0 {
            return Ok(());
        }
        let function = self.function(file, name)?;
        let (mi, ni, ki) = (m as i32, n as i32, k as i32);
        let (alpha, beta) = (1.0f32, 0.0f32);
        let (one, lda, ldb, ldc) = (1i32, ki, ni, ni);
        let mut launch = self.stream.launch_builder(&function);
        launch
            .arg(&mi)
            .arg(&ni)
            .arg(&ki)
            .arg(&alpha)
            .arg(a)
            .arg(&lda)
            .arg(&one)
            .arg(b)
            .arg(&ldb)
            .arg(&one)
            .arg(&beta)
            .arg(c)
            .arg(&ldc)
            .arg(&one);
        // SAFETY: the arguments match the kernel's parameter list above, in order and type (T
        // is float for gemm.cu's ladder, unsigned short for half_precision.cu's hgemm_*); the
        // buffers hold at least m·k, k·n and m·n elements (checked above) and the strides
        // address nothing beyond them.
        unsafe { launch.launch(config) }
            .map(|_| ())
            .map_err(|e| driver(&format!("launching {name}"), e))
    }
}
