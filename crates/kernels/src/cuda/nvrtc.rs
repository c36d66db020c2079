//! Compiling kernel sources with NVRTC (through cudarc, loaded at run time: no toolkit needed
//! to build, and no GPU needed to compile).
//!
//! Finding the library: cudarc `dlopen`s `libnvrtc.so`, `libnvrtc.so.12`, ... by plain name, so
//! normally `LD_LIBRARY_PATH` decides and cannot be changed once the process runs. Before the
//! first NVRTC call this module therefore loads the library by absolute path from
//! `$STRATA_NVRTC_LIB` (a file or a folder) or else `.cuda-tools/nvidia/cuda_nvrtc/lib`
//! (see [`super::tools_dir`]); the dynamic loader then hands cudarc that already-loaded
//! library when it asks for `libnvrtc.so.12` (matched by SONAME). With neither present,
//! `LD_LIBRARY_PATH` and the system paths are used as usual.

use cudarc::nvrtc::{result, sys};
use std::collections::HashMap;
use std::ffi::{c_char, CStr, CString};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// What to produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// PTX for a virtual architecture: `--gpu-architecture=compute_XY` (e.g. `Ptx(80)`).
    Ptx(u32),
    /// A CUBIN for a real architecture, `--gpu-architecture=sm_XY`, with NVRTC's internal
    /// ptxas run with `-v` so the log holds registers / shared memory / spills per kernel.
    Cubin(u32),
}

/// The result of one compilation.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// `kernels/<file>`.
    pub file: String,
    /// What was asked for: PTX only, or PTX plus a CUBIN.
    pub target: Target,
    /// PTX text (also present for CUBIN targets).
    pub ptx: String,
    /// The CUBIN for [`Target::Cubin`].
    pub cubin: Option<Vec<u8>>,
    /// NVRTC's program log (warnings; the ptxas `-v` report for CUBIN targets).
    pub log: String,
}

impl Compiled {
    /// Names of the `.entry` functions (kernels) in the PTX.
    pub fn entries(&self) -> Vec<String> {
        ptx_entries(&self.ptx)
    }
}

/// The kernel names declared by `.entry` lines of a PTX module.
pub fn ptx_entries(ptx: &str) -> Vec<String> {
    ptx.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let rest = l
                .strip_prefix(".visible .entry ")
                .or_else(|| l.strip_prefix(".entry "))?;
            Some(rest.split(['(', ' ']).next().unwrap_or("").to_string())
        })
        .collect()
}

/// Where NVRTC was found, or why it was not. Never panics; computed once per process.
pub fn availability() -> Result<String, String> {
    static PROBE: OnceLock<Result<String, String>> = OnceLock::new();
    PROBE.get_or_init(probe).clone()
}

fn candidate_libraries() -> Vec<PathBuf> {
    let mut dirs_or_files = Vec::new();
    if let Some(p) = std::env::var_os("STRATA_NVRTC_LIB") {
        dirs_or_files.push(PathBuf::from(p));
    }
    dirs_or_files.push(super::tools_dir().join("nvidia/cuda_nvrtc/lib"));
    let mut out = Vec::new();
    for p in dirs_or_files {
        if p.is_dir() {
            for name in ["libnvrtc.so.12", "libnvrtc.so"] {
                out.push(p.join(name));
            }
        } else {
            out.push(p);
        }
    }
    out.into_iter().filter(|p| p.is_file()).collect()
}

fn probe() -> Result<String, String> {
    let mut loaded = None;
    for path in candidate_libraries() {
        // SAFETY: loading NVRTC runs only its (trivial) initialisers.
        if let Ok(lib) = unsafe { libloading::Library::new(&path) } {
            // Kept loaded for the life of the process, so cudarc's dlopen finds it.
            std::mem::forget(lib);
            loaded = Some(path);
            break;
        }
    }
    // SAFETY: only tries to dlopen candidate names; never panics.
    let present = unsafe { sys::is_culib_present() };
    if !present {
        return Err(format!(
            "NVRTC (libnvrtc.so.12) not found: run scripts/cuda-tools.sh (installs it into {}), \
             or set STRATA_NVRTC_LIB to the library or its folder, or put its folder on \
             LD_LIBRARY_PATH",
            super::tools_dir().join("nvidia/cuda_nvrtc/lib").display()
        ));
    }
    let version = std::panic::catch_unwind(|| {
        let (mut major, mut minor) = (0, 0);
        // SAFETY: two out-pointers to live integers.
        unsafe { sys::nvrtcVersion(&mut major, &mut minor) }
            .result()
            .map(|_| format!("{major}.{minor}"))
    });
    match version {
        Ok(Ok(v)) => Ok(match loaded {
            Some(p) => format!("NVRTC {v} from {}", p.display()),
            None => format!("NVRTC {v} from the library search path"),
        }),
        Ok(Err(e)) => Err(format!("NVRTC is present but nvrtcVersion failed: {e:?}")),
        Err(_) => Err("NVRTC is present but could not be loaded (missing symbols?)".into()),
    }
}

fn log_of(prog: sys::nvrtcProgram) -> String {
    // SAFETY: `prog` is a live program.
    match unsafe { result::get_program_log(prog) } {
        Ok(bytes) => c_chars_to_string(&bytes),
        Err(e) => format!("(no log: {e:?})"),
    }
}

/// The text of a NUL-terminated C string buffer (`c_char` is `i8` or `u8`: the same bytes).
fn c_chars_to_string(chars: &[c_char]) -> String {
    let bytes: &[u8] = bytemuck::cast_slice(chars);
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end])
        .trim_end()
        .to_string()
}

/// Compiles `source` (the plain contents of `kernels/<file>`; the prelude is added here).
/// `Err` carries NVRTC's log, which names `kernels/<file>` and the line.
pub fn compile(file: &str, source: &str, target: Target) -> Result<Compiled, String> {
    availability()?;
    let shown = format!("kernels/{file}");
    let full = super::sources::with_prelude(file, source);
    let src = CString::new(full).map_err(|_| format!("{shown}: source contains a NUL byte"))?;
    let name = CString::new(shown.clone()).unwrap();
    // Fused multiply-adds only in the GEMMs, which live on FMA throughput and are compared
    // with their CPU twins within a tolerance. Everywhere else products and sums are rounded
    // separately, as the CPU twins round them, so that elementwise ops,
    // optimizer steps and batch norm can match the CPU bit for bit.
    let fmad = matches!(file, "gemm.cu" | "half_precision.cu");
    let mut options = vec!["--std=c++17".to_string(), format!("--fmad={fmad}")];
    match target {
        Target::Ptx(arch) => {
            options.push(format!("--gpu-architecture=compute_{arch}"));
            options.push("--generate-line-info".into());
        }
        Target::Cubin(arch) => {
            options.push(format!("--gpu-architecture=sm_{arch}"));
            options.push("--ptxas-options=-v".into());
        }
    }
    let prog = create_program(&src, &name)
        .map_err(|e| format!("{shown}: nvrtcCreateProgram failed: {e:?}"))?;
    // SAFETY: `prog` is live until destroy_program below; src/name outlive it.
    let compiled = unsafe { result::compile_program(prog, &options) };
    let log = log_of(prog);
    let outcome = match compiled {
        Err(e) => Err(format!(
            "NVRTC failed to compile {shown} ({}): {e:?}\n{log}",
            options.join(" ")
        )),
        Ok(()) => {
            // SAFETY: compiled successfully.
            let ptx = unsafe { result::get_ptx(prog) }
                .map(|p| c_chars_to_string(&p))
                .map_err(|e| format!("{shown}: nvrtcGetPTX failed: {e:?}"));
            let cubin = match target {
                Target::Ptx(_) => Ok(None),
                Target::Cubin(_) => get_cubin(prog).map(Some),
            };
            match (ptx, cubin) {
                (Ok(ptx), Ok(cubin)) => Ok(Compiled {
                    file: shown.clone(),
                    target,
                    ptx,
                    cubin,
                    log,
                }),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        }
    };
    // SAFETY: created above, destroyed once.
    let _ = unsafe { result::destroy_program(prog) };
    outcome
}

/// A program for `src` that can `#include` every `kernels/*.cuh` header by its file name
/// (NVRTC has no file system access of its own: the headers are handed over as strings).
fn create_program(src: &CStr, name: &CStr) -> Result<sys::nvrtcProgram, result::NvrtcError> {
    let headers: Vec<(CString, CString)> = super::sources::HEADERS
        .iter()
        .map(|(file, text)| {
            let text = CString::new(*text).expect("kernels/*.cuh contain no NUL byte");
            (CString::new(*file).expect("a file name without NUL"), text)
        })
        .collect();
    let names: Vec<*const c_char> = headers.iter().map(|(n, _)| n.as_ptr()).collect();
    let texts: Vec<*const c_char> = headers.iter().map(|(_, t)| t.as_ptr()).collect();
    let mut prog = std::mem::MaybeUninit::uninit();
    // SAFETY: `src`, `name` and the `headers.len()` entries of `texts` and `names` are
    // NUL-terminated strings that outlive the call (NVRTC copies them); `prog` is written on
    // success, and read only then.
    unsafe {
        sys::nvrtcCreateProgram(
            prog.as_mut_ptr(),
            src.as_ptr(),
            name.as_ptr(),
            headers.len() as i32,
            texts.as_ptr(),
            names.as_ptr(),
        )
        .result()?;
        Ok(prog.assume_init())
    }
}

fn get_cubin(prog: sys::nvrtcProgram) -> Result<Vec<u8>, String> {
    let mut size = 0usize;
    // SAFETY: `prog` compiled for a real architecture; the buffer has the reported size.
    unsafe {
        sys::nvrtcGetCUBINSize(prog, &mut size)
            .result()
            .map_err(|e| format!("nvrtcGetCUBINSize failed: {e:?}"))?;
        let mut buf = vec![0u8; size];
        sys::nvrtcGetCUBIN(prog, buf.as_mut_ptr() as *mut c_char)
            .result()
            .map_err(|e| format!("nvrtcGetCUBIN failed: {e:?}"))?;
        Ok(buf)
    }
}

type CacheKey = (String, Target);
type Cache = Mutex<HashMap<CacheKey, Arc<Result<Compiled, String>>>>;

/// [`compile`] of the embedded `kernels/<file>`, once per process per file and target, so
/// compilation is never inside a timed region (call it before timing).
pub fn compile_cached(file: &str, target: Target) -> Arc<Result<Compiled, String>> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (file.to_string(), target);
    if let Some(hit) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return hit.clone();
    }
    let compiled = Arc::new(match super::sources::source(file) {
        Some(src) => compile(file, src, target),
        None => Err(format!("no kernel source kernels/{file} is embedded")),
    });
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key)
        .or_insert(compiled)
        .clone()
}
