//! Assembling the NVRTC PTX with `ptxas` (from `scripts/cuda-tools.sh`) for a resource report:
//! registers, shared memory, stack and spills per kernel and architecture. Spills fail
//! (`--warn-on-spills -Werror`).

use super::nvrtc::{compile_cached, Target};
use super::sources::SOURCES;
use std::path::PathBuf;
use std::process::Command;

/// The architectures every kernel is assembled for.
pub const ARCHES: &[u32] = &[80, 90];

/// One kernel on one architecture.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Row {
    /// The source file, e.g. `kernels/gemm.cu`.
    pub file: String,
    /// The kernel's entry name (its `extern "C"` name).
    pub kernel: String,
    /// e.g. `sm_80`.
    pub arch: String,
    /// Registers per thread.
    pub registers: u32,
    /// Static shared memory per block, in bytes.
    pub shared_bytes: u32,
    /// Stack frame per thread, in bytes.
    pub stack_bytes: u32,
    /// Bytes of register spill stores per thread (0 unless registers ran out).
    pub spill_stores: u32,
    /// Bytes of register spill loads per thread (0 unless registers ran out).
    pub spill_loads: u32,
}

/// `$STRATA_PTXAS`, else `.cuda-tools/nvidia/cuda_nvcc/bin/ptxas`, if it exists.
pub fn ptxas_path() -> Result<PathBuf, String> {
    let p = match std::env::var_os("STRATA_PTXAS") {
        Some(p) => PathBuf::from(p),
        None => super::tools_dir().join("nvidia/cuda_nvcc/bin/ptxas"),
    };
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "ptxas not found at {}: run scripts/cuda-tools.sh (or set STRATA_PTXAS)",
            p.display()
        ))
    }
}

/// Parses `ptxas -v` output (also NVRTC's log with `--ptxas-options=-v`).
pub fn parse_verbose(file: &str, log: &str) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let num_before = |line: &str, unit: &str| -> u32 {
        line.find(unit)
            .and_then(|i| line[..i].split_whitespace().last()?.parse().ok())
            .unwrap_or(0)
    };
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let mut parts = rest.split('\'');
            let kernel = parts.next().unwrap_or("").to_string();
            let arch = parts.nth(1).unwrap_or("").to_string();
            rows.push(Row {
                file: file.to_string(),
                kernel,
                arch,
                ..Row::default()
            });
        } else if let Some(row) = rows.last_mut() {
            if line.contains("bytes stack frame") {
                row.stack_bytes = num_before(line, "bytes stack frame");
                row.spill_stores = num_before(line, "bytes spill stores");
                row.spill_loads = num_before(line, "bytes spill loads");
            } else if line.contains("Used") && line.contains("registers") {
                row.registers = num_before(line, "registers");
                row.shared_bytes = num_before(line, "bytes smem");
            }
        }
    }
    rows
}

/// Assembles one PTX module for `sm_<arch>` with `-v --warn-on-spills -Werror`. `Ok` holds the
/// rows; `Err` holds ptxas's complaint (a spill, or invalid PTX) and the kernels that spill.
pub fn assemble(file: &str, ptx: &str, arch: u32) -> Result<Vec<Row>, String> {
    let ptxas = ptxas_path()?;
    let dir = std::env::temp_dir().join(format!("strata-ptxas-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let stem = file.trim_start_matches("kernels/").replace(['/', '.'], "_");
    let input = dir.join(format!("{stem}.sm_{arch}.ptx"));
    let output = dir.join(format!("{stem}.sm_{arch}.cubin"));
    std::fs::write(&input, ptx).map_err(|e| format!("{}: {e}", input.display()))?;
    let run = Command::new(&ptxas)
        .arg(format!("-arch=sm_{arch}"))
        .args(["-v", "--warn-on-spills", "-Werror", "-o"])
        .arg(&output)
        .arg(&input)
        .output()
        .map_err(|e| format!("running {}: {e}", ptxas.display()));
    let _ = std::fs::remove_file(&input);
    let _ = std::fs::remove_file(&output);
    let run = run?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let rows = parse_verbose(file, &log);
    if run.status.success() {
        Ok(rows)
    } else {
        let spilling: Vec<String> = rows
            .iter()
            .filter(|r| r.spill_stores + r.spill_loads > 0)
            .map(|r| {
                format!(
                    "{} ({} B stores, {} B loads)",
                    r.kernel, r.spill_stores, r.spill_loads
                )
            })
            .collect();
        Err(format!(
            "ptxas -arch=sm_{arch} failed on {file} ({}); kernels that spill: [{}]\n{log}",
            run.status,
            spilling.join(", ")
        ))
    }
}

/// NVRTC (compute_XY PTX, cached) then ptxas for every embedded file and every [`ARCHES`].
/// Collects all rows; `Err` lists every failure.
pub fn report() -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (file, _) in SOURCES {
        for &arch in ARCHES {
            let compiled = compile_cached(file, Target::Ptx(arch));
            match compiled.as_ref() {
                Err(e) => errors.push(e.clone()),
                Ok(c) => match assemble(&c.file, &c.ptx, arch) {
                    Ok(r) => rows.extend(r),
                    Err(e) => errors.push(e),
                },
            }
        }
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors.join("\n\n"))
    }
}

/// The rows as an aligned text table.
pub fn format_table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<22} {:<31} {:>5} {:>5} {:>10} {:>7} {:>13}\n",
        "file", "kernel", "arch", "regs", "smem (B)", "stack", "spill st/ld"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<22} {:<31} {:>5} {:>5} {:>10} {:>7} {:>13}\n",
            r.file,
            r.kernel,
            r.arch.trim_start_matches("sm_"),
            r.registers,
            r.shared_bytes,
            r.stack_bytes,
            format!("{}/{}", r.spill_stores, r.spill_loads)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_verbose_output() {
        let log = "ptxas info    : 0 bytes gmem\n\
            ptxas info    : Compiling entry function 'k' for 'sm_80'\n\
            ptxas info    : Function properties for k\n\
            \x20   16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads\n\
            ptxas info    : Used 40 registers, 1024 bytes smem, 380 bytes cmem[0]\n";
        let rows = super::parse_verbose("kernels/x.cu", log);
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.kernel.as_str(), r.arch.as_str()), ("k", "sm_80"));
        assert_eq!((r.registers, r.shared_bytes, r.stack_bytes), (40, 1024, 16));
        assert_eq!((r.spill_stores, r.spill_loads), (8, 4));
    }
}
