//! `strata explain`: one op worked through on a small input, as a course would draw it.
//!
//! Each explanation computes the forward and the backward pass by hand, in f64 and in plain
//! loops that mirror the formulas, and prints every step: the windows and their products, the
//! output-size formula with the numbers filled in, which gradient flows where and with which
//! shape. It then runs the same op through strata's autograd and checks the printed gradients
//! against it, so the text is never out of step with the engine.
//!
//! ```
//! use strata::explain::{explain, Op, Options};
//! let conv = explain(Op::Conv2d, &Options::default()).unwrap();
//! assert!(conv.text.contains("= 15"));
//! assert!(conv.agrees());
//! ```

mod batch_norm;
mod conv;
mod linear;
mod matmul;
mod pool;
mod softmax_ce;

use strata_tensor::{Generator, Tensor};

/// The ops `strata explain` can work through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// 2-D convolution of one channel by one kernel.
    Conv2d,
    /// Max pooling.
    MaxPool2d,
    /// Average pooling.
    AvgPool2d,
    /// Matrix product `C = A · B`.
    Matmul,
    /// Softmax followed by the cross-entropy loss, fused.
    SoftmaxCrossEntropy,
    /// Batch normalisation in training mode, `[N, C]` input.
    BatchNorm,
    /// A fully connected layer `y = x · Wᵀ + b`.
    Linear,
}

impl Op {
    /// Every op, in the order `strata explain --help` lists them.
    pub const ALL: [Op; 7] = [
        Op::Conv2d,
        Op::MaxPool2d,
        Op::AvgPool2d,
        Op::Matmul,
        Op::SoftmaxCrossEntropy,
        Op::BatchNorm,
        Op::Linear,
    ];

    /// The name the command line takes.
    pub fn name(self) -> &'static str {
        match self {
            Op::Conv2d => "conv2d",
            Op::MaxPool2d => "max_pool2d",
            Op::AvgPool2d => "avg_pool2d",
            Op::Matmul => "matmul",
            Op::SoftmaxCrossEntropy => "softmax-cross-entropy",
            Op::BatchNorm => "batch_norm",
            Op::Linear => "linear",
        }
    }

    /// Parses a name, ignoring case and treating `-` and `_` alike.
    pub fn parse(name: &str) -> Result<Op, String> {
        let wanted = name.to_ascii_lowercase().replace('-', "_");
        let aliases: &[(&str, Op)] = &[
            ("cross_entropy", Op::SoftmaxCrossEntropy),
            ("softmax_ce", Op::SoftmaxCrossEntropy),
            ("batchnorm", Op::BatchNorm),
            ("maxpool", Op::MaxPool2d),
            ("avgpool", Op::AvgPool2d),
            ("conv", Op::Conv2d),
        ];
        Op::ALL
            .iter()
            .map(|&op| (op.name().replace('-', "_"), op))
            .chain(aliases.iter().map(|&(a, op)| (a.to_string(), op)))
            .find(|(n, _)| *n == wanted)
            .map(|(_, op)| op)
            .ok_or_else(|| {
                let names: Vec<&str> = Op::ALL.iter().map(|op| op.name()).collect();
                format!("cannot explain '{name}'; the ops are: {}", names.join(", "))
            })
    }
}

/// Sizes of the worked example. `None` takes the op's default (the course example where
/// there is one).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    /// Height and width of the input image (conv2d, pooling).
    pub size: Option<usize>,
    /// Kernel (window) size (conv2d, pooling).
    pub kernel: Option<usize>,
    /// Stride (conv2d: default 1; pooling: default the kernel size).
    pub stride: Option<usize>,
    /// Zero padding on every side (conv2d; pooling pads max with -∞ and counts zeros in avg).
    pub padding: usize,
    /// Rows: batch size N (linear, softmax-cross-entropy, batch_norm) or M of `[M,K]·[K,N]`.
    pub batch: Option<usize>,
    /// Columns of the input: in features (linear), classes (softmax-cross-entropy), channels
    /// (batch_norm), or K of `[M,K]·[K,N]`.
    pub inputs: Option<usize>,
    /// Out features (linear) or N of `[M,K]·[K,N]`.
    pub outputs: Option<usize>,
    /// Seed of the random small integers used when the sizes differ from the course example.
    /// With a seed, even the default sizes use random values.
    pub seed: Option<u64>,
}

/// One gradient printed by an explanation, compared with autograd's.
#[derive(Clone, Debug, PartialEq)]
pub struct GradientCheck {
    /// Which gradient, e.g. `dL/dW`.
    pub name: String,
    /// Largest `|by hand - autograd|` over its elements.
    pub max_abs_difference: f64,
    /// The largest difference accepted: f32 rounding of autograd's result.
    pub tolerance: f64,
}

impl GradientCheck {
    /// Whether the hand computation and autograd agree within the tolerance.
    pub fn agrees(&self) -> bool {
        self.max_abs_difference <= self.tolerance
    }
}

/// The printed walk-through and the checks of its gradients against autograd.
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    /// What `strata explain` prints.
    pub text: String,
    /// One entry per gradient, in the order printed.
    pub checks: Vec<GradientCheck>,
}

impl Explanation {
    /// Whether every printed gradient matches autograd's.
    pub fn agrees(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(GradientCheck::agrees)
    }
}

/// Works `op` through on the example `options` describes.
pub fn explain(op: Op, options: &Options) -> Result<Explanation, String> {
    let mut page = Page::default();
    match op {
        Op::Conv2d => conv::explain(options, &mut page)?,
        Op::MaxPool2d => pool::explain(pool::Kind::Max, options, &mut page)?,
        Op::AvgPool2d => pool::explain(pool::Kind::Average, options, &mut page)?,
        Op::Matmul => matmul::explain(options, &mut page)?,
        Op::SoftmaxCrossEntropy => softmax_ce::explain(options, &mut page)?,
        Op::BatchNorm => batch_norm::explain(options, &mut page)?,
        Op::Linear => linear::explain(options, &mut page)?,
    }
    Ok(Explanation {
        text: page.text,
        checks: page.checks,
    })
}

/// The text being written and the gradient checks made so far.
#[derive(Default)]
pub(crate) struct Page {
    text: String,
    checks: Vec<GradientCheck>,
}

/// Column at which long lines wrap.
const WIDTH: usize = 96;

/// Most lines of terms printed for one gradient or output before the rest is summarised.
const MAX_TERM_LINES: usize = 36;

impl Page {
    /// One line; a line longer than `WIDTH` columns is wrapped between words, its
    /// continuation indented two columns more.
    pub(crate) fn line(&mut self, line: impl AsRef<str>) {
        let line = line.as_ref();
        if line.chars().count() <= WIDTH {
            return self.raw(line);
        }
        let indent = line.len() - line.trim_start().len();
        let mut current = " ".repeat(indent);
        for word in line.split_whitespace() {
            let fresh = current.trim().is_empty();
            if !fresh && current.chars().count() + 1 + word.chars().count() > WIDTH {
                self.raw(&current);
                current = " ".repeat(indent + 2);
            } else if !fresh {
                current.push(' ');
            }
            current.push_str(word);
        }
        self.raw(&current);
    }

    /// One line exactly as given (matrix rows keep their alignment).
    fn raw(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
    }

    pub(crate) fn blank(&mut self) {
        self.text.push('\n');
    }

    pub(crate) fn heading(&mut self, title: &str) {
        self.blank();
        self.line(title);
        self.line("-".repeat(title.chars().count()));
    }

    /// Opens the backward pass: the "Backward" heading and the gradient `dL/d{name}` arriving
    /// from the layers above, a fixed pattern from [`upstream_gradient`], which it returns.
    pub(crate) fn upstream(
        &mut self,
        name: &str,
        shape: &str,
        rows: usize,
        cols: usize,
    ) -> Vec<f64> {
        let gradient = upstream_gradient(rows * cols);
        self.heading("Backward");
        self.matrix(
            &format!("dL/d{name} {shape}, the gradient arriving from the layers above:"),
            &gradient,
            rows,
            cols,
        );
        self.blank();
        gradient
    }

    /// A matrix, indented, with a label line above it.
    pub(crate) fn matrix(&mut self, label: &str, values: &[f64], rows: usize, cols: usize) {
        self.line(label);
        for row in grid(values, rows, cols) {
            self.raw(&format!("    {row}"));
        }
    }

    /// Lines of terms, at most `MAX_TERM_LINES` of them.
    pub(crate) fn term_lines(&mut self, lines: Vec<String>) {
        let total = lines.len();
        for line in lines.into_iter().take(MAX_TERM_LINES) {
            self.line(format!("  {line}"));
        }
        if total > MAX_TERM_LINES {
            self.line(format!(
                "  ... and {} more, computed the same way",
                total - MAX_TERM_LINES
            ));
        }
    }

    /// Compares a hand-computed result (a gradient, or the forward output) with strata's and
    /// prints the verdict.
    pub(crate) fn check(&mut self, name: &str, by_hand: &[f64], autograd: Option<Tensor>) {
        let autograd = autograd.map(|t| t.to_vec()).unwrap_or_default();
        let scale = by_hand.iter().fold(1f64, |m, v| m.max(v.abs()));
        let tolerance = 1e-5 * scale;
        let max_abs_difference = if autograd.len() == by_hand.len() {
            by_hand
                .iter()
                .zip(&autograd)
                .map(|(&h, &a)| (h - a as f64).abs())
                .fold(0f64, f64::max)
        } else {
            f64::INFINITY
        };
        let check = GradientCheck {
            name: name.to_string(),
            max_abs_difference,
            tolerance,
        };
        if check.agrees() {
            self.line(format!(
                "  strata's {name} matches the one above: largest difference {}",
                short(max_abs_difference)
            ));
        } else {
            self.line(format!(
                "  MISMATCH: strata's {name} differs from the one above by up to \
                 {max_abs_difference:e} (strata: {autograd:?})"
            ));
        }
        self.checks.push(check);
    }
}

/// A number as a course writes it: integers without decimals, others with four.
pub(crate) fn num(v: f64) -> String {
    if v.is_infinite() {
        return if v < 0.0 { "-∞".into() } else { "∞".into() };
    }
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.4}")
    }
}

/// A factor in a product: negatives in parentheses.
pub(crate) fn factor(v: f64) -> String {
    if v < 0.0 && num(v) != "0" {
        format!("({})", num(v))
    } else {
        num(v)
    }
}

/// `a + b − c ...` for a list of numbers.
pub(crate) fn sum_expression(values: &[f64]) -> String {
    let mut text = String::new();
    for (i, &v) in values.iter().enumerate() {
        match (i, v < 0.0) {
            (0, _) => text.push_str(&num(v)),
            (_, true) => text.push_str(&format!(" − {}", num(-v))),
            (_, false) => text.push_str(&format!(" + {}", num(v))),
        }
    }
    text
}

/// A list of numbers, `[a, b, c]`.
pub(crate) fn list(values: &[f64]) -> String {
    let parts: Vec<String> = values.iter().map(|&v| num(v)).collect();
    format!("[{}]", parts.join(", "))
}

/// A small positive difference, for the agreement line.
fn short(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else {
        format!("{v:.1e}")
    }
}

/// `a·b + c·d + ...`, or `0` for no terms.
pub(crate) fn sum_of_products(terms: &[(f64, f64)]) -> String {
    if terms.is_empty() {
        return "0 (nothing reaches it)".into();
    }
    terms
        .iter()
        .map(|&(a, b)| format!("{}·{}", factor(a), factor(b)))
        .collect::<Vec<_>>()
        .join(" + ")
}

/// Rows of a right-aligned matrix.
pub(crate) fn grid(values: &[f64], rows: usize, cols: usize) -> Vec<String> {
    let cells: Vec<String> = values.iter().map(|&v| num(v)).collect();
    let width = cells.iter().map(|c| c.chars().count()).max().unwrap_or(1);
    (0..rows)
        .map(|r| {
            (0..cols)
                .map(|c| format!("{:>width$}", cells[r * cols + c]))
                .collect::<Vec<_>>()
                .join("  ")
        })
        .collect()
}

/// Random integers in `low..=high`.
pub(crate) fn small_integers(n: usize, low: i64, high: i64, generator: &mut Generator) -> Vec<f64> {
    let span = (high - low + 1) as usize;
    (0..n)
        .map(|_| (low + generator.below(span) as i64) as f64)
        .collect()
}

/// The gradient arriving from above, `dL/dY`: a fixed pattern of small integers (including a
/// zero, so that one output visibly passes nothing back). Printed as if `L = Σ dY ⊙ Y`.
pub(crate) fn upstream_gradient(n: usize) -> Vec<f64> {
    const PATTERN: [f64; 4] = [1.0, -1.0, 2.0, 0.0];
    (0..n).map(|i| PATTERN[i % PATTERN.len()]).collect()
}

/// An f32 tensor of `values`, requiring a gradient.
pub(crate) fn leaf(values: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(values.iter().map(|&v| v as f32).collect(), shape).set_requires_grad(true)
}

/// An f32 tensor of `values`.
pub(crate) fn constant(values: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(values.iter().map(|&v| v as f32).collect(), shape)
}

/// Back-propagates `dL/dY = upstream` from `y` (that is, from `L = Σ upstream ⊙ y`).
pub(crate) fn backpropagate(y: &Tensor, upstream: &[f64]) {
    y.mul(&constant(upstream, y.shape())).sum_all().backward();
}

/// Rejects a size of zero or one too large to print sensibly.
pub(crate) fn check_size(what: &str, value: usize, max: usize) -> Result<usize, String> {
    if value == 0 || value > max {
        return Err(format!(
            "{what} must be between 1 and {max} for a printed example (got {value})"
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_choices() {
        for op in Op::ALL {
            assert_eq!(Op::parse(op.name()), Ok(op));
        }
        assert_eq!(
            Op::parse("Softmax_Cross_Entropy"),
            Ok(Op::SoftmaxCrossEntropy)
        );
        assert_eq!(Op::parse("batch-norm"), Ok(Op::BatchNorm));
        let error = Op::parse("conv3d").unwrap_err();
        assert!(
            error.contains("conv3d") && error.contains("max_pool2d"),
            "{error}"
        );
    }

    #[test]
    fn a_result_that_differs_from_strata_is_reported_as_a_mismatch() {
        let mut page = Page::default();
        let strata = Tensor::from_vec(vec![1.0, 2.0], &[2]);
        page.check("dL/dX", &[1.0, 2.0], Some(strata.clone()));
        assert!(page.checks[0].agrees());
        page.check("dL/dW", &[1.0, 2.5], Some(strata));
        page.check("dL/db", &[1.0], None);
        assert!(!page.checks[1].agrees() && !page.checks[2].agrees());
        assert!(
            page.text.contains("MISMATCH: strata's dL/dW"),
            "{}",
            page.text
        );
        let explanation = Explanation {
            text: page.text,
            checks: page.checks,
        };
        assert!(!explanation.agrees());
    }

    #[test]
    fn long_lines_wrap_between_words_and_matrices_keep_their_spacing() {
        let mut page = Page::default();
        page.line("word ".repeat(40));
        page.matrix("M:", &[1.0, -10.0, 3.0, 4.0], 2, 2);
        let lines: Vec<&str> = page.text.lines().collect();
        assert!(
            lines.iter().all(|l| l.chars().count() <= WIDTH),
            "{lines:?}"
        );
        assert!(lines[1].starts_with("  word"), "{lines:?}");
        assert!(page.text.contains("      1  -10\n"), "{}", page.text);
    }

    #[test]
    fn numbers_print_as_a_course_writes_them() {
        assert_eq!(num(15.0), "15");
        assert_eq!(num(-0.0), "0");
        assert_eq!(num(0.25), "0.2500");
        assert_eq!(factor(-2.0), "(-2)");
        assert_eq!(sum_of_products(&[(1.0, 2.0), (-1.0, 3.0)]), "1·2 + (-1)·3");
        assert_eq!(sum_expression(&[3.0, -2.0, 0.5]), "3 − 2 + 0.5000");
        assert_eq!(list(&[1.0, -0.5]), "[1, -0.5000]");
        assert_eq!(
            grid(&[1.0, -10.0, 3.0, 4.0], 2, 2),
            vec!["  1  -10", "  3    4"]
        );
    }
}
