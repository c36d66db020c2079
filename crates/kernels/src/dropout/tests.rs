//! Philox4x32-10 against published known answers, and dropout masks: rate, scale,
//! determinism across thread counts, dependence on the seed.

use crate::dropout::{dropout_forward, dropout_mask, dropout_uniform, philox4x32_10};

/// Random123's known-answer vectors for Philox4x32-10 (its `kat_vectors` file; the same three
/// are checked by TensorFlow's `compiler/tests/stateful_random_ops_test.py`, testPhilox4x32,
/// which cites Random123-Boost's test_philox.cpp). The third counter/key are digits of pi.
#[test]
fn philox_matches_random123_known_answers() {
    let cases: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
        (
            [0, 0, 0, 0],
            [0, 0],
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
        ),
        (
            [0xffffffff; 4],
            [0xffffffff; 2],
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
        ),
        (
            [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
            [0xa4093822, 0x299f31d0],
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
        ),
    ];
    for (counter, key, expected) in cases {
        assert_eq!(
            philox4x32_10(counter, key),
            expected,
            "counter {counter:08x?} key {key:08x?}"
        );
    }
}

/// The documented mapping: element i uses word i&3 of the block for counter
/// [i>>2, i>>34, 0, 0] under key [seed low, seed high], top 24 bits scaled by 2^-24.
#[test]
fn uniform_follows_the_documented_counter_layout() {
    // Seed 0, elements 0..4: the first known-answer block.
    let kat = [0x6627e8d5u32, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8];
    for (i, w) in kat.iter().enumerate() {
        let expected = (w >> 8) as f32 / 16_777_216.0;
        assert_eq!(dropout_uniform(0, i as u64), expected);
    }
    let seed = 0x0123_4567_89ab_cdefu64;
    let key = [0x89ab_cdef, 0x0123_4567];
    for index in [
        5u64,
        4 * 1000 + 3,
        (1 << 34) + 2,
        (7 << 34) | (0xdead_beef << 2) | 1,
    ] {
        let block = philox4x32_10([(index >> 2) as u32, (index >> 34) as u32, 0, 0], key);
        let w = block[(index & 3) as usize];
        assert_eq!(
            dropout_uniform(seed, index),
            (w >> 8) as f32 / 16_777_216.0,
            "index {index}"
        );
    }
}

#[test]
fn mask_keeps_about_one_minus_p_and_scales_kept_values() {
    let n = 100_000;
    for &p in &[0.1f32, 0.5, 0.8] {
        let mut mask = vec![f32::NAN; n];
        dropout_mask(42, p, 0, &mut mask);
        let scale = 1.0 / (1.0 - p);
        let kept = mask.iter().filter(|&&m| m != 0.0).count();
        assert!(
            mask.iter().all(|&m| m == 0.0 || m == scale),
            "p {p}: mask values must be 0 or 1/(1-p)"
        );
        // Binomial(n, 1-p): the standard deviation is at most 158 for n = 1e5; allow ~6 sigma.
        let expected = (1.0 - p as f64) * n as f64;
        assert!(
            (kept as f64 - expected).abs() < 1000.0,
            "p {p}: kept {kept} of {n}, expected about {expected}"
        );
        // Every element agrees with its own uniform draw (checks chunk boundaries too).
        for (i, &m) in mask.iter().enumerate() {
            let keep = dropout_uniform(42, i as u64) >= p;
            assert_eq!(m != 0.0, keep, "p {p}: element {i}");
        }
    }
}

#[test]
fn edge_probabilities() {
    let x: Vec<f32> = (0..1003).map(|i| i as f32 - 500.0).collect();
    let mut y = vec![f32::NAN; x.len()];
    dropout_forward(7, 0.0, &x, &mut y);
    assert_eq!(y, x, "p = 0 is the identity");
    dropout_forward(7, 1.0, &x, &mut y);
    assert!(y.iter().all(|&v| v == 0.0), "p = 1 drops everything");
}

#[test]
#[should_panic(expected = "outside [0, 1]")]
fn probability_above_one_panics() {
    let mut m = vec![0.0f32; 4];
    dropout_mask(1, 1.5, 0, &mut m);
}

#[test]
fn forward_is_input_times_mask() {
    // Ragged length, longer than one rayon chunk.
    let n = 3 * (1 << 14) + 7;
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 37) % 101) as f32 / 10.0 - 5.0)
        .collect();
    let mut mask = vec![0.0f32; n];
    let mut y = vec![0.0f32; n];
    dropout_mask(99, 0.3, 0, &mut mask);
    dropout_forward(99, 0.3, &x, &mut y);
    for i in 0..n {
        assert_eq!(y[i], x[i] * mask[i], "element {i}");
    }
}

fn mask_with_threads(threads: usize, seed: u64, n: usize) -> Vec<f32> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let mut mask = vec![0.0f32; n];
    pool.install(|| dropout_mask(seed, 0.5, 0, &mut mask));
    mask
}

#[test]
fn same_seed_same_mask_at_any_thread_count() {
    let n = 200_003;
    let one = mask_with_threads(1, 1234, n);
    let two = mask_with_threads(2, 1234, n);
    let five = mask_with_threads(5, 1234, n);
    assert_eq!(one, two);
    assert_eq!(one, five);
}

#[test]
fn different_seeds_give_different_masks() {
    let n = 10_000;
    let a = mask_with_threads(2, 1, n);
    let b = mask_with_threads(2, 2, n);
    // Seeds differing only in the high word must differ too (the key uses all 64 bits).
    let c = mask_with_threads(2, 1 | (1 << 32), n);
    let differ = |u: &[f32], v: &[f32]| u.iter().zip(v).filter(|(x, y)| x != y).count();
    // Two independent p = 0.5 masks disagree on about half the elements.
    for (name, d) in [("1 vs 2", differ(&a, &b)), ("1 vs 1+2^32", differ(&a, &c))] {
        assert!(
            (4000..6000).contains(&d),
            "seeds {name}: masks differ in {d} of {n} elements"
        );
    }
}
