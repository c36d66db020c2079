//! The virtual device against planted bugs (`kernels/sim/planted.cu`: each bug beside a correct
//! control that must pass every check), and the decoder against every product kernel.

use super::exec::{Check, Options, SimError};
use super::*;
use crate::cuda::{nvrtc, sources};

const PLANTED: &str = include_str!("../../../../../kernels/sim/planted.cu");
const FILE: &str = "sim/planted.cu";

fn planted() -> Simulator {
    let compiled = nvrtc::compile(FILE, PLANTED, nvrtc::Target::Ptx(DEFAULT_ARCH))
        .unwrap_or_else(|e| panic!("{e}"));
    let sim = Simulator::new(DEFAULT_ARCH);
    sim.load_ptx(FILE, &compiled.ptx).unwrap();
    sim
}

fn upload(sim: &Simulator, values: &[f32]) -> u64 {
    let ptr = sim.alloc(std::mem::size_of_val(values) as u64);
    sim.write(ptr, bytemuck::cast_slice(values)).unwrap();
    ptr
}

fn zeros(sim: &Simulator, n: usize) -> u64 {
    let ptr = sim.alloc(4 * n as u64);
    sim.fill(ptr, 0, 4 * n as u64).unwrap();
    ptr
}

fn download(sim: &Simulator, ptr: u64, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    sim.read(ptr, bytemuck::cast_slice_mut(&mut out)).unwrap();
    out
}

fn launch(
    sim: &Simulator,
    kernel: &str,
    grid: u32,
    block: u32,
    args: &[ArgValue],
) -> Result<(), SimError> {
    sim.launch(FILE, kernel, [grid, 1, 1], [block, 1, 1], args)
        .map(|_| ())
}

/// Asserts the launch failed the `check`, with every `words` in the message.
fn expect(outcome: Result<(), SimError>, check: Check, words: &[&str]) {
    let e = outcome.expect_err("the planted bug was not caught");
    assert_eq!(e.check, check, "{e}");
    let message = e.to_string();
    for w in words {
        assert!(message.contains(w), "`{w}` missing from: {message}");
    }
}

fn ramp(n: usize) -> Vec<f32> {
    (0..n).map(|i| i as f32 * 0.5 - 3.0).collect()
}

#[test]
fn a_missing_barrier_is_a_shared_memory_race() {
    let sim = planted();
    let x = upload(&sim, &ramp(512));
    let out = zeros(&sim, 2);
    let args = [ArgValue::Ptr(x), ArgValue::Ptr(out)];
    launch(&sim, "sum_rows_ok", 2, 256, &args).unwrap();
    let sums = download(&sim, out, 2);
    let want: Vec<f32> = ramp(512).chunks(256).map(|r| r.iter().sum()).collect();
    assert_eq!(sums, want);
    expect(
        launch(&sim, "sum_rows_missing_barrier", 2, 256, &args),
        Check::Racecheck,
        &[
            "read-after-write",
            "shared memory",
            "`s`",
            "kernels/sim/planted.cu:",
        ],
    );
}

#[test]
fn a_warp_overtaking_another_is_a_race_across_warps() {
    let sim = planted();
    let x = upload(&sim, &ramp(64));
    let out = zeros(&sim, 64);
    let args = [ArgValue::Ptr(x), ArgValue::Ptr(out)];
    launch(&sim, "reverse_ok", 1, 64, &args).unwrap();
    let mut want = ramp(64);
    want.reverse();
    assert_eq!(download(&sim, out, 64), want);
    // Within one warp, __syncwarp does order the lanes.
    launch(&sim, "publish_in_warp", 1, 64, &args).unwrap();
    let got = download(&sim, out, 64);
    assert!(
        got[..32].iter().all(|&v| v == ramp(64)[0]) && got[32..].iter().all(|&v| v == ramp(64)[32])
    );
    // __syncwarp orders the lanes of one warp, not the two warps. Whichever warp the seeded
    // schedule runs first, the hazard is found: read-after-write when the writer went
    // first, write-after-read when the reader overtook it (initcheck, which would also
    // catch the second case, is off to show that racecheck alone sees both).
    let mut kinds = std::collections::BTreeSet::new();
    for seed in 0..8 {
        sim.set_options(Options {
            seed,
            initcheck: false,
            ..Options::default()
        });
        let e = launch(&sim, "reverse_warp_overtaking", 1, 64, &args).unwrap_err();
        assert_eq!(e.check, Check::Racecheck, "seed {seed}: {e}");
        assert!(e.message.contains("with no barrier between them"), "{e}");
        kinds.insert(
            e.message
                .split(" hazard")
                .next()
                .unwrap()
                .rsplit(": ")
                .next()
                .unwrap()
                .to_string(),
        );
    }
    eprintln!("warp-overtaking race seen as: {kinds:?}");
}

#[test]
fn a_ragged_edge_overrun_names_the_allocation_it_ran_past() {
    let sim = planted();
    let n = 100;
    let x = upload(&sim, &ramp(n));
    let y = zeros(&sim, n);
    let args = [ArgValue::Ptr(x), ArgValue::Ptr(y), ArgValue::U32(n as u32)];
    launch(&sim, "scale_ok", 4, 32, &args).unwrap();
    let want: Vec<f32> = ramp(n).iter().map(|v| 2.0 * v).collect();
    assert_eq!(download(&sim, y, n), want);
    expect(
        launch(&sim, "scale_ragged_overrun", 4, 32, &args),
        Check::Memcheck,
        &[
            "out-of-bounds global load of 4 bytes",
            "0 bytes past the end of allocation",
            "thread (4, 0, 0) of block (3, 0, 0)",
        ],
    );
}

#[test]
fn a_misaligned_vector_load_is_reported() {
    let sim = planted();
    let x = upload(&sim, &ramp(64));
    let y = zeros(&sim, 8);
    let with = |offset: u32| [ArgValue::Ptr(x), ArgValue::Ptr(y), ArgValue::U32(offset)];
    launch(&sim, "load4", 1, 8, &with(4)).unwrap();
    let xs = ramp(64);
    let want: Vec<f32> = (0..8)
        .map(|i| xs[4 + 4 * i..8 + 4 * i].iter().sum())
        .collect();
    assert_eq!(download(&sim, y, 8), want);
    expect(
        launch(&sim, "load4", 1, 8, &with(1)),
        Check::Memcheck,
        &["misaligned global load of 16 bytes", "ld.global"],
    );
}

#[test]
fn reading_memory_nobody_wrote_is_an_initcheck_error() {
    let sim = planted();
    let x = upload(&sim, &ramp(64));
    let out = zeros(&sim, 64);
    let with = |written: u32| [ArgValue::Ptr(x), ArgValue::Ptr(out), ArgValue::U32(written)];
    launch(&sim, "partly_written", 1, 64, &with(64)).unwrap();
    expect(
        launch(&sim, "partly_written", 1, 64, &with(40)),
        Check::Initcheck,
        &["uninitialised shared memory", "byte 160 of `s`"],
    );
    // Device memory: an allocation never copied to nor written.
    let garbage = sim.alloc(4 * 100);
    let y = zeros(&sim, 100);
    expect(
        launch(
            &sim,
            "scale_ok",
            4,
            32,
            &[ArgValue::Ptr(garbage), ArgValue::Ptr(y), ArgValue::U32(100)],
        ),
        Check::Initcheck,
        &["uninitialised global memory"],
    );
}

#[test]
fn a_barrier_only_some_threads_reach_is_a_synccheck_error() {
    let sim = planted();
    let out = zeros(&sim, 64);
    launch(
        &sim,
        "barrier_below",
        1,
        64,
        &[ArgValue::Ptr(out), ArgValue::U32(64)],
    )
    .unwrap();
    assert_eq!(download(&sim, out, 64), vec![2.0; 64]);
    expect(
        launch(
            &sim,
            "barrier_below",
            1,
            64,
            &[ArgValue::Ptr(out), ArgValue::U32(16)],
        ),
        Check::Synccheck,
        &["divergent barrier", "16 wait there", "48 exited"],
    );
}

#[test]
fn a_thread_spinning_on_a_flag_nobody_sets_is_a_deadlock() {
    let sim = planted();
    sim.set_options(Options {
        budget: 200_000,
        ..Options::default()
    });
    let out = zeros(&sim, 64);
    expect(
        launch(&sim, "spin_on_flag", 1, 64, &[ArgValue::Ptr(out)]),
        Check::Deadlock,
        &["more than 200000 warp instructions"],
    );
}

#[test]
fn a_shuffle_naming_an_exited_lane_is_a_synccheck_error() {
    let sim = planted();
    let x = upload(&sim, &ramp(32));
    let out = zeros(&sim, 32);
    let with = |gone: u32| [ArgValue::Ptr(x), ArgValue::Ptr(out), ArgValue::U32(gone)];
    launch(&sim, "warp_sum_without", 1, 32, &with(99)).unwrap();
    let total: f32 = {
        // The butterfly's order: every lane ends with the same bits.
        let got = download(&sim, out, 32);
        assert!(got.iter().all(|&v| v == got[0]));
        got[0]
    };
    assert!((total - ramp(32).iter().sum::<f32>()).abs() < 1e-4);
    expect(
        launch(&sim, "warp_sum_without", 1, 32, &with(5)),
        Check::Synccheck,
        &["names lane 5, which has exited", "shfl.sync.bfly.b32"],
    );
}

#[test]
fn launches_the_hardware_refuses_are_refused() {
    let sim = planted();
    let out = zeros(&sim, 64);
    expect(
        launch(
            &sim,
            "barrier_below",
            1,
            2048,
            &[ArgValue::Ptr(out), ArgValue::U32(1)],
        ),
        Check::Launch,
        &["2048 threads per block", "limit is 1024"],
    );
    expect(
        launch(&sim, "barrier_below", 1, 64, &[ArgValue::Ptr(out)]),
        Check::Launch,
        &["takes 2 arguments, was given 1"],
    );
    expect(
        launch(
            &sim,
            "barrier_below",
            0,
            64,
            &[ArgValue::Ptr(out), ArgValue::U32(1)],
        ),
        Check::Launch,
        &["zero dimension"],
    );
    expect(
        launch(
            &sim,
            "barrier_below",
            1,
            64,
            &[ArgValue::Ptr(out), ArgValue::F32(1.0)],
        ),
        Check::Launch,
        &["parameter 1"],
    );
}

#[test]
fn a_device_copy_keeps_the_destinations_other_written_bytes() {
    let sim = planted();
    let dst = upload(&sim, &ramp(64));
    let src = sim.alloc(4 * 32);
    sim.write(src, bytemuck::cast_slice(&ramp(16))).unwrap();
    // Bytes 64..128 of src were never written: the copy carries that over, and only that.
    sim.copy(dst, src, 4 * 32).unwrap();
    let out = zeros(&sim, 64);
    expect(
        launch(
            &sim,
            "scale_ok",
            2,
            32,
            &[ArgValue::Ptr(dst), ArgValue::Ptr(out), ArgValue::U32(64)],
        ),
        Check::Initcheck,
        &["byte 64 of allocation"],
    );
    // The bytes past the copy keep their written-bits: a launch over them alone is clean.
    let tail = dst + 4 * 32;
    launch(
        &sim,
        "scale_ok",
        1,
        32,
        &[ArgValue::Ptr(tail), ArgValue::Ptr(out), ArgValue::U32(32)],
    )
    .unwrap();
}

#[test]
fn a_freed_allocation_is_a_use_after_free() {
    let sim = planted();
    let x = upload(&sim, &ramp(32));
    let y = zeros(&sim, 32);
    sim.free(x).unwrap();
    expect(
        launch(
            &sim,
            "scale_ok",
            1,
            32,
            &[ArgValue::Ptr(x), ArgValue::Ptr(y), ArgValue::U32(32)],
        ),
        Check::Memcheck,
        &["use after free"],
    );
    assert!(sim.free(x).unwrap_err().contains("double free"));
}

/// Every kernel of `kernels/*.cu` decodes: each opcode NVRTC emitted for them is implemented.
#[test]
fn every_product_kernel_decodes_and_every_opcode_is_implemented() {
    let sim = Simulator::new(DEFAULT_ARCH);
    let mut opcodes = std::collections::BTreeSet::new();
    let mut kernels = 0;
    for (file, _) in sources::SOURCES {
        let module = sim.module(file).unwrap_or_else(|e| panic!("{e}"));
        for (name, kernel) in &module.kernels {
            if let Err(e) = kernel {
                panic!("kernels/{file}: kernel {name}: {e}");
            }
            kernels += 1;
        }
        opcodes.extend(module.opcodes.iter().cloned());
    }
    assert_eq!(
        kernels,
        sources::kernel_count(),
        "every __global__ is a PTX entry"
    );
    // Module-scope shared arrays count only for the kernels that use them, as ptxas counts.
    let gemm = sim.module("gemm.cu").unwrap();
    let shared = |k: &str| gemm.kernels[k].as_ref().unwrap().shared_bytes;
    assert_eq!(shared("sgemm_naive"), 0);
    assert_eq!(shared("sgemm_tiled"), 2 * 32 * 33 * 4);
    eprintln!(
        "cuda-sim: {kernels} kernels decode; {} distinct opcodes, all implemented",
        opcodes.len()
    );
}
