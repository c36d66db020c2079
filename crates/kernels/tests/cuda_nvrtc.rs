//! Every kernels/*.cu file compiles under NVRTC (no GPU needed), for compute_80 and compute_90,
//! and the kernels NVRTC emits are exactly the `__global__` functions of the sources.
//!
//! NVRTC comes from scripts/cuda-tools.sh. Missing NVRTC skips these tests with the reason
//! (`test_skip`), except under CI=true, where it fails them.
#![cfg(feature = "cuda")]

use strata_kernels::cuda::nvrtc::{self, compile_cached, Target};
use strata_kernels::cuda::ptxas::parse_verbose;
use strata_kernels::cuda::sources::{kernel_count, kernel_names, SOURCES};
use strata_kernels::test_skip::{skip, Reason};

fn nvrtc_or_skip() -> bool {
    match nvrtc::availability() {
        Ok(found) => {
            eprintln!("using {found}");
            true
        }
        Err(why) => {
            skip(Reason::ToolsAbsent(why));
            false
        }
    }
}

#[test]
fn every_kernel_file_compiles_for_compute_80_and_90() {
    if !nvrtc_or_skip() {
        return;
    }
    let start = std::time::Instant::now();
    let mut failures = Vec::new();
    let mut ptx_entries = 0;
    for (file, names) in kernel_names() {
        for arch in [80, 90] {
            match compile_cached(file, Target::Ptx(arch)).as_ref() {
                Err(log) => failures.push(log.clone()),
                Ok(c) => {
                    let mut entries = c.entries();
                    entries.sort();
                    let mut declared = names.clone();
                    declared.sort();
                    assert_eq!(
                        entries, declared,
                        "kernels/{file} compute_{arch}: PTX .entry names differ from the \
                         __global__ functions of the source"
                    );
                    if arch == 80 {
                        ptx_entries += entries.len();
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(ptx_entries, kernel_count());
    println!(
        "{ptx_entries} kernels in {} files compiled (compute_80 + compute_90) in {:.2} s",
        SOURCES.len(),
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn a_compile_error_shows_the_file_and_line() {
    if !nvrtc_or_skip() {
        return;
    }
    let src = "extern \"C\" __global__ void k(float* x) {\n    x[0] = not_declared;\n}\n";
    let err = nvrtc::compile("broken.cu", src, Target::Ptx(80)).unwrap_err();
    assert!(err.contains("kernels/broken.cu(2)"), "{err}");
    assert!(err.contains("not_declared"), "{err}");
}

#[test]
fn cubin_for_sm_90_comes_with_the_ptxas_report() {
    if !nvrtc_or_skip() {
        return;
    }
    let c = compile_cached("reduce.cu", Target::Cubin(90));
    let c = c.as_ref().as_ref().unwrap();
    assert!(c.cubin.as_ref().is_some_and(|b| b.starts_with(b"\x7fELF")));
    let rows = parse_verbose(&c.file, &c.log);
    let names: Vec<&str> = rows.iter().map(|r| r.kernel.as_str()).collect();
    assert!(names.contains(&"reduce_max_rows"), "{}", c.log);
    assert!(rows.iter().all(|r| r.registers > 0 && r.arch == "sm_90"));
}
