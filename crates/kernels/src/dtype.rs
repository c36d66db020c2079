//! The element type, kept in one place.
//!
//! Tensors store `f32` today. Everything that needs to know the element type asks [`DType`]
//! (size in bytes, name in checkpoints), so adding f16/bf16 storage means adding variants here
//! and conversions at the storage boundary, not touching every kernel signature.

use std::fmt;

/// Element type of a tensor's storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE-754 single precision, the type every kernel computes in.
    F32,
}

impl DType {
    /// Bytes per element.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
        }
    }

    /// The name used by safetensors and PyTorch (`F32`).
    pub fn safetensors_name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DType::F32 => f.write_str("f32"),
        }
    }
}
