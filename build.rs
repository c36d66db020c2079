//! The `strata` binary, its tests and examples find NCCL in `.cuda-tools/` at run time: cudarc
//! opens it by the name `libnccl.so`, so the wheel's library folder goes into their run path
//! (`scripts/cuda-tools.sh` links that name to the wheel's `libnccl.so.2`).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=STRATA_CUDA_TOOLS");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if std::env::var_os("CARGO_FEATURE_NCCL").is_none() || !linux {
        return;
    }
    let tools = match std::env::var_os("STRATA_CUDA_TOOLS") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
            .join(".cuda-tools"),
    };
    let lib = tools.join("nvidia/nccl/lib");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
}
