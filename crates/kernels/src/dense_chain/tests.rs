//! The dense chain against a plain f64 reference, at several thread counts, on every compiled
//! form this CPU runs (bit for bit), and with bad arguments.

use super::*;
use crate::simd::Isa;

/// A deterministic pseudo-random stream in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

struct Net {
    weights: Vec<Vec<f32>>,
    biases: Vec<Option<Vec<f32>>>,
    widths: Vec<usize>,
    relu: Vec<bool>,
}

impl Net {
    fn new(widths: &[usize], bias: &[bool], relu: &[bool], seed: u64) -> Net {
        let n = widths.len() - 1;
        Net {
            weights: (0..n)
                .map(|l| values(widths[l] * widths[l + 1], seed + l as u64))
                .collect(),
            biases: (0..n)
                .map(|l| bias[l].then(|| values(widths[l + 1], seed + 100 + l as u64)))
                .collect(),
            widths: widths.to_vec(),
            relu: relu.to_vec(),
        }
    }

    fn layers(&self) -> Vec<DenseLayer<'_>> {
        (0..self.weights.len())
            .map(|l| DenseLayer {
                weight: &self.weights[l],
                bias: self.biases[l].as_deref(),
                inputs: self.widths[l],
                outputs: self.widths[l + 1],
                relu: self.relu[l],
            })
            .collect()
    }

    /// Output, input gradient (when asked for) and every weight then bias gradient, by
    /// the compiled form for `isa`, as bits.
    fn run(&self, isa: Isa, x: &[f32], dy: &[f32], rows: usize, with_dx: bool) -> Vec<Vec<u32>> {
        let layers = self.layers();
        let mut y = vec![0.0; rows * self.widths[self.widths.len() - 1]];
        forward_with(isa, &layers, x, rows, &mut y);
        let mut weights: Vec<Vec<f32>> = self
            .weights
            .iter()
            .map(|w| vec![f32::NAN; w.len()])
            .collect();
        let mut biases: Vec<Option<Vec<f32>>> = self
            .biases
            .iter()
            .map(|b| b.as_ref().map(|b| vec![f32::NAN; b.len()]))
            .collect();
        let mut dx = with_dx.then(|| vec![f32::NAN; x.len()]);
        let mut grads: Vec<DenseGradients> = weights
            .iter_mut()
            .zip(biases.iter_mut())
            .map(|(weight, bias)| DenseGradients {
                weight,
                bias: bias.as_deref_mut(),
            })
            .collect();
        backward_with(isa, &layers, x, dy, rows, &mut grads, dx.as_deref_mut());
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
        let mut all = vec![bits(&y)];
        all.extend(dx.as_deref().map(bits));
        all.extend(weights.iter().map(|w| bits(w)));
        all.extend(biases.iter().flatten().map(|b| bits(b)));
        all
    }

    /// Plain f64 loops: the activations at every boundary of row `r`.
    fn reference_forward(&self, x: &[f32], r: usize) -> Vec<Vec<f64>> {
        let mut h = vec![x[r * self.widths[0]..(r + 1) * self.widths[0]]
            .iter()
            .map(|&v| v as f64)
            .collect::<Vec<f64>>()];
        for l in 0..self.weights.len() {
            let (i_w, o_w) = (self.widths[l], self.widths[l + 1]);
            let next: Vec<f64> = (0..o_w)
                .map(|o| {
                    let mut z: f64 = (0..i_w)
                        .map(|i| self.weights[l][o * i_w + i] as f64 * h[l][i])
                        .sum();
                    z += self.biases[l].as_ref().map_or(0.0, |b| b[o] as f64);
                    if self.relu[l] {
                        z.max(0.0)
                    } else {
                        z
                    }
                })
                .collect();
            h.push(next);
        }
        h
    }
}

fn close(got: f32, want: f64, scale: f64) -> bool {
    approx::abs_diff_eq!(got as f64, want, epsilon = 1e-5 * scale.max(1.0))
}

fn check(widths: &[usize], bias: &[bool], relu: &[bool], rows: usize, seed: u64) {
    let net = Net::new(widths, bias, relu, seed);
    let layers = net.layers();
    let last = widths.len() - 1;
    let x = values(rows * widths[0], seed + 7);
    let dy = values(rows * widths[last], seed + 8);
    let mut y = vec![f32::NAN; rows * widths[last]];
    forward(&layers, &x, rows, &mut y);

    // Reference gradients, row by row in f64.
    let mut d_w: Vec<Vec<f64>> = net.weights.iter().map(|w| vec![0.0; w.len()]).collect();
    let mut d_b: Vec<Vec<f64>> = widths[1..].iter().map(|&w| vec![0.0; w]).collect();
    let mut d_x = vec![0.0f64; x.len()];
    for r in 0..rows {
        let h = net.reference_forward(&x, r);
        for o in 0..widths[last] {
            assert!(
                close(y[r * widths[last] + o], h[last][o], 1.0),
                "{widths:?} rows {rows}: y[{r}][{o}] = {} vs {}",
                y[r * widths[last] + o],
                h[last][o]
            );
        }
        let mut g: Vec<f64> = (0..widths[last])
            .map(|o| dy[r * widths[last] + o] as f64)
            .collect();
        for l in (0..last).rev() {
            let (i_w, o_w) = (widths[l], widths[l + 1]);
            if relu[l] {
                for o in 0..o_w {
                    if h[l + 1][o] <= 0.0 {
                        g[o] = 0.0;
                    }
                }
            }
            for o in 0..o_w {
                d_b[l][o] += g[o];
                for i in 0..i_w {
                    d_w[l][o * i_w + i] += g[o] * h[l][i];
                }
            }
            g = (0..i_w)
                .map(|i| {
                    (0..o_w)
                        .map(|o| net.weights[l][o * i_w + i] as f64 * g[o])
                        .sum()
                })
                .collect();
        }
        for i in 0..widths[0] {
            d_x[r * widths[0] + i] = g[i];
        }
    }

    let got = net.run(Isa::detected(), &x, &dy, rows, true);
    let floats = |bits: &[u32]| {
        bits.iter()
            .map(|&b| f32::from_bits(b))
            .collect::<Vec<f32>>()
    };
    let dx = floats(&got[1]);
    let weight_grads: Vec<Vec<f32>> = got[2..2 + last].iter().map(|g| floats(g)).collect();
    let mut bias_grads: Vec<Option<Vec<f32>>> = vec![None; last];
    let mut next = 2 + last;
    for (l, b) in bias_grads.iter_mut().enumerate() {
        if net.biases[l].is_some() {
            *b = Some(floats(&got[next]));
            next += 1;
        }
    }
    let scale = rows as f64;
    for l in 0..last {
        for (k, (&got, &want)) in weight_grads[l].iter().zip(&d_w[l]).enumerate() {
            assert!(
                close(got, want, scale),
                "{widths:?} rows {rows}: dW{l}[{k}] = {got} vs {want}"
            );
        }
        if let Some(b) = &bias_grads[l] {
            for (k, (&got, &want)) in b.iter().zip(&d_b[l]).enumerate() {
                assert!(
                    close(got, want, scale),
                    "{widths:?} rows {rows}: db{l}[{k}] = {got} vs {want}"
                );
            }
        }
    }
    for (k, (&got, &want)) in dx.iter().zip(&d_x).enumerate() {
        assert!(
            close(got, want, 1.0),
            "{widths:?}: dx[{k}] = {got} vs {want}"
        );
    }

    // Without dx, the parameter gradients are the same bits.
    let without_dx = net.run(Isa::detected(), &x, &dy, rows, false);
    assert_eq!((&without_dx[0], &without_dx[1..]), (&got[0], &got[2..]));
}

#[test]
fn matches_a_plain_f64_reference() {
    // dnn3's shape over a partial last block and several chunks.
    check(
        &[3, 5, 5, 5, 3],
        &[true; 4],
        &[true, true, true, false],
        7003,
        1,
    );
    // Full width, no bias, ReLU everywhere, one partial block.
    check(&[16, 16, 16], &[false, false], &[true, true], 9, 2);
    // Width 1 layers and a single layer.
    check(&[1, 7, 1], &[true, false], &[false, true], 300, 3);
    check(&[4, 2], &[true], &[false], 16, 4);
    check(&[2, 3], &[false], &[true], 1, 5);
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    // Enough work to be split across threads, with a partial last chunk.
    let net = Net::new(&[16, 16, 5, 3], &[true; 3], &[true, true, false], 9);
    let layers = net.layers();
    let rows = 24 * CHUNK_ROWS + 17;
    assert!(worth_splitting(&layers, rows));
    let x = values(rows * 16, 10);
    let dy = values(rows * 3, 11);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| net.run(Isa::detected(), &x, &dy, rows, true))
    };
    assert_eq!(run(1), run(2));
    assert_eq!(run(1), run(3));
}

/// Every compiled form this CPU can run gives the bits of the plain loops.
#[test]
fn every_path_gives_the_same_bits() {
    let shapes: &[(&[usize], usize)] = &[
        (&[3, 5, 5, 5, 3], 1000),
        (&[16, 7, 1], 33),
        (&[2, 16, 16, 2], 600),
    ];
    for &(widths, rows) in shapes {
        let last = widths.len() - 1;
        // Every layer with bias and ReLU, then alternating ones without either.
        let alternate: Vec<bool> = (0..last).map(|l| l % 2 == 1).collect();
        let not_alternate: Vec<bool> = alternate.iter().map(|&b| !b).collect();
        for (bias, relu) in [
            (vec![true; last], vec![true; last]),
            (alternate, not_alternate),
        ] {
            let net = Net::new(widths, &bias, &relu, 21);
            let x = values(rows * widths[0], 22);
            let dy = values(rows * widths[last], 23);
            let run = |isa: Isa| net.run(isa, &x, &dy, rows, true);
            let plain = run(Isa::Portable);
            for isa in Isa::available().into_iter().skip(1) {
                assert!(
                    run(isa) == plain,
                    "{isa:?} differs from the plain loops on {widths:?}, bias {bias:?}"
                );
            }
        }
    }
}

/// The rows that pad a partial chunk carry the network at x = 0, which can overflow where
/// the real rows do not; they must add nothing to the gradients (0 · inf would be NaN).
#[test]
fn padding_rows_add_nothing_even_where_they_overflow() {
    fn layer<'a>(weight: &'a [f32], bias: Option<&'a [f32]>) -> DenseLayer<'a> {
        DenseLayer {
            weight,
            bias,
            inputs: 1,
            outputs: 1,
            relu: false,
        }
    }
    let layers = [
        layer(&[1.0], Some(&[3e38])),
        layer(&[2.0], None),
        layer(&[0.5], None),
    ];
    // The real row: x = -3e38 gives 0 at every layer.
    let (x, dy) = ([-3e38f32], [1.0f32]);
    let (mut d0, mut db0, mut d1, mut d2) = ([f32::NAN], [f32::NAN], [f32::NAN], [f32::NAN]);
    let mut grads = [
        DenseGradients {
            weight: &mut d0,
            bias: Some(&mut db0),
        },
        DenseGradients {
            weight: &mut d1,
            bias: None,
        },
        DenseGradients {
            weight: &mut d2,
            bias: None,
        },
    ];
    backward(&layers, &x, &dy, 1, &mut grads, None);
    // dW0 = (dy · 0.5 · 2) · x, db0 = 1, and h1 = h2 = 0 for the real row.
    assert_eq!((d0[0], db0[0], d1[0], d2[0]), (-3e38, 1.0, 0.0, 0.0));
}

#[test]
#[should_panic(expected = "layer 1 takes 4 features but layer 0 gives 5")]
fn layers_that_do_not_chain_are_refused() {
    let (w0, w1) = (vec![0.0; 15], vec![0.0; 8]);
    let layers = [
        DenseLayer {
            weight: &w0,
            bias: None,
            inputs: 3,
            outputs: 5,
            relu: true,
        },
        DenseLayer {
            weight: &w1,
            bias: None,
            inputs: 4,
            outputs: 2,
            relu: false,
        },
    ];
    forward(&layers, &[0.0; 6], 2, &mut [0.0; 4]);
}

#[test]
#[should_panic(expected = "layer 0 is 17x2; widths must be 1 to 16")]
fn too_wide_layers_are_refused() {
    let w = vec![0.0; 34];
    let layers = [DenseLayer {
        weight: &w,
        bias: None,
        inputs: 17,
        outputs: 2,
        relu: false,
    }];
    forward(&layers, &[0.0; 17], 1, &mut [0.0; 2]);
}
