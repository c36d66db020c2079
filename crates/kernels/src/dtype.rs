//! The element type, kept in one place.
//!
//! Tensors compute in `f32`; f16 and bf16 are storage formats (half the memory and bandwidth)
//! that tensors convert to and from, and that the half-precision GEMM reads directly.
//! Everything that needs to know the element type asks [`DType`] (size in bytes, name in
//! checkpoints).

use std::fmt;

/// Element type of a tensor's storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE-754 single precision, the type every kernel computes in.
    F32,
    /// IEEE-754 half precision (binary16): storage and GEMM operands.
    F16,
    /// bfloat16 (f32's exponent, 7 fraction bits): storage and GEMM operands.
    BF16,
}

impl DType {
    /// Bytes per element.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }

    /// The name used by safetensors and PyTorch (`F32`).
    pub fn safetensors_name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
        }
    }
}

impl DType {
    /// The 16-bit format of a half-precision type, `None` for f32.
    pub fn half_format(self) -> Option<crate::half_precision::HalfFormat> {
        match self {
            DType::F32 => None,
            DType::F16 => Some(crate::half_precision::HalfFormat::F16),
            DType::BF16 => Some(crate::half_precision::HalfFormat::Bf16),
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DType::F32 => f.write_str("f32"),
            DType::F16 => f.write_str("f16"),
            DType::BF16 => f.write_str("bf16"),
        }
    }
}
