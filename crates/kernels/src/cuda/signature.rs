//! Parsing `extern "C" __global__ void name(type a, type b, ...)` out of a `.cu` source.
//!
//! Shared by the library (kernel names per file, argument checks) and by `build.rs` (which
//! includes this file with `#[path]` to check every signature and to generate the twin tests'
//! typed launchers), so both always agree on what a kernel is. The accepted parameter types
//! are the portable ones of [`PARAM_TYPES`].

/// One kernel parameter: its C type (normalised, e.g. `const float*`) and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// Normalised C type, one of the C types in [`PARAM_TYPES`], e.g. `const float*`.
    pub c_type: String,
    /// Parameter name as written in the source.
    pub name: String,
}

/// One `__global__` function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernel {
    /// The kernel's `extern "C"` name, which is also its launch symbol.
    pub name: String,
    /// Parameters in declaration order.
    pub params: Vec<Param>,
}

/// The C parameter types a kernel may take, with the Rust FFI type of each.
pub const PARAM_TYPES: &[(&str, &str)] = &[
    ("float*", "*mut f32"),
    ("const float*", "*const f32"),
    ("int*", "*mut i32"),
    ("const int*", "*const i32"),
    ("unsigned int*", "*mut u32"),
    ("const unsigned int*", "*const u32"),
    ("unsigned short*", "*mut u16"),
    ("const unsigned short*", "*const u16"),
    ("int", "i32"),
    ("unsigned int", "u32"),
    ("float", "f32"),
    ("unsigned long long", "u64"),
];

/// The Rust FFI type for a normalised C parameter type.
pub fn rust_type(c_type: &str) -> Option<&'static str> {
    PARAM_TYPES
        .iter()
        .find(|(c, _)| *c == c_type)
        .map(|(_, r)| *r)
}

/// Removes `//` and `/* */` comments (keeping line breaks) so commented-out kernels don't count.
pub fn strip_comments(src: &str) -> String {
    let bytes = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let c = bytes[i] as char;
        if in_string {
            out.push(c);
            if c == '\\' && i + 1 < bytes.len() {
                out.push(bytes[i + 1] as char);
                i += 1;
            } else if c == '"' {
                in_string = false;
            }
            i += 1;
        } else if c == '"' {
            in_string = true;
            out.push(c);
            i += 1;
        } else if src[i..].starts_with("//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if src[i..].starts_with("/*") {
            i += 2;
            while i < bytes.len() && !src[i..].starts_with("*/") {
                if bytes[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 2;
        } else {
            // Multi-byte UTF-8 (only ever inside comments in practice) is copied whole.
            let ch = src[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Every `__global__` kernel of `src`, in source order. `Err` names the file and the
/// offending kernel when a signature breaks the conventions (not `extern "C"`, not `void`,
/// or a parameter type outside [`PARAM_TYPES`]).
pub fn parse_kernels(file: &str, src: &str) -> Result<Vec<Kernel>, String> {
    let code = strip_comments(src);
    let mut kernels = Vec::new();
    let mut rest = code.as_str();
    while let Some(pos) = rest.find("__global__") {
        let before = &rest[..pos];
        let after = &rest[pos + "__global__".len()..];
        let line_start = before.rfind(['\n', ';', '}']).map_or(0, |p| p + 1);
        let head = before[line_start..].trim();
        let paren = after
            .find('(')
            .ok_or_else(|| format!("{file}: `__global__` without a parameter list"))?;
        let decl: Vec<&str> = after[..paren].split_whitespace().collect();
        let name = decl.last().copied().unwrap_or("").to_string();
        if head != "extern \"C\"" {
            return Err(format!(
                "{file}: kernel `{name}` must be declared `extern \"C\" __global__ void {name}(...)`"
            ));
        }
        if !decl.contains(&"void") {
            return Err(format!("{file}: kernel `{name}` must return void"));
        }
        let close = after[paren..]
            .find(')')
            .ok_or_else(|| format!("{file}: kernel `{name}`: unclosed parameter list"))?;
        let list = &after[paren + 1..paren + close];
        let mut params = Vec::new();
        for raw in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if raw == "void" {
                continue;
            }
            let spaced = raw.replace('*', " * ");
            let toks: Vec<&str> = spaced
                .split_whitespace()
                .filter(|t| *t != "__restrict__" && *t != "__restrict")
                .collect();
            let (pname, ty) = toks
                .split_last()
                .ok_or_else(|| format!("{file}: kernel `{name}`: empty parameter"))?;
            let mut c_type = String::new();
            for t in ty {
                if *t == "*" {
                    c_type.push('*');
                } else {
                    if !c_type.is_empty() {
                        c_type.push(' ');
                    }
                    c_type.push_str(t);
                }
            }
            let c_type = c_type.replace("unsigned*", "unsigned int*");
            let c_type = match c_type.as_str() {
                "unsigned" => "unsigned int".to_string(),
                "const unsigned*" => "const unsigned int*".to_string(),
                "float const*" => "const float*".to_string(),
                "int const*" => "const int*".to_string(),
                _ => c_type,
            };
            if rust_type(&c_type).is_none() {
                return Err(format!(
                    "{file}: kernel `{name}` parameter `{pname}` has type `{c_type}`; allowed: {}",
                    PARAM_TYPES
                        .iter()
                        .map(|(c, _)| *c)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            params.push(Param {
                c_type,
                name: pname.to_string(),
            });
        }
        kernels.push(Kernel { name, params });
        rest = &after[paren + close..];
    }
    Ok(kernels)
}
