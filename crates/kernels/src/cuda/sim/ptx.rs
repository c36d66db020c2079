//! PTX text (as NVRTC writes it) to a compact, pre-decoded program, once per module.
//!
//! The subset is what NVRTC emits for `kernels/*.cu` plus what a kernel writer commonly adds
//! (vector loads, atomics, votes): `.entry` functions with `.param`, `.reg` and `.shared`
//! declarations, labels, predicated instructions and `.loc` line information. Every
//! instruction is decoded into an [`Instr`] whose operands are register indices, immediates
//! or resolved addresses, so a launch never looks at text. An instruction outside the subset
//! makes its kernel (only that one) fail to load, with a message naming the instruction, the
//! kernel and the PTX line: never a silent wrong answer.

// Items named after the PTX ISA (types, state spaces, opcodes) or internal to the simulator:
// the ISA manual and the module comment above document them.
#![allow(missing_docs)]

use std::collections::{BTreeSet, HashMap};

/// Scalar type of an instruction or operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    Pred,
    B8,
    B16,
    B32,
    B64,
    U8,
    U16,
    U32,
    U64,
    S8,
    S16,
    S32,
    S64,
    F16,
    F32,
    F64,
}

impl Ty {
    fn parse(s: &str) -> Option<Ty> {
        Some(match s {
            "pred" => Ty::Pred,
            "b8" => Ty::B8,
            "b16" => Ty::B16,
            "b32" => Ty::B32,
            "b64" => Ty::B64,
            "u8" => Ty::U8,
            "u16" => Ty::U16,
            "u32" => Ty::U32,
            "u64" => Ty::U64,
            "s8" => Ty::S8,
            "s16" => Ty::S16,
            "s32" => Ty::S32,
            "s64" => Ty::S64,
            "f16" => Ty::F16,
            "f32" => Ty::F32,
            "f64" => Ty::F64,
            _ => return None,
        })
    }

    /// Width in bytes (a predicate counts as one).
    pub fn bytes(self) -> u32 {
        match self {
            Ty::Pred | Ty::B8 | Ty::U8 | Ty::S8 => 1,
            Ty::B16 | Ty::U16 | Ty::S16 | Ty::F16 => 2,
            Ty::B32 | Ty::U32 | Ty::S32 | Ty::F32 => 4,
            Ty::B64 | Ty::U64 | Ty::S64 | Ty::F64 => 8,
        }
    }

    pub fn bits(self) -> u32 {
        self.bytes() * 8
    }

    pub fn is_signed(self) -> bool {
        matches!(self, Ty::S8 | Ty::S16 | Ty::S32 | Ty::S64)
    }

    pub fn is_float(self) -> bool {
        matches!(self, Ty::F16 | Ty::F32 | Ty::F64)
    }
}

/// A state space of a load or store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    Global,
    Shared,
    Param,
    Local,
    /// A generic address: global, or the shared window (see `exec`).
    Generic,
}

/// A special register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {
    Tid(u8),
    Ntid(u8),
    Ctaid(u8),
    Nctaid(u8),
    LaneId,
    WarpId,
    LaneMaskLt,
}

/// An operand after decoding.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Opnd {
    None,
    Reg(u32),
    Imm(u64),
    Special(Special),
    /// `[base + offset]`: a register base, or a constant (shared symbol address, 0).
    Addr {
        base: Option<u32>,
        offset: i64,
    },
}

/// Comparison of `setp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Lo,
    Ls,
    Hi,
    Hs,
    Equ,
    Neu,
    Ltu,
    Leu,
    Gtu,
    Geu,
    Num,
    Nan,
}

/// Rounding modifier of a float instruction or conversion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Round {
    /// No modifier: for float arithmetic, round to nearest (ptxas may contract mul+add).
    Default,
    Rn,
    Rz,
    Rm,
    Rp,
    /// Round to an integral value (`cvt.rni` etc.), in the given direction.
    Rni,
    Rzi,
    Rmi,
    Rpi,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MulMode {
    Lo,
    Hi,
    Wide,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShflMode {
    Up,
    Down,
    Bfly,
    Idx,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteMode {
    All,
    Any,
    Uni,
    Ballot,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtomOp {
    Add,
    Min,
    Max,
    Exch,
    Cas,
    And,
    Or,
    Xor,
    Inc,
    Dec,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoolOp {
    And,
    Or,
    Xor,
}

/// What an instruction does; its type is in [`Instr::ty`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    Mov,
    Ld {
        space: Space,
        vec: u8,
    },
    St {
        space: Space,
        vec: u8,
    },
    Cvta {
        to_generic: bool,
        space: Space,
    },
    Add {
        round: Round,
        sat: bool,
    },
    Sub {
        round: Round,
    },
    Mul {
        mode: MulMode,
        round: Round,
    },
    Mad {
        mode: MulMode,
    },
    Fma {
        round: Round,
    },
    Div {
        round: Round,
        approx: bool,
    },
    Rem,
    Min,
    Max,
    Neg,
    Abs,
    And,
    Or,
    Xor,
    Not,
    Shl,
    Shr,
    Popc,
    Clz,
    Brev,
    Setp {
        cmp: Cmp,
        combine: Option<BoolOp>,
    },
    Selp,
    Cvt {
        from: Ty,
        round: Round,
        sat: bool,
        ftz: bool,
    },
    Ex2 {
        ftz: bool,
    },
    Lg2 {
        ftz: bool,
    },
    Rcp {
        approx: bool,
        ftz: bool,
    },
    Sqrt {
        approx: bool,
        ftz: bool,
    },
    Rsqrt {
        ftz: bool,
    },
    Sin {
        ftz: bool,
    },
    Cos {
        ftz: bool,
    },
    Tanh,
    Shfl {
        mode: ShflMode,
    },
    Vote {
        mode: VoteMode,
    },
    Bar {
        aligned_all: bool,
    },
    /// `bar.warp.sync mask`: the named lanes of the warp meet.
    WarpSync,
    Bra,
    Ret,
    Atom {
        space: Space,
        op: AtomOp,
    },
    Red {
        space: Space,
        op: AtomOp,
    },
    /// `membar`, `fence`: ordering only; the simulator's memory is sequentially consistent.
    Fence,
}

/// How an instruction is counted in the kernel metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// f32/f64/f16 arithmetic (add, mul, fma, min, max, ...).
    Float,
    /// Special-function unit: ex2, lg2, rcp, sqrt, rsqrt, sin, cos, tanh, div.
    Sfu,
    /// Integer and bitwise arithmetic, comparisons, selects, moves.
    Integer,
    /// Conversions.
    Convert,
    /// Global memory loads and stores (and atomics).
    Global,
    /// Shared memory loads and stores.
    Shared,
    /// Parameter loads.
    Param,
    /// Branches and returns.
    Control,
    /// Barriers, shuffles, votes, fences.
    Sync,
}

impl Class {
    pub const ALL: [Class; 9] = [
        Class::Float,
        Class::Sfu,
        Class::Integer,
        Class::Convert,
        Class::Global,
        Class::Shared,
        Class::Param,
        Class::Control,
        Class::Sync,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Class::Float => "float",
            Class::Sfu => "sfu",
            Class::Integer => "integer",
            Class::Convert => "convert",
            Class::Global => "global",
            Class::Shared => "shared",
            Class::Param => "param",
            Class::Control => "control",
            Class::Sync => "sync",
        }
    }
}

/// One decoded instruction.
#[derive(Clone, Debug)]
pub struct Instr {
    pub op: Op,
    pub ty: Ty,
    /// `@%p` / `@!%p`: the predicate register and whether it is negated.
    pub guard: Option<(u32, bool)>,
    /// Destinations: one register, two (`shfl`'s `d|p`, `setp`'s `p|q`) or a vector.
    pub dst: [Opnd; 4],
    /// Sources (for a store: the address first, then the values).
    pub src: [Opnd; 4],
    /// Branch target (an instruction index).
    pub target: u32,
    pub class: Class,
    /// Floating-point operations per lane (fma counts two).
    pub flops: u8,
    /// The opcode as written, for messages and the opcode inventory.
    pub text: &'static str,
    /// 1-based line in the PTX text.
    pub ptx_line: u32,
    /// Source file index (`.file`) and line from the last `.loc`, if any.
    pub loc: Option<(u32, u32)>,
}

/// A `.shared` variable of a kernel (or of the module, visible to every kernel).
#[derive(Clone, Debug)]
pub struct SharedVar {
    /// The PTX (mangled) name.
    pub name: String,
    /// Readable name: the last identifier of the mangled one (`warp_totals`).
    pub short: String,
    pub bytes: u32,
    pub align: u32,
    /// Where the simulator places it in a block's shared window (red zones between variables).
    pub sim_offset: u32,
}

/// A kernel parameter.
#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub ty: Ty,
    pub offset: u32,
}

/// One `.entry`.
#[derive(Clone, Debug)]
pub struct Kernel {
    pub name: String,
    pub params: Vec<Param>,
    pub param_bytes: u32,
    /// Number of virtual registers (every `%x<N>` of every `.reg`).
    pub registers: u32,
    pub shared: Vec<SharedVar>,
    /// Shared memory a GPU gives the kernel (the variables packed with their alignment).
    pub shared_bytes: u32,
    /// Size of the simulator's shared window (variables plus red zones).
    pub shared_window: u32,
    pub code: Vec<Instr>,
}

/// A decoded module: its kernels, or why a kernel could not be decoded.
#[derive(Debug)]
pub struct Module {
    /// `kernels/<file>.cu` as given by the caller.
    pub name: String,
    pub kernels: HashMap<String, Result<Kernel, String>>,
    /// `.file` index to a readable path (`kernels/<base name>`).
    pub files: HashMap<u32, String>,
    /// Every opcode spelling found in the module's instructions (decoded or not).
    pub opcodes: BTreeSet<String>,
}

impl Module {
    /// "kernels/x.cu:LINE" for an instruction with line information.
    pub fn source_line(&self, instr: &Instr) -> Option<String> {
        let (file, line) = instr.loc?;
        if line == 0 {
            return None;
        }
        let path = self.files.get(&file).cloned().unwrap_or_else(|| "?".into());
        Some(format!("{path}:{line}"))
    }
}

/// Red zone between shared variables in the simulator's window, so an overrun of one array
/// is an out-of-bounds access instead of a read of its neighbour.
pub const SHARED_RED_ZONE: u32 = 256;

/// The last identifier of a mangled C++ name: `_ZZ...block_sumEfE11warp_totals` → `warp_totals`.
pub fn short_name(mangled: &str) -> String {
    let b = mangled.as_bytes();
    // Try every digit run: the one whose length prefix reaches the end exactly.
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_digit()) {
            let mut j = i;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if let Ok(n) = mangled[i..j].parse::<usize>() {
                if n > 0 && j + n == b.len() {
                    return mangled[j..].to_string();
                }
            }
            i = j;
        } else {
            i += 1;
        }
    }
    mangled.to_string()
}

/// Splits `a, [b+4], {c, d}` at top-level commas.
fn split_operands(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '[' | '{' => {
                depth += 1;
                cur.push(c)
            }
            ']' | '}' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// Parses an integer literal (decimal, `0x` hex, optional sign, optional `U` suffix).
fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim().trim_end_matches('U');
    let (neg, body) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let v = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()? as i64
    } else {
        body.parse::<u64>().ok()? as i64
    };
    Some(if neg { v.wrapping_neg() } else { v })
}

/// Interns opcode spellings so [`Instr::text`] is a `&'static str` (a fixed, small set).
fn intern(s: &str) -> &'static str {
    use std::sync::{Mutex, OnceLock};
    static SET: OnceLock<Mutex<BTreeSet<&'static str>>> = OnceLock::new();
    let mut set = SET
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(found) = set.get(s) {
        return found;
    }
    let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
    set.insert(leaked);
    leaked
}

struct Line<'a> {
    number: u32,
    text: &'a str,
}

/// Parses a module. Only a structural problem (an unterminated entry) fails the whole module;
/// an unknown instruction fails only its kernel.
pub fn parse_module(name: &str, ptx: &str) -> Result<Module, String> {
    let mut module = Module {
        name: name.to_string(),
        kernels: HashMap::new(),
        files: HashMap::new(),
        opcodes: BTreeSet::new(),
    };
    let lines: Vec<Line> = ptx
        .lines()
        .enumerate()
        .map(|(i, l)| Line {
            number: i as u32 + 1,
            text: l.split("//").next().unwrap_or("").trim(),
        })
        .collect();
    // First the module-level declarations: .file names and module-scope .shared variables.
    let mut module_shared = Vec::new();
    let mut depth = 0i32;
    for line in &lines {
        let t = line.text;
        if depth == 0 {
            if let Some(rest) = t.strip_prefix(".file") {
                let mut parts = rest.split_whitespace();
                if let (Some(idx), Some(path)) = (parts.next(), parts.next()) {
                    if let Ok(idx) = idx.parse::<u32>() {
                        let path = path.trim_matches('"').trim_end_matches(',');
                        // NVRTC writes the working directory before the name it was given
                        // (`kernels/sim/planted.cu`); headers get their base name.
                        let rel = match path.rfind("kernels/") {
                            Some(p) => path[p + "kernels/".len()..].to_string(),
                            None => path.rsplit('/').next().unwrap_or(path).to_string(),
                        };
                        module.files.insert(idx, format!("kernels/{rel}"));
                    }
                }
            } else if t.starts_with(".shared") {
                module_shared.push(
                    parse_shared(t)
                        .map_err(|e| format!("{name}: PTX line {}: {e}", line.number))?,
                );
            }
        }
        depth += t.matches('{').count() as i32 - t.matches('}').count() as i32;
    }
    // Then each entry.
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].text;
        let is_entry = t.starts_with(".visible .entry") || t.starts_with(".entry");
        if !is_entry {
            i += 1;
            continue;
        }
        let kname = t
            .split(".entry")
            .nth(1)
            .unwrap_or("")
            .trim()
            .split(['(', ' '])
            .next()
            .unwrap_or("")
            .to_string();
        // Parameter list up to ')', then the body between '{' and its matching '}'.
        let mut params = Vec::new();
        let mut j = i;
        let mut param_text = String::new();
        loop {
            if j >= lines.len() {
                return Err(format!(
                    "{name}: kernel {kname}: unterminated parameter list"
                ));
            }
            param_text.push_str(lines[j].text);
            param_text.push(' ');
            if lines[j].text.contains(')') {
                break;
            }
            j += 1;
        }
        let inside = param_text
            .split_once('(')
            .map(|(_, r)| r.rsplit_once(')').map_or(r, |(l, _)| l))
            .unwrap_or("");
        let mut offset = 0u32;
        for p in inside.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let words: Vec<&str> = p.split_whitespace().collect();
            let ty = words
                .iter()
                .find_map(|w| w.strip_prefix('.').and_then(Ty::parse))
                .ok_or_else(|| format!("{name}: kernel {kname}: parameter `{p}` has no type"))?;
            let pname = words.last().unwrap_or(&"").to_string();
            let align = ty.bytes();
            offset = offset.div_ceil(align) * align;
            params.push(Param {
                name: pname,
                ty,
                offset,
            });
            offset += ty.bytes();
        }
        let param_bytes = offset;
        j += 1;
        while j < lines.len() && !lines[j].text.starts_with('{') {
            j += 1;
        }
        let body_start = j + 1;
        let mut depth = 1;
        let mut k = body_start;
        while k < lines.len() && depth > 0 {
            depth += lines[k].text.matches('{').count() as i32;
            depth -= lines[k].text.matches('}').count() as i32;
            k += 1;
        }
        if depth != 0 {
            return Err(format!("{name}: kernel {kname}: unterminated body"));
        }
        let body = &lines[body_start..k - 1];
        let kernel = decode_kernel(
            &kname,
            params,
            param_bytes,
            body,
            &module_shared,
            &mut module.opcodes,
        )
        .map_err(|e| format!("{name}: kernel {kname}: {e}"));
        module.kernels.insert(kname, kernel);
        i = k;
    }
    Ok(module)
}

fn parse_shared(t: &str) -> Result<SharedVar, String> {
    // .shared .align 4 .b8 name[128];   .shared .align 4 .f32 name[256];   .shared .f32 x;
    let t = t.trim_end_matches(';');
    let words: Vec<&str> = t.split_whitespace().collect();
    let mut align = 0;
    let mut ty = Ty::B8;
    let mut decl = "";
    let mut w = 1;
    while w < words.len() {
        match words[w] {
            ".align" => {
                align = words
                    .get(w + 1)
                    .and_then(|a| a.parse().ok())
                    .ok_or("bad .align")?;
                w += 2;
                continue;
            }
            s if s.starts_with('.') => {
                ty = Ty::parse(&s[1..]).ok_or_else(|| format!("unknown type {s}"))?;
            }
            s => decl = s,
        }
        w += 1;
    }
    let (vname, count) = match decl.split_once('[') {
        Some((n, rest)) => {
            let c = rest.trim_end_matches(']');
            (n, c.parse::<u32>().map_err(|_| format!("array size {c}"))?)
        }
        None => (decl, 1),
    };
    if align == 0 {
        align = ty.bytes();
    }
    Ok(SharedVar {
        name: vname.to_string(),
        short: short_name(vname),
        bytes: count * ty.bytes(),
        align,
        sim_offset: 0,
    })
}

/// Register name → index, from the `.reg` declarations (`%f<205>` declares %f0..%f204).
struct Registers {
    index: HashMap<String, u32>,
    count: u32,
}

impl Registers {
    fn declare(&mut self, decl: &str) -> Result<(), String> {
        // .reg .b32 %r<34>;  or .reg .f32 %f1, %f2;
        let rest = decl.trim_end_matches(';');
        let names = rest
            .split_whitespace()
            .skip(2)
            .collect::<Vec<_>>()
            .join(" ");
        for n in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if let Some((prefix, count)) = n.split_once('<') {
                let count: u32 = count
                    .trim_end_matches('>')
                    .parse()
                    .map_err(|_| format!("bad register declaration `{decl}`"))?;
                for k in 0..count {
                    self.index.insert(format!("{prefix}{k}"), self.count);
                    self.count += 1;
                }
            } else {
                self.index.insert(n.to_string(), self.count);
                self.count += 1;
            }
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Result<u32, String> {
        self.index
            .get(name)
            .copied()
            .ok_or_else(|| format!("undeclared register {name}"))
    }
}

struct Decoder<'a> {
    regs: Registers,
    /// Shared variable name → its address in the simulator's shared window.
    shared: HashMap<String, u32>,
    params: &'a [Param],
    labels: HashMap<String, u32>,
}

impl Decoder<'_> {
    fn special(name: &str) -> Option<Special> {
        let (base, dim) = match name.split_once('.') {
            Some((b, d)) => (b, d),
            None => (name, ""),
        };
        let d = match dim {
            "x" => 0,
            "y" => 1,
            "z" => 2,
            _ => 0,
        };
        Some(match base {
            "%tid" => Special::Tid(d),
            "%ntid" => Special::Ntid(d),
            "%ctaid" => Special::Ctaid(d),
            "%nctaid" => Special::Nctaid(d),
            "%laneid" => Special::LaneId,
            "%warpid" => Special::WarpId,
            "%lanemask_lt" => Special::LaneMaskLt,
            _ => return None,
        })
    }

    /// A source operand of type `ty`.
    fn value(&self, s: &str, ty: Ty) -> Result<Opnd, String> {
        let s = s.trim();
        if s.starts_with('%') {
            if let Some(sp) = Self::special(s) {
                return Ok(Opnd::Special(sp));
            }
            return Ok(Opnd::Reg(self.regs.get(s)?));
        }
        if let Some(h) = s.strip_prefix("0f").or_else(|| s.strip_prefix("0F")) {
            let bits = u32::from_str_radix(h, 16).map_err(|_| format!("float literal {s}"))?;
            // A 32-bit float literal given to an f64 instruction is widened.
            return Ok(Opnd::Imm(if ty == Ty::F64 {
                (f32::from_bits(bits) as f64).to_bits()
            } else {
                bits as u64
            }));
        }
        if let Some(h) = s.strip_prefix("0d").or_else(|| s.strip_prefix("0D")) {
            let bits = u64::from_str_radix(h, 16).map_err(|_| format!("double literal {s}"))?;
            return Ok(Opnd::Imm(if ty == Ty::F32 {
                (f64::from_bits(bits) as f32).to_bits() as u64
            } else {
                bits
            }));
        }
        if let Some(v) = parse_int(s) {
            return Ok(Opnd::Imm(v as u64));
        }
        if let Some(&addr) = self.shared.get(s) {
            return Ok(Opnd::Imm(addr as u64));
        }
        Err(format!("unknown operand `{s}`"))
    }

    fn dest(&self, s: &str) -> Result<Opnd, String> {
        let s = s.trim();
        if s == "_" {
            return Ok(Opnd::None);
        }
        Ok(Opnd::Reg(self.regs.get(s)?))
    }

    /// `[reg]`, `[reg+off]`, `[sym]`, `[sym+off]`, `[param]`.
    fn address(&self, s: &str, space: Space) -> Result<Opnd, String> {
        let inner = s
            .trim()
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .ok_or_else(|| format!("expected an address, found `{s}`"))?
            .trim();
        let (base, off) = match inner.find(['+', '-']).filter(|&p| p > 0) {
            Some(p) => {
                let off = parse_int(&inner[p..].replace('+', ""))
                    .ok_or_else(|| format!("bad address offset in `{s}`"))?;
                (inner[..p].trim(), off)
            }
            None => (inner, 0),
        };
        if base.starts_with('%') {
            return Ok(Opnd::Addr {
                base: Some(self.regs.get(base)?),
                offset: off,
            });
        }
        if space == Space::Param {
            let p = self
                .params
                .iter()
                .find(|p| p.name == base)
                .ok_or_else(|| format!("unknown parameter `{base}`"))?;
            return Ok(Opnd::Addr {
                base: None,
                offset: p.offset as i64 + off,
            });
        }
        if let Some(&addr) = self.shared.get(base) {
            return Ok(Opnd::Addr {
                base: None,
                offset: addr as i64 + off,
            });
        }
        if let Some(v) = parse_int(base) {
            return Ok(Opnd::Addr {
                base: None,
                offset: v + off,
            });
        }
        Err(format!("unknown address base `{base}`"))
    }

    /// `{%f1, %f2}` or a single register.
    fn vector(&self, s: &str, dest: bool, ty: Ty) -> Result<Vec<Opnd>, String> {
        let s = s.trim();
        if let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            inner
                .split(',')
                .map(|x| {
                    if dest {
                        self.dest(x)
                    } else {
                        self.value(x, ty)
                    }
                })
                .collect()
        } else if dest {
            Ok(vec![self.dest(s)?])
        } else {
            Ok(vec![self.value(s, ty)?])
        }
    }
}

fn space_of(m: &str) -> Option<Space> {
    Some(match m {
        "global" => Space::Global,
        "shared" => Space::Shared,
        "param" => Space::Param,
        "local" => Space::Local,
        _ => return None,
    })
}

fn cmp_of(m: &str) -> Option<Cmp> {
    Some(match m {
        "eq" => Cmp::Eq,
        "ne" => Cmp::Ne,
        "lt" => Cmp::Lt,
        "le" => Cmp::Le,
        "gt" => Cmp::Gt,
        "ge" => Cmp::Ge,
        "lo" => Cmp::Lo,
        "ls" => Cmp::Ls,
        "hi" => Cmp::Hi,
        "hs" => Cmp::Hs,
        "equ" => Cmp::Equ,
        "neu" => Cmp::Neu,
        "ltu" => Cmp::Ltu,
        "leu" => Cmp::Leu,
        "gtu" => Cmp::Gtu,
        "geu" => Cmp::Geu,
        "num" => Cmp::Num,
        "nan" => Cmp::Nan,
        _ => return None,
    })
}

fn round_of(mods: &[&str]) -> Round {
    for m in mods {
        match *m {
            "rn" => return Round::Rn,
            "rz" => return Round::Rz,
            "rm" => return Round::Rm,
            "rp" => return Round::Rp,
            "rni" => return Round::Rni,
            "rzi" => return Round::Rzi,
            "rmi" => return Round::Rmi,
            "rpi" => return Round::Rpi,
            _ => {}
        }
    }
    Round::Default
}

fn atom_op_of(mods: &[&str]) -> Option<AtomOp> {
    mods.iter().find_map(|m| {
        Some(match *m {
            "add" => AtomOp::Add,
            "min" => AtomOp::Min,
            "max" => AtomOp::Max,
            "exch" => AtomOp::Exch,
            "cas" => AtomOp::Cas,
            "and" => AtomOp::And,
            "or" => AtomOp::Or,
            "xor" => AtomOp::Xor,
            "inc" => AtomOp::Inc,
            "dec" => AtomOp::Dec,
            _ => return None,
        })
    })
}

fn decode_kernel(
    name: &str,
    params: Vec<Param>,
    param_bytes: u32,
    body: &[Line],
    module_shared: &[SharedVar],
    opcodes: &mut BTreeSet<String>,
) -> Result<Kernel, String> {
    let mut regs = Registers {
        index: HashMap::new(),
        count: 0,
    };
    // A module-scope variable belongs to the kernels that name it (as ptxas counts it).
    let mut shared: Vec<SharedVar> = module_shared
        .iter()
        .filter(|v| body.iter().any(|l| l.text.contains(v.name.as_str())))
        .cloned()
        .collect();
    // Pass 1: declarations, labels (instruction indices) and the instruction lines.
    let mut labels = HashMap::new();
    let mut instr_lines: Vec<(&Line, Option<(u32, u32)>)> = Vec::new();
    let mut loc = None;
    for line in body {
        let t = line.text;
        if t.is_empty() || t == "{" || t == "}" {
            continue;
        }
        if let Some(rest) = t.strip_prefix(".loc") {
            let mut parts = rest.split([' ', '\t', ',']).filter(|s| !s.is_empty());
            let file = parts.next().and_then(|f| f.parse().ok());
            let l = parts.next().and_then(|l| l.parse().ok());
            if let (Some(f), Some(l)) = (file, l) {
                loc = Some((f, l));
            }
            continue;
        }
        if t.starts_with(".reg") {
            regs.declare(t)?;
            continue;
        }
        if t.starts_with(".shared") {
            shared.push(parse_shared(t)?);
            continue;
        }
        if t.starts_with('.') {
            // .pragma, .maxntid, ... : no effect on execution.
            continue;
        }
        if let Some(label) = t.strip_suffix(':') {
            labels.insert(label.to_string(), instr_lines.len() as u32);
            continue;
        }
        instr_lines.push((line, loc));
    }
    // Shared layout: the real packing (for the launch check) and the simulator's window.
    let mut real = 0u32;
    let mut window = SHARED_RED_ZONE;
    for v in &mut shared {
        real = real.div_ceil(v.align.max(1)) * v.align.max(1) + v.bytes;
        let a = v.align.max(16);
        window = window.div_ceil(a) * a;
        v.sim_offset = window;
        window += v.bytes + SHARED_RED_ZONE;
    }
    let decoder = Decoder {
        regs,
        shared: shared
            .iter()
            .map(|v| (v.name.clone(), v.sim_offset))
            .collect(),
        params: &params,
        labels,
    };
    let mut code = Vec::with_capacity(instr_lines.len());
    let mut first_error = None;
    for (line, loc) in instr_lines {
        let t = line.text.trim_end_matches(';').trim();
        let unguarded = if t.starts_with('@') {
            t.split_once(char::is_whitespace)
                .map_or("", |(_, r)| r.trim())
        } else {
            t
        };
        let opcode = unguarded.split_whitespace().next().unwrap_or("");
        opcodes.insert(opcode.to_string());
        match decode_instr(&decoder, t, line.number, loc) {
            Ok(i) => code.push(i),
            Err(e) => {
                if first_error.is_none() {
                    first_error = Some(format!("PTX line {}: `{t}`: {e}", line.number));
                }
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let shared_bytes = real;
    let registers = decoder.regs.count;
    drop(decoder);
    Ok(Kernel {
        name: name.to_string(),
        params,
        param_bytes,
        registers,
        shared,
        shared_bytes,
        shared_window: window,
        code,
    })
}

fn decode_instr(
    d: &Decoder,
    t: &str,
    ptx_line: u32,
    loc: Option<(u32, u32)>,
) -> Result<Instr, String> {
    let mut rest = t;
    let mut guard = None;
    if let Some(g) = rest.strip_prefix('@') {
        let (p, r) = g
            .split_once(char::is_whitespace)
            .ok_or("guard without instruction")?;
        let (neg, p) = match p.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, p),
        };
        guard = Some((d.regs.get(p)?, neg));
        rest = r.trim();
    }
    let (opcode, operands) = match rest.split_once(char::is_whitespace) {
        Some((o, r)) => (o, r.trim()),
        None => (rest, ""),
    };
    let parts: Vec<&str> = opcode.split('.').collect();
    let base = parts[0];
    let mods = &parts[1..];
    let ops = split_operands(operands);
    // The instruction's type: the last type modifier
    let types: Vec<Ty> = mods.iter().filter_map(|m| Ty::parse(m)).collect();
    // (`cvt.to.from`: the destination's, the first.)
    let ty = if base == "cvt" {
        types.first().copied().unwrap_or(Ty::B32)
    } else {
        types.last().copied().unwrap_or(Ty::B32)
    };
    let has = |m: &str| mods.contains(&m);
    let space = mods.iter().find_map(|m| space_of(m));
    let vec = mods
        .iter()
        .find_map(|m| match *m {
            "v2" => Some(2u8),
            "v4" => Some(4u8),
            _ => None,
        })
        .unwrap_or(1);
    let none = [Opnd::None; 4];
    let mut dst = none;
    let mut src = none;
    let mut target = 0;
    let unknown = || format!("instruction `{opcode}` is not implemented by cuda-sim");
    let op_count = |n: usize| -> Result<(), String> {
        if ops.len() == n {
            Ok(())
        } else {
            Err(format!(
                "`{opcode}` takes {n} operands, found {}",
                ops.len()
            ))
        }
    };
    let float = ty.is_float();
    // Forms whose modifiers the interpreter does not model are refused, never run as if plain.
    let arithmetic = matches!(
        base,
        "add" | "sub" | "mul" | "fma" | "mad" | "div" | "rcp" | "sqrt"
    );
    if float && arithmetic && has("sat") {
        return Err(format!(
            "`{opcode}`: .sat on float arithmetic is not implemented by cuda-sim"
        ));
    }
    if float
        && has("ftz")
        && matches!(
            base,
            "add" | "sub" | "mul" | "fma" | "mad" | "min" | "max" | "setp" | "abs" | "neg" | "div"
        )
    {
        return Err(format!(
            "`{opcode}`: .ftz on this instruction is not implemented by cuda-sim"
        ));
    }
    let directed = has("rz") || has("rm") || has("rp");
    if directed && float && (ty == Ty::F64 || matches!(base, "div" | "rcp" | "sqrt")) {
        return Err(format!(
            "`{opcode}`: directed rounding here is not implemented by cuda-sim"
        ));
    }
    // `mul`/`mad`: which half (or the whole) of the double-width product.
    let mul_mode = if has("wide") {
        MulMode::Wide
    } else if has("hi") {
        MulMode::Hi
    } else {
        MulMode::Lo
    };
    let (op, class) = match base {
        "mov" => {
            op_count(2)?;
            dst[0] = d.dest(&ops[0])?;
            src[0] = d.value(&ops[1], ty)?;
            (Op::Mov, Class::Integer)
        }
        "ld" | "st" => {
            op_count(2)?;
            let space = space.unwrap_or(Space::Generic);
            if base == "ld" {
                for (k, o) in d.vector(&ops[0], true, ty)?.into_iter().enumerate() {
                    dst[k] = o;
                }
                src[0] = d.address(&ops[1], space)?;
            } else {
                src[0] = d.address(&ops[0], space)?;
                for (k, o) in d.vector(&ops[1], false, ty)?.into_iter().enumerate() {
                    src[k + 1] = o;
                }
            }
            let class = match space {
                Space::Shared => Class::Shared,
                Space::Param => Class::Param,
                _ => Class::Global,
            };
            if base == "ld" {
                (Op::Ld { space, vec }, class)
            } else {
                (Op::St { space, vec }, class)
            }
        }
        "cvta" => {
            op_count(2)?;
            dst[0] = d.dest(&ops[0])?;
            src[0] = d.value(&ops[1], ty)?;
            let to = has("to");
            (
                Op::Cvta {
                    to_generic: !to,
                    space: space.ok_or_else(unknown)?,
                },
                Class::Integer,
            )
        }
        "add" | "sub" | "min" | "max" | "and" | "or" | "xor" | "shl" | "shr" | "rem" | "div"
        | "mul" | "setp" | "selp" => {
            let round = round_of(mods);
            let mode = mul_mode;
            let op = match base {
                "add" => Op::Add {
                    round,
                    sat: has("sat"),
                },
                "sub" => Op::Sub { round },
                "min" => Op::Min,
                "max" => Op::Max,
                "and" => Op::And,
                "or" => Op::Or,
                "xor" => Op::Xor,
                "shl" => Op::Shl,
                "shr" => Op::Shr,
                "rem" => Op::Rem,
                "div" => Op::Div {
                    round,
                    approx: has("approx") || has("full"),
                },
                "mul" => Op::Mul { mode, round },
                "selp" => Op::Selp,
                _ => {
                    let cmp = mods.iter().find_map(|m| cmp_of(m)).ok_or_else(unknown)?;
                    let combine = mods.iter().find_map(|m| match *m {
                        "and" => Some(BoolOp::And),
                        "or" => Some(BoolOp::Or),
                        "xor" => Some(BoolOp::Xor),
                        _ => None,
                    });
                    Op::Setp { cmp, combine }
                }
            };
            if let Op::Setp { combine, .. } = op {
                // setp.cmp.ty p[|q], a, b[, {!}c]
                let want = if combine.is_some() { 4 } else { 3 };
                op_count(want)?;
                let (p, q) = match ops[0].split_once('|') {
                    Some((p, q)) => (d.dest(p)?, d.dest(q)?),
                    None => (d.dest(&ops[0])?, Opnd::None),
                };
                dst[0] = p;
                dst[1] = q;
                src[0] = d.value(&ops[1], ty)?;
                src[1] = d.value(&ops[2], ty)?;
                if combine.is_some() {
                    let c = ops[3].trim();
                    if let Some(c) = c.strip_prefix('!') {
                        src[2] = d.value(c, Ty::Pred)?;
                        src[3] = Opnd::Imm(1);
                    } else {
                        src[2] = d.value(c, Ty::Pred)?;
                    }
                }
                (op, if float { Class::Float } else { Class::Integer })
            } else {
                let n = if matches!(op, Op::Selp) { 4 } else { 3 };
                op_count(n)?;
                dst[0] = d.dest(&ops[0])?;
                // Shift amounts are .u32 whatever the shifted type.
                let bty = if matches!(op, Op::Shl | Op::Shr) {
                    Ty::U32
                } else {
                    ty
                };
                src[0] = d.value(&ops[1], ty)?;
                src[1] = d.value(&ops[2], bty)?;
                if n == 4 {
                    src[2] = d.value(&ops[3], Ty::Pred)?;
                }
                let class = match op {
                    Op::Div { .. } if float => Class::Sfu,
                    _ if float => Class::Float,
                    _ => Class::Integer,
                };
                (op, class)
            }
        }
        "mad" | "fma" => {
            op_count(4)?;
            dst[0] = d.dest(&ops[0])?;
            for k in 0..3 {
                src[k] = d.value(&ops[k + 1], ty)?;
            }
            if base == "fma" || float {
                (
                    Op::Fma {
                        round: round_of(mods),
                    },
                    Class::Float,
                )
            } else {
                (Op::Mad { mode: mul_mode }, Class::Integer)
            }
        }
        "neg" | "abs" | "not" | "popc" | "clz" | "brev" | "ex2" | "lg2" | "rcp" | "sqrt"
        | "rsqrt" | "sin" | "cos" | "tanh" => {
            op_count(2)?;
            dst[0] = d.dest(&ops[0])?;
            src[0] = d.value(&ops[1], ty)?;
            let ftz = has("ftz");
            let approx = has("approx");
            let (op, class) = match base {
                "neg" => (Op::Neg, if float { Class::Float } else { Class::Integer }),
                "abs" => (Op::Abs, if float { Class::Float } else { Class::Integer }),
                "not" => (Op::Not, Class::Integer),
                "popc" => (Op::Popc, Class::Integer),
                "clz" => (Op::Clz, Class::Integer),
                "brev" => (Op::Brev, Class::Integer),
                "ex2" => (Op::Ex2 { ftz }, Class::Sfu),
                "lg2" => (Op::Lg2 { ftz }, Class::Sfu),
                "rcp" => (Op::Rcp { approx, ftz }, Class::Sfu),
                "sqrt" => (Op::Sqrt { approx, ftz }, Class::Sfu),
                "rsqrt" => (Op::Rsqrt { ftz }, Class::Sfu),
                "sin" => (Op::Sin { ftz }, Class::Sfu),
                "cos" => (Op::Cos { ftz }, Class::Sfu),
                _ => (Op::Tanh, Class::Sfu),
            };
            (op, class)
        }
        "cvt" => {
            op_count(2)?;
            if types.len() != 2 {
                return Err(unknown());
            }
            dst[0] = d.dest(&ops[0])?;
            src[0] = d.value(&ops[1], types[1])?;
            (
                Op::Cvt {
                    from: types[1],
                    round: round_of(mods),
                    sat: has("sat"),
                    ftz: has("ftz"),
                },
                Class::Convert,
            )
        }
        "shfl" => {
            // shfl.sync.mode.b32 d[|p], a, b, c, membermask
            if !has("sync") {
                return Err(unknown());
            }
            op_count(5)?;
            let mode = if has("up") {
                ShflMode::Up
            } else if has("down") {
                ShflMode::Down
            } else if has("bfly") {
                ShflMode::Bfly
            } else if has("idx") {
                ShflMode::Idx
            } else {
                return Err(unknown());
            };
            let (dd, p) = match ops[0].split_once('|') {
                Some((a, b)) => (d.dest(a)?, d.dest(b)?),
                None => (d.dest(&ops[0])?, Opnd::None),
            };
            dst[0] = dd;
            dst[1] = p;
            for k in 0..4 {
                src[k] = d.value(&ops[k + 1], Ty::B32)?;
            }
            (Op::Shfl { mode }, Class::Sync)
        }
        "vote" => {
            if !has("sync") {
                return Err(unknown());
            }
            op_count(3)?;
            let mode = if has("all") {
                VoteMode::All
            } else if has("any") {
                VoteMode::Any
            } else if has("uni") {
                VoteMode::Uni
            } else if has("ballot") {
                VoteMode::Ballot
            } else {
                return Err(unknown());
            };
            dst[0] = d.dest(&ops[0])?;
            let (neg, p) = match ops[1].strip_prefix('!') {
                Some(p) => (1, p),
                None => (0, ops[1].as_str()),
            };
            src[0] = d.value(p, Ty::Pred)?;
            src[1] = Opnd::Imm(neg);
            src[2] = d.value(&ops[2], Ty::B32)?;
            (Op::Vote { mode }, Class::Sync)
        }
        "bar" if has("warp") => {
            op_count(1)?;
            src[0] = d.value(&ops[0], Ty::B32)?;
            (Op::WarpSync, Class::Sync)
        }
        "bar" | "barrier" => {
            // bar.sync 0; barrier.sync 0; bar.sync 0, count is outside the subset.
            if !(has("sync") || mods.is_empty()) || ops.len() > 1 {
                return Err(unknown());
            }
            src[0] = match ops.first() {
                Some(o) => d.value(o, Ty::U32)?,
                None => Opnd::Imm(0),
            };
            (
                Op::Bar {
                    aligned_all: base == "bar" || has("aligned"),
                },
                Class::Sync,
            )
        }
        "bra" => {
            op_count(1)?;
            target = *d
                .labels
                .get(ops[0].trim())
                .ok_or_else(|| format!("unknown label {}", ops[0]))?;
            (Op::Bra, Class::Control)
        }
        "ret" | "exit" => (Op::Ret, Class::Control),
        "atom" | "red" => {
            let aop = atom_op_of(mods).ok_or_else(unknown)?;
            let space = space.unwrap_or(Space::Generic);
            if base == "atom" {
                let n = if aop == AtomOp::Cas { 4 } else { 3 };
                op_count(n)?;
                dst[0] = d.dest(&ops[0])?;
                src[0] = d.address(&ops[1], space)?;
                for k in 2..n {
                    src[k - 1] = d.value(&ops[k], ty)?;
                }
                (Op::Atom { space, op: aop }, Class::Global)
            } else {
                op_count(2)?;
                src[0] = d.address(&ops[0], space)?;
                src[1] = d.value(&ops[1], ty)?;
                (Op::Red { space, op: aop }, Class::Global)
            }
        }
        "membar" | "fence" => (Op::Fence, Class::Sync),
        _ => return Err(unknown()),
    };
    let flops = match (op, ty) {
        (Op::Fma { .. }, t) if t.is_float() => 2,
        (Op::Add { .. } | Op::Sub { .. } | Op::Mul { .. }, t) if t.is_float() => 1,
        _ => 0,
    };
    Ok(Instr {
        op,
        ty,
        guard,
        dst,
        src,
        target,
        class,
        flops,
        text: intern(opcode),
        ptx_line,
        loc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_come_from_the_mangled_tail() {
        assert_eq!(
            short_name(
                "_ZZN44_INTERNAL_00000000_13_softmax_ce_cu_09ea5b3b9block_sumEfE11warp_totals"
            ),
            "warp_totals"
        );
        assert_eq!(short_name("plain"), "plain");
    }

    #[test]
    fn an_unknown_instruction_fails_its_kernel_by_name() {
        let ptx = ".version 8.8\n.target sm_80\n.address_size 64\n\
            .visible .entry k(\n.param .u64 k_param_0\n)\n{\n.reg .b32 %r<3>;\n\
            mov.u32 %r1, 1;\nfrobnicate.b32 %r2, %r1;\nret;\n}\n";
        let m = parse_module("kernels/test.cu", ptx).unwrap();
        let err = m.kernels["k"].as_ref().unwrap_err();
        assert!(
            err.contains("frobnicate.b32") && err.contains("kernel k") && err.contains("line 10"),
            "{err}"
        );
        assert!(m.opcodes.contains("frobnicate.b32"));
    }
}
