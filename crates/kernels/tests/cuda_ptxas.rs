//! ptxas assembles every kernel for sm_80 and sm_90 with no register spills
//! (`--warn-on-spills -Werror`), and prints the resource table. Needs scripts/cuda-tools.sh:
//! skipped with the reason without it (`test_skip`), failed under CI=true.
#![cfg(feature = "cuda")]

use strata_kernels::cuda::nvrtc;
use strata_kernels::cuda::ptxas::{self, format_table, ARCHES};
use strata_kernels::cuda::sources::kernel_count;
use strata_kernels::test_skip::{skip, Reason};

#[test]
fn every_kernel_assembles_for_sm_80_and_90_without_spills() {
    let tools = nvrtc::availability().and_then(|_| ptxas::ptxas_path().map(|_| ()));
    if let Err(why) = tools {
        skip(Reason::ToolsAbsent(why));
        return;
    }
    let rows = ptxas::report().unwrap_or_else(|e| panic!("{e}"));
    println!("{}", format_table(&rows));
    assert_eq!(
        rows.len(),
        kernel_count() * ARCHES.len(),
        "one row per kernel and arch"
    );
    let spilling: Vec<_> = rows
        .iter()
        .filter(|r| r.spill_stores + r.spill_loads > 0)
        .map(|r| format!("{} {}", r.kernel, r.arch))
        .collect();
    assert!(spilling.is_empty(), "kernels that spill: {spilling:?}");
}
