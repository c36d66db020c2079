//! Max and average pooling of one channel, kernel K, stride S, padding P.
//!
//!   max:  Y[p,q] = max of window(p,q);     dX[argmax(p,q)] += dY[p,q]
//!   avg:  Y[p,q] = Σ window(p,q) / K²;     dX[a,b] += dY[p,q] / K² for every (a,b) in it
//! Max pads with -∞ (padding never wins); average pads with zeros that count in K², as
//! PyTorch's default does.

use super::{backpropagate, check_size, leaf, num, small_integers, Options, Page};
use strata_tensor::Generator;

/// Which pooling.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Max,
    Average,
}

/// The course's max-pooling example: 2×2 windows, stride 2, giving [[2, 3], [4, 2]].
const COURSE_INPUT: [f64; 16] = [
    1.0, 2.0, 1.0, 0.0, //
    0.0, 1.0, 2.0, 3.0, //
    3.0, 0.0, 1.0, 2.0, //
    2.0, 4.0, 0.0, 1.0,
];

/// A position of the unpadded input, `(row, column)`, or `None` for a padding cell.
type Cell = Option<(usize, usize)>;

pub(super) fn explain(kind: Kind, options: &Options, page: &mut Page) -> Result<(), String> {
    let example = Example::new(kind, options)?;
    example.introduce(page);
    let (y, winners) = example.forward(page);
    let o = example.o;
    let dy = page.upstream("Y", &format!("({o}×{o})"), o, o);
    let dx = match kind {
        Kind::Max => example.max_backward(&dy, &winners, page),
        Kind::Average => example.average_backward(&dy, page),
    };
    example.check_with_autograd(&y, &dy, &dx, page)
}

/// The worked example: an `h`×`h` input `x`, `k`×`k` windows, stride `s`, padding `p`, and
/// the output size `o`.
struct Example {
    kind: Kind,
    /// The op's name, as the command line and the tensor method spell it.
    name: &'static str,
    h: usize,
    k: usize,
    s: usize,
    p: usize,
    o: usize,
    x: Vec<f64>,
}

impl Example {
    /// Checks the sizes and picks the values: the course example by default, else seeded
    /// small integers.
    fn new(kind: Kind, options: &Options) -> Result<Example, String> {
        let h = check_size("--size", options.size.unwrap_or(4), 12)?;
        let k = check_size("--kernel", options.kernel.unwrap_or(2), 6)?;
        let s = check_size("--stride", options.stride.unwrap_or(k), 6)?;
        let p = options.padding;
        if 2 * p > k {
            return Err(format!(
                "padding {p} is more than half the kernel size {k} (PyTorch's limit too)"
            ));
        }
        if h + 2 * p < k {
            return Err(format!(
                "the {k}×{k} window does not fit in the {h}×{h} input with padding {p}"
            ));
        }
        let x = if options.seed.is_none() && h == 4 {
            COURSE_INPUT.to_vec()
        } else {
            small_integers(h * h, 0, 5, &mut Generator::seed(options.seed.unwrap_or(0)))
        };
        let hp = h + 2 * p;
        let o = (hp - k) / s + 1;
        let name = match kind {
            Kind::Max => "max_pool2d",
            Kind::Average => "avg_pool2d",
        };
        Ok(Example {
            kind,
            name,
            h,
            k,
            s,
            p,
            o,
            x,
        })
    }

    /// The sizes, the input, and the output-size formula with the numbers in.
    fn introduce(&self, page: &mut Page) {
        let Example {
            name,
            h,
            k,
            s,
            p,
            o,
            ..
        } = *self;
        page.line(format!(
            "{name}: a {h}×{h} input X, {k}×{k} windows, stride {s}, padding {p}"
        ));
        page.line("(pooling works on each channel of each image separately; one is shown)");
        page.blank();
        page.matrix(&format!("X ({h}×{h}):"), &self.x, h, h);

        page.heading("Output size");
        page.line("  out = ⌊(H + 2P − K) / S⌋ + 1");
        page.line(format!(
            "      = ⌊({h} + 2·{p} − {k}) / {s}⌋ + 1 = {o}, so Y is {o}×{o}."
        ));
    }

    /// Window (p,q) of the unpadded input: its positions, row-major, with padding cells as
    /// `None`.
    fn window(&self, oy: usize, ox: usize) -> Vec<Cell> {
        let Example { h, k, s, p, .. } = *self;
        let mut cells = Vec::with_capacity(k * k);
        for i in 0..k {
            for j in 0..k {
                let (r, c) = (oy * s + i, ox * s + j);
                let inside = r >= p && c >= p && r - p < h && c - p < h;
                cells.push(inside.then(|| (r - p, c - p)));
            }
        }
        cells
    }

    /// The value of a cell: the input's, or the padding's (-∞ for max, 0 for average).
    fn value(&self, cell: &Cell) -> f64 {
        let pad_value = match self.kind {
            Kind::Max => f64::NEG_INFINITY,
            Kind::Average => 0.0,
        };
        cell.map_or(pad_value, |(r, c)| self.x[r * self.h + c])
    }

    /// `Y`, window by window, and for max pooling the input position each output took its
    /// value from.
    fn forward(&self, page: &mut Page) -> (Vec<f64>, Vec<Cell>) {
        let Example { k, o, .. } = *self;
        match self.kind {
            Kind::Max => page.heading("Forward: each output is the largest value of its window"),
            Kind::Average => page.heading(&format!(
                "Forward: each output is the mean of its window (sum / {})",
                k * k
            )),
        }
        let mut y = vec![0.0; o * o];
        let mut winners: Vec<Cell> = vec![None; o * o];
        let mut lines = Vec::new();
        for oy in 0..o {
            for ox in 0..o {
                let cells = self.window(oy, ox);
                let values: Vec<String> = cells.iter().map(|c| num(self.value(c))).collect();
                let at = oy * o + ox;
                match self.kind {
                    Kind::Max => {
                        // The first largest in reading order, as the kernel picks.
                        let mut best = 0;
                        for (i, c) in cells.iter().enumerate() {
                            if self.value(c) > self.value(&cells[best]) {
                                best = i;
                            }
                        }
                        y[at] = self.value(&cells[best]);
                        winners[at] = cells[best];
                        let place = cells[best]
                            .map_or("padding".to_string(), |(r, c)| format!("X[{r},{c}]"));
                        lines.push(format!(
                            "Y[{oy},{ox}] = max{{{}}} = {} (at {place})",
                            values.join(", "),
                            num(y[at])
                        ));
                    }
                    Kind::Average => {
                        let sum: f64 = cells.iter().map(|c| self.value(c)).sum();
                        y[at] = sum / (k * k) as f64;
                        lines.push(format!(
                            "Y[{oy},{ox}] = ({}) / {} = {} / {} = {}",
                            values.join(" + "),
                            k * k,
                            num(sum),
                            k * k,
                            num(y[at])
                        ));
                    }
                }
            }
        }
        page.term_lines(lines);
        page.matrix(&format!("Y ({o}×{o}):"), &y, o, o);
        (y, winners)
    }

    /// Max pooling's `dL/dX`: each `dY[p,q]` goes to the element that won window (p,q).
    fn max_backward(&self, dy: &[f64], winners: &[Cell], page: &mut Page) -> Vec<f64> {
        let Example { h, o, .. } = *self;
        let mut dx = vec![0.0; h * h];
        let mut lines = Vec::new();
        page.line(
            "Only the element that won a window affected the output, so dY[p,q] goes to \
             it alone (dY · 1); every other element of the window gets 0. An element that \
             wins several overlapping windows collects all their gradients.",
        );
        for (at, winner) in winners.iter().enumerate() {
            if let Some((r, c)) = *winner {
                dx[r * h + c] += dy[at];
                lines.push(format!(
                    "dY[{},{}] = {} → X[{r},{c}]",
                    at / o,
                    at % o,
                    num(dy[at])
                ));
            }
        }
        self.print_input_gradient(&dx, lines, page);
        dx
    }

    /// Average pooling's `dL/dX`: each `dY[p,q] / K²` goes to every element of window (p,q).
    fn average_backward(&self, dy: &[f64], page: &mut Page) -> Vec<f64> {
        let Example { h, k, o, .. } = *self;
        let mut dx = vec![0.0; h * h];
        let mut lines = Vec::new();
        page.line(format!(
            "Every element of a window contributed 1/{} of the output, so each receives \
             dY[p,q] / {} from every window that contains it.",
            k * k,
            k * k
        ));
        for oy in 0..o {
            for ox in 0..o {
                let share = dy[oy * o + ox] / (k * k) as f64;
                let mut targets = Vec::new();
                for (r, c) in self.window(oy, ox).into_iter().flatten() {
                    dx[r * h + c] += share;
                    targets.push(format!("X[{r},{c}]"));
                }
                lines.push(format!(
                    "dY[{oy},{ox}] / {} = {} → {}",
                    k * k,
                    num(share),
                    targets.join(", ")
                ));
            }
        }
        self.print_input_gradient(&dx, lines, page);
        dx
    }

    /// The routing `lines`, then `dL/dX` as a matrix.
    fn print_input_gradient(&self, dx: &[f64], lines: Vec<String>, page: &mut Page) {
        let h = self.h;
        page.term_lines(lines);
        page.matrix(&format!("dL/dX ({h}×{h}):"), dx, h, h);
    }

    /// The same op through strata's autograd, its output and gradient compared with the hand
    /// computation.
    fn check_with_autograd(
        &self,
        y: &[f64],
        dy: &[f64],
        dx: &[f64],
        page: &mut Page,
    ) -> Result<(), String> {
        let Example {
            name,
            h,
            k,
            s,
            p,
            o,
            ..
        } = *self;
        page.heading("Check: the same op through strata and its autograd");
        let xt = leaf(&self.x, &[1, 1, h, h]);
        let yt = match self.kind {
            Kind::Max => xt.max_pool2d((k, k), (s, s), (p, p)),
            Kind::Average => xt.avg_pool2d((k, k), (s, s), (p, p)),
        };
        if yt.shape() != [1, 1, o, o] {
            return Err(format!(
                "{name} produced shape {:?}, the formula says [1, 1, {o}, {o}]",
                yt.shape()
            ));
        }
        page.check("Y", y, Some(yt.detach()));
        backpropagate(&yt, dy);
        page.check("dL/dX", dx, xt.grad());
        Ok(())
    }
}
