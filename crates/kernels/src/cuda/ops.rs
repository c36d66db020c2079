//! The integer op codes of `kernels/elementwise.cu`, mapped from the CPU enums (the CUDA twin
//! of each op is selected by the same enum value). A unit test checks these numbers against
//! the `#define UNARY_*` / `BINARY_*` lines of the kernel source.

use crate::elementwise::{BinaryOp, UnaryOp};

/// `(op code, scalar)` for the `op`/`p` parameters of the unary kernels.
pub fn unary_code(op: UnaryOp) -> (i32, f32) {
    match op {
        UnaryOp::Identity => (0, 0.0),
        UnaryOp::Neg => (1, 0.0),
        UnaryOp::Exp => (2, 0.0),
        UnaryOp::Log => (3, 0.0),
        UnaryOp::Sqrt => (4, 0.0),
        UnaryOp::Relu => (5, 0.0),
        UnaryOp::Tanh => (6, 0.0),
        UnaryOp::Sigmoid => (7, 0.0),
        UnaryOp::Powf(p) => (8, p),
        UnaryOp::AddScalar(c) => (9, c),
        UnaryOp::MulScalar(c) => (10, c),
        UnaryOp::PositiveMask => (11, 0.0),
    }
}

/// The `op` parameter of the binary kernels.
pub fn binary_code(op: BinaryOp) -> i32 {
    match op {
        BinaryOp::Add => 0,
        BinaryOp::Sub => 1,
        BinaryOp::Mul => 2,
        BinaryOp::Div => 3,
        BinaryOp::ReluBackward => 4,
        BinaryOp::TanhBackward => 5,
        BinaryOp::SigmoidBackward => 6,
    }
}

/// Every unary op once (scalar-carrying ops with a sample scalar), for tests.
pub const ALL_UNARY: &[UnaryOp] = &[
    UnaryOp::Identity,
    UnaryOp::Neg,
    UnaryOp::Exp,
    UnaryOp::Log,
    UnaryOp::Sqrt,
    UnaryOp::Relu,
    UnaryOp::Tanh,
    UnaryOp::Sigmoid,
    UnaryOp::Powf(1.5),
    UnaryOp::AddScalar(0.25),
    UnaryOp::MulScalar(-3.0),
    UnaryOp::PositiveMask,
];

/// Every binary op once, for tests.
pub const ALL_BINARY: &[BinaryOp] = &[
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::ReluBackward,
    BinaryOp::TanhBackward,
    BinaryOp::SigmoidBackward,
];

#[cfg(all(test, any(feature = "cuda", feature = "cuda-emu")))]
mod tests {
    use super::*;

    fn defined(prefix: &str) -> Vec<(String, i32)> {
        let src = crate::cuda::sources::source("elementwise.cu").unwrap();
        src.lines()
            .filter_map(|l| {
                let mut t = l.split_whitespace();
                (t.next()? == "#define").then_some(())?;
                let name = t.next()?;
                let value = t.next()?.parse().ok()?;
                name.starts_with(prefix).then(|| (name.to_string(), value))
            })
            .collect()
    }

    fn screaming(debug: &str) -> String {
        let name = debug.split('(').next().unwrap();
        let mut out = String::new();
        for (i, c) in name.chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
        }
        out
    }

    #[test]
    fn codes_match_the_kernel_source() {
        let unary = defined("UNARY_");
        assert_eq!(unary.len(), ALL_UNARY.len(), "{unary:?}");
        for &op in ALL_UNARY {
            let want = format!("UNARY_{}", screaming(&format!("{op:?}")));
            let code = unary_code(op).0;
            assert!(unary.contains(&(want.clone(), code)), "{want} != {code}");
        }
        let binary = defined("BINARY_");
        assert_eq!(binary.len(), ALL_BINARY.len(), "{binary:?}");
        for &op in ALL_BINARY {
            let want = format!("BINARY_{}", screaming(&format!("{op:?}")));
            assert!(binary.contains(&(want.clone(), binary_code(op))), "{want}");
        }
    }
}
