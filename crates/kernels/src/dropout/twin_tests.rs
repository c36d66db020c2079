//! `dropout_mask` and `dropout_forward` of kernels/dropout.cu run on the virtual
//! device (NVRTC's PTX, `cuda::sim`, every check on) against their CPU twins in [`crate::dropout`]: identical bits for
//! the mask and the output, ragged lengths against the groups of four, and a grid smaller than
//! the work for the grid-stride loop. Every guarded buffer is checked for out-of-bounds writes.

use crate::cuda::twin::{self as kernels, Guarded};
use crate::dropout;
use crate::test_support::{d, guard, i, launch, random, same_bits};
use std::time::Instant;

#[test]
fn dropout_kernels_draw_the_cpu_twins_mask_bit_for_bit() {
    let start = Instant::now();
    let seeds = [0u64, 42, 0xDEAD_BEEF_1234_5678];
    for (ni, &n) in [1usize, 3, 4, 5, 1023, 1029].iter().enumerate() {
        let mut x = random(n, -2.0, 2.0, 9900 + ni as u64);
        x[0] = -0.0; // the sign of a dropped zero must agree too
        let groups = n.div_ceil(4);
        for &seed in &seeds {
            // p exactly equal to the last (ragged) element's uniform: kept, since keep is u >= p.
            let tie = dropout::dropout_uniform(seed, (n - 1) as u64);
            for p in [0.0f32, 0.1, 0.5, 1.0, tie] {
                let what = format!("n {n} seed {seed:#x} p {p}");
                let mut twin_mask = vec![0.0; n];
                dropout::dropout_mask(seed, p, 0, &mut twin_mask);
                let mut twin_y = vec![0.0; n];
                dropout::dropout_forward(seed, p, &x, &mut twin_y);
                // The twin's mask is the documented function of (seed, index).
                for (idx, &mv) in twin_mask.iter().enumerate() {
                    let keep = dropout::dropout_uniform(seed, idx as u64) >= p;
                    assert_eq!(mv != 0.0, keep, "{what}: twin mask {idx}");
                }
                // The intended grid and a single small block striding over the groups.
                for (gx, block) in [(d(groups.div_ceil(256)), 256u32), (1, 32)] {
                    let ni = i(n);
                    let state = (Guarded::f32(&vec![f32::NAN; n]),);
                    let (mask,) = launch("dropout_mask", state, move |(mask,)| {
                        // SAFETY: a live guarded buffer of n floats.
                        unsafe {
                            kernels::dropout_mask(
                                gx,
                                1,
                                1,
                                block,
                                1,
                                1,
                                seed,
                                p,
                                0,
                                mask.mut_ptr(),
                                ni,
                            )
                        }
                    });
                    guard(&mask, "dropout_mask mask");
                    same_bits(
                        &format!("dropout_mask {what} grid {gx}"),
                        mask.as_slice(),
                        &twin_mask,
                    );

                    let state = (
                        Guarded::f32(&x),
                        Guarded::f32(&vec![f32::NAN; n]),
                        Guarded::f32(&vec![f32::NAN; n]),
                    );
                    let (gx_, y, mask) = launch("dropout_forward", state, move |(x, y, mask)| {
                        // SAFETY: live guarded buffers of n floats.
                        unsafe {
                            kernels::dropout_forward(
                                gx,
                                1,
                                1,
                                block,
                                1,
                                1,
                                seed,
                                p,
                                x.ptr(),
                                y.mut_ptr(),
                                mask.mut_ptr(),
                                ni,
                            )
                        }
                    });
                    guard(&gx_, "dropout_forward x");
                    guard(&y, "dropout_forward y");
                    guard(&mask, "dropout_forward mask");
                    same_bits(
                        &format!("dropout_forward y {what} grid {gx}"),
                        y.as_slice(),
                        &twin_y,
                    );
                    same_bits(
                        &format!("dropout_forward mask {what} grid {gx}"),
                        mask.as_slice(),
                        &twin_mask,
                    );
                }
            }
        }
    }
    println!("dropout: {:.2} s", start.elapsed().as_secs_f64());
}

/// A slice of a larger mask, starting anywhere in a Philox block (as a data-parallel rank's
/// rows do), equals that part of the whole mask, on the CPU and on the device.
#[test]
fn dropout_mask_from_an_offset_is_the_slice_of_the_whole_mask() {
    let (seed, p) = (0x5EED_u64, 0.3f32);
    let total = 1100usize;
    let mut whole = vec![0.0; total];
    dropout::dropout_mask(seed, p, 0, &mut whole);
    for (first, n) in [
        (0usize, 5usize),
        (1, 1),
        (2, 7),
        (3, 1029),
        (4, 64),
        (5, 3),
        (97, 1003),
    ] {
        let mut twin = vec![f32::NAN; n];
        dropout::dropout_mask(seed, p, first as u64, &mut twin);
        same_bits(
            &format!("CPU mask from {first}, {n} long"),
            &twin,
            &whole[first..first + n],
        );
        let (ni, first64) = (i(n), first as u64);
        let groups = (first % 4 + n).div_ceil(4);
        for (gx, block) in [(d(groups.div_ceil(256)), 256u32), (1, 32)] {
            let state = (Guarded::f32(&vec![f32::NAN; n]),);
            let (mask,) = launch("dropout_mask", state, move |(mask,)| {
                // SAFETY: a live guarded buffer of n floats.
                unsafe {
                    kernels::dropout_mask(
                        gx,
                        1,
                        1,
                        block,
                        1,
                        1,
                        seed,
                        p,
                        first64,
                        mask.mut_ptr(),
                        ni,
                    )
                }
            });
            guard(&mask, "dropout_mask mask");
            same_bits(
                &format!("device mask from {first}, {n} long, grid {gx}"),
                mask.as_slice(),
                &twin,
            );
        }
    }
}
