//! A layer-by-layer table like torchsummary's.

use crate::module::join;
use crate::{Module, ModuleExt};
use std::fmt;
use strata_tensor::{no_grad, Tensor};

/// One leaf layer of the network.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryRow {
    /// Dotted path (`conv1`, `net.3`, `convblock1.2`).
    pub name: String,
    /// The layer's own description.
    pub layer: String,
    /// Output shape for the summarised input (batch included).
    pub output_shape: Vec<usize>,
    /// Trainable parameters of this layer.
    pub params: usize,
}

/// The table plus totals.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// The shape the model was run on, batch included (e.g. `[1, 1, 28, 28]`).
    pub input_shape: Vec<usize>,
    /// One row per leaf layer, in the order the forward pass reaches them.
    pub rows: Vec<SummaryRow>,
    /// All parameters (trainable and frozen).
    pub total_params: usize,
    /// Parameters that require a gradient.
    pub trainable_params: usize,
    /// Frozen parameters (`requires_grad` off): `total_params - trainable_params`.
    pub non_trainable_params: usize,
    /// Elements of non-trainable state (BatchNorm running statistics), not counted above.
    pub buffer_elements: usize,
}

/// Runs `model` on zeros of `input_shape` (under `no_grad`, in evaluation mode) and records
/// every leaf layer's output shape and parameter count. The model is left in training mode.
///
/// ```
/// use strata_nn::layers::{Flatten, Linear, Sequential};
/// use strata_nn::{summary, Generator, Module};
///
/// let layers: Vec<Box<dyn Module>> = vec![
///     Box::new(Flatten),
///     Box::new(Linear::new(784, 10, &mut Generator::seed(0))),
/// ];
/// let model = Sequential::new(layers);
/// let table = summary(&model, &[1, 1, 28, 28]);
/// assert_eq!(table.rows[1].name, "1");
/// assert_eq!(table.rows[1].output_shape, vec![1, 10]);
/// assert_eq!(table.total_params, 784 * 10 + 10);
/// println!("{table}"); // the torchsummary-style table
/// ```
pub fn summary(model: &dyn Module, input_shape: &[usize]) -> Summary {
    fn walk(m: &dyn Module, prefix: &str, x: Tensor, rows: &mut Vec<SummaryRow>) -> Tensor {
        let children = m.children();
        if children.is_empty() {
            let y = m.forward(&x);
            rows.push(SummaryRow {
                name: prefix.to_string(),
                layer: m.describe(),
                output_shape: y.shape().to_vec(),
                params: m.num_parameters(),
            });
            return y;
        }
        children.into_iter().fold(x, |h, (name, child)| {
            walk(child, &join(prefix, &name), h, rows)
        })
    }
    let _guard = no_grad();
    model.eval();
    let mut rows = Vec::new();
    walk(model, "", Tensor::zeros(input_shape), &mut rows);
    model.train();
    let params = model.parameters();
    let trainable = params
        .iter()
        .filter(|(_, t)| t.requires_grad())
        .map(|(_, t)| t.numel())
        .sum();
    let total: usize = params.iter().map(|(_, t)| t.numel()).sum();
    Summary {
        input_shape: input_shape.to_vec(),
        rows,
        total_params: total,
        trainable_params: trainable,
        non_trainable_params: total - trainable,
        buffer_elements: model.buffers().iter().map(|(_, t)| t.numel()).sum(),
    }
}

/// `n` with its thousands separated by commas: 6379786 → `6,379,786`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name_w = self
            .rows
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(4)
            .max(5);
        let layer_w = self
            .rows
            .iter()
            .map(|r| r.layer.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let line = "-".repeat(name_w + layer_w + 40);
        writeln!(f, "{line}")?;
        writeln!(
            f,
            "{:<name_w$}  {:<layer_w$}  {:<22}  {:>12}",
            "Name", "Layer", "Output shape", "Params"
        )?;
        writeln!(f, "{line}")?;
        writeln!(
            f,
            "{:<name_w$}  {:<layer_w$}  {:<22}  {:>12}",
            "input",
            "",
            format!("{:?}", self.input_shape),
            ""
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<name_w$}  {:<layer_w$}  {:<22}  {:>12}",
                r.name,
                r.layer,
                format!("{:?}", r.output_shape),
                thousands(r.params)
            )?;
        }
        writeln!(f, "{line}")?;
        writeln!(f, "Total params: {}", thousands(self.total_params))?;
        writeln!(f, "Trainable params: {}", thousands(self.trainable_params))?;
        writeln!(
            f,
            "Non-trainable params: {}",
            thousands(self.non_trainable_params)
        )?;
        if self.buffer_elements > 0 {
            writeln!(
                f,
                "Buffers (running statistics, not trained): {}",
                thousands(self.buffer_elements)
            )?;
        }
        write!(f, "{line}")
    }
}
