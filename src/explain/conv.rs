//! conv2d, one channel in and one out: Y = X ⋆ W (cross-correlation, as every framework
//! computes "convolution").
//!
//!   forward:  Y[p,q]  = Σ_{i,j} Xpad[p·S + i, q·S + j] · W[i,j]
//!   backward: dW[i,j] = Σ_{p,q} dY[p,q] · Xpad[p·S + i, q·S + j]
//!             dX[a,b] = Σ_{p,q,i,j : p·S+i = a+P, q·S+j = b+P} dY[p,q] · W[i,j]

use super::{
    backpropagate, check_size, grid, leaf, num, small_integers, sum_of_products, Options, Page,
};
use strata_tensor::Generator;

/// The course example: a 4×4 image and a 3×3 kernel whose valid convolution is
/// [[15, 16], [6, 15]].
const COURSE_INPUT: [f64; 16] = [
    1.0, 2.0, 3.0, 0.0, //
    0.0, 1.0, 2.0, 3.0, //
    3.0, 0.0, 1.0, 2.0, //
    2.0, 3.0, 0.0, 1.0,
];
const COURSE_KERNEL: [f64; 9] = [2.0, 0.0, 1.0, 0.0, 1.0, 2.0, 1.0, 0.0, 2.0];

/// Output windows drawn in full (beyond this only the sums of products are printed).
const MAX_DRAWN_WINDOWS: usize = 9;

pub(super) fn explain(options: &Options, page: &mut Page) -> Result<(), String> {
    let example = Example::new(options)?;
    example.introduce(page);
    let y = example.forward(page);
    let o = example.o;
    let dy = page.upstream("Y", &format!("({o}×{o})"), o, o);
    let dw = example.weight_gradient(&dy, page);
    let dx = example.input_gradient(&dy, page);
    example.check_with_autograd(&y, &dy, &dw, &dx, page)
}

/// The worked example: an `h`×`h` input `x`, a `k`×`k` kernel `w`, stride `s`, padding `p`,
/// and the derived sizes and padded input.
struct Example {
    h: usize,
    k: usize,
    s: usize,
    p: usize,
    /// Padded input size, `h + 2p`.
    hp: usize,
    /// Output size.
    o: usize,
    x: Vec<f64>,
    w: Vec<f64>,
    /// `x` inside `p` rings of zeros, `hp`×`hp`.
    xpad: Vec<f64>,
}

impl Example {
    /// Checks the sizes and picks the values: the course example by default, else seeded
    /// small integers.
    fn new(options: &Options) -> Result<Example, String> {
        let h = check_size("--size", options.size.unwrap_or(4), 12)?;
        let k = check_size("--kernel", options.kernel.unwrap_or(3), 7)?;
        let s = check_size("--stride", options.stride.unwrap_or(1), 7)?;
        let p = options.padding;
        if h + 2 * p < k {
            return Err(format!(
                "the {k}×{k} kernel does not fit in the {h}×{h} input with padding {p}: \
                 H + 2P = {} < K",
                h + 2 * p
            ));
        }
        if p >= k {
            return Err(format!(
                "padding {p} is at least the kernel size {k}: some windows would see only padding"
            ));
        }
        let (x, w) = if options.seed.is_none() && h == 4 && k == 3 {
            (COURSE_INPUT.to_vec(), COURSE_KERNEL.to_vec())
        } else {
            let mut g = Generator::seed(options.seed.unwrap_or(0));
            (
                small_integers(h * h, 0, 3, &mut g),
                small_integers(k * k, 0, 2, &mut g),
            )
        };
        let hp = h + 2 * p;
        let o = (hp - k) / s + 1;
        let mut xpad = vec![0.0; hp * hp];
        for r in 0..h {
            for c in 0..h {
                xpad[(r + p) * hp + c + p] = x[r * h + c];
            }
        }
        Ok(Example {
            h,
            k,
            s,
            p,
            hp,
            o,
            x,
            w,
            xpad,
        })
    }

    /// The sizes, the input and kernel, and the output-size formula with the numbers in.
    fn introduce(&self, page: &mut Page) {
        let Example {
            h, k, s, p, hp, o, ..
        } = *self;
        page.line(format!(
            "conv2d: a {h}×{h} input X, one {k}×{k} kernel W, stride {s}, padding {p}"
        ));
        page.line(
            "(one channel in and one out; with C channels the sum below also runs over them)",
        );
        page.blank();
        page.matrix(&format!("X ({h}×{h}):"), &self.x, h, h);
        page.matrix(&format!("W ({k}×{k}):"), &self.w, k, k);
        if p > 0 {
            page.matrix(
                &format!("X with {p} ring(s) of zero padding ({hp}×{hp}):"),
                &self.xpad,
                hp,
                hp,
            );
        }

        page.heading("Output size");
        page.line("  out = ⌊(H + 2P − K) / S⌋ + 1");
        page.line(format!(
            "      = ⌊({h} + 2·{p} − {k}) / {s}⌋ + 1 = ⌊{}/{s}⌋ + 1 = {o}",
            hp - k
        ));
        page.line(format!("  so Y is {o}×{o}."));
    }

    /// The (padded) input values under output `(oy, ox)`'s window, each with its weight.
    fn window(&self, oy: usize, ox: usize) -> Vec<(f64, f64)> {
        let Example { k, s, hp, .. } = *self;
        let mut terms = Vec::with_capacity(k * k);
        for i in 0..k {
            for j in 0..k {
                terms.push((self.xpad[(oy * s + i) * hp + ox * s + j], self.w[i * k + j]));
            }
        }
        terms
    }

    /// `Y`, window by window: drawn in full for small outputs, else as sums of products.
    fn forward(&self, page: &mut Page) -> Vec<f64> {
        let Example { k, s, p, o, .. } = *self;
        page.heading("Forward: slide W over X; each output is a window times W, summed");
        let mut y = vec![0.0; o * o];
        let mut lines = Vec::new();
        for oy in 0..o {
            for ox in 0..o {
                let terms = self.window(oy, ox);
                y[oy * o + ox] = terms.iter().map(|(a, b)| a * b).sum();
                if o * o <= MAX_DRAWN_WINDOWS {
                    let rows = oy * s..oy * s + k;
                    let cols = ox * s..ox * s + k;
                    page.line(format!(
                        "Y[{oy},{ox}]: window rows {}..{}, columns {}..{} of X{}, times W:",
                        rows.start,
                        rows.end - 1,
                        cols.start,
                        cols.end - 1,
                        if p > 0 { " (padded)" } else { "" }
                    ));
                    let patch: Vec<f64> = terms.iter().map(|t| t.0).collect();
                    for (left, right) in grid(&patch, k, k).iter().zip(grid(&self.w, k, k)) {
                        page.line(format!("    {left}      {right}"));
                    }
                    page.line(format!(
                        "  = {} = {}",
                        sum_of_products(&terms),
                        num(y[oy * o + ox])
                    ));
                } else {
                    lines.push(format!(
                        "Y[{oy},{ox}] = {} = {}",
                        sum_of_products(&terms),
                        num(y[oy * o + ox])
                    ));
                }
            }
        }
        page.term_lines(lines);
        page.matrix(&format!("Y ({o}×{o}):"), &y, o, o);
        page.line("(a bias b would add b to every Y[p,q], and dL/db = Σ dY)");
        y
    }

    /// `dL/dW`: the padded input correlated with `dY`.
    fn weight_gradient(&self, dy: &[f64], page: &mut Page) -> Vec<f64> {
        let Example { k, s, hp, o, .. } = *self;
        page.line(format!(
            "dL/dW[i,j] = Σ over outputs (p,q) of dY[p,q] · X[p·S + i, q·S + j]: the input \
             correlated with dY; W is {k}×{k}, so is dL/dW"
        ));
        let mut dw = vec![0.0; k * k];
        let mut lines = Vec::new();
        for i in 0..k {
            for j in 0..k {
                let terms: Vec<(f64, f64)> = (0..o * o)
                    .map(|q| (dy[q], self.xpad[((q / o) * s + i) * hp + (q % o) * s + j]))
                    .collect();
                dw[i * k + j] = terms.iter().map(|(a, b)| a * b).sum();
                lines.push(format!(
                    "dW[{i},{j}] = {} = {}",
                    sum_of_products(&terms),
                    num(dw[i * k + j])
                ));
            }
        }
        page.term_lines(lines);
        page.matrix("dL/dW:", &dw, k, k);
        dw
    }

    /// `dL/dX`: `dY` scattered back through `W` onto the padded input, of which the unpadded
    /// part is kept.
    fn input_gradient(&self, dy: &[f64], page: &mut Page) -> Vec<f64> {
        let Example {
            h, k, s, p, hp, o, ..
        } = *self;
        page.blank();
        page.line(format!(
            "dL/dX[a,b] = Σ over the windows that cover X[a,b] of dY[p,q] · the kernel weight \
             that met it, W[a + P − p·S, b + P − q·S]: dY scattered back through W{}; X is \
             {h}×{h}, so is dL/dX",
            if s == 1 {
                " (a full convolution of dY with W turned 180°)"
            } else {
                ""
            }
        ));
        let mut dxpad = vec![0.0; hp * hp];
        let mut terms_at: Vec<Vec<(f64, f64)>> = vec![Vec::new(); hp * hp];
        for oy in 0..o {
            for ox in 0..o {
                for i in 0..k {
                    for j in 0..k {
                        let at = (oy * s + i) * hp + ox * s + j;
                        dxpad[at] += dy[oy * o + ox] * self.w[i * k + j];
                        terms_at[at].push((dy[oy * o + ox], self.w[i * k + j]));
                    }
                }
            }
        }
        let mut dx = vec![0.0; h * h];
        let mut lines = Vec::new();
        for a in 0..h {
            for b in 0..h {
                let at = (a + p) * hp + b + p;
                dx[a * h + b] = dxpad[at];
                lines.push(format!(
                    "dX[{a},{b}] = {} = {}",
                    sum_of_products(&terms_at[at]),
                    num(dxpad[at])
                ));
            }
        }
        page.term_lines(lines);
        page.matrix("dL/dX:", &dx, h, h);
        dx
    }

    /// The same op through strata's autograd, its output and gradients compared with the
    /// hand computation.
    fn check_with_autograd(
        &self,
        y: &[f64],
        dy: &[f64],
        dw: &[f64],
        dx: &[f64],
        page: &mut Page,
    ) -> Result<(), String> {
        let Example { h, k, s, p, o, .. } = *self;
        page.heading("Check: the same op through strata and its autograd");
        let xt = leaf(&self.x, &[1, 1, h, h]);
        let wt = leaf(&self.w, &[1, 1, k, k]);
        let yt = xt.conv2d(&wt, None, (s, s), (p, p));
        if yt.shape() != [1, 1, o, o] {
            return Err(format!(
                "conv2d produced shape {:?}, the formula says [1, 1, {o}, {o}]",
                yt.shape()
            ));
        }
        page.check("Y", y, Some(yt.detach()));
        backpropagate(&yt, dy);
        page.check("dL/dW", dw, wt.grad());
        page.check("dL/dX", dx, xt.grad());
        Ok(())
    }
}
