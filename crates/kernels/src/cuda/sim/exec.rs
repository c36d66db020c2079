//! Executing one launch of a decoded kernel: blocks, warps, lanes, and the checks.
//!
//! **Scheduling.** Blocks run one after another in a seeded shuffled order. Inside a block the
//! warps advance in a seeded adversarial order: a random warp runs a random slice of 1 to 64
//! instructions, then another, so one warp regularly overtakes another between barriers.
//! Within a warp the lanes execute together at the lowest program counter among them
//! (min-PC reconvergence); lanes that branch apart run as separate groups until they meet
//! again. `bar.sync` waits for every thread of the block; `shfl.sync` and `vote.sync` need
//! every lane their mask names to be at the same instruction.
//!
//! **Checks** (each error names the check, the kernel, the thread, the PTX line and, with
//! line information, the `.cu` line):
//! - memcheck: a global access outside every live allocation (naming the one it overran),
//!   into a freed one, misaligned for its width, or a shared access outside its variable;
//! - racecheck: two threads touching the same bytes, at least one writing, with no barrier
//!   between them (threads of different blocks are never ordered within a launch);
//! - initcheck: a load of device or shared bytes never written;
//! - synccheck: a barrier some threads of the block never reach (they exited), a shuffle or
//!   vote whose mask names a lane that exited or is elsewhere, or whose mask omits a caller;
//! - deadlock: no thread can move, or the launch exceeds its instruction budget.

// Items named after the PTX ISA (types, state spaces, opcodes) or internal to the simulator:
// the ISA manual and the module comment above document them.
#![allow(missing_docs)]

use super::alu::{self, combine, convert, setp};
use super::memory::{Bytes, Global, Place, RaceCell, GRANULE, MANY, SHARED_GENERIC_BASE};
use super::ptx::{Instr, Kernel, Module, Op, Opnd, ShflMode, Space, Special, VoteMode};
use std::collections::HashSet;

/// The kind of problem a launch stopped on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    Memcheck,
    Racecheck,
    Initcheck,
    Synccheck,
    Deadlock,
    /// A launch the hardware would refuse (block size, grid, shared memory, registers).
    Launch,
    /// An instruction or form outside the interpreter's subset.
    Unsupported,
}

impl Check {
    pub fn name(self) -> &'static str {
        match self {
            Check::Memcheck => "memcheck",
            Check::Racecheck => "racecheck",
            Check::Initcheck => "initcheck",
            Check::Synccheck => "synccheck",
            Check::Deadlock => "deadlock",
            Check::Launch => "launch check",
            Check::Unsupported => "unsupported",
        }
    }
}

/// Why a launch failed.
#[derive(Clone, Debug)]
pub struct SimError {
    pub check: Check,
    pub message: String,
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cuda-sim {}: {}", self.check.name(), self.message)
    }
}

/// What to check and how to schedule.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub racecheck: bool,
    pub initcheck: bool,
    /// Seeds the block order and the warp interleaving.
    pub seed: u64,
    /// Warp instructions one launch may execute before it is declared stuck.
    pub budget: u64,
    /// Count the distinct 32-byte sectors a launch touches (the DRAM traffic estimate).
    pub unique_sectors: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            racecheck: true,
            initcheck: true,
            seed: 0x5eed,
            budget: 1 << 36,
            unique_sectors: false,
        }
    }
}

/// Counters of one launch.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub blocks: u64,
    pub threads: u64,
    /// Warp instructions issued, in all and per [`Class`](super::ptx::Class) (indexed as
    /// [`Class::ALL`](super::ptx::Class::ALL)).
    pub warp_instructions: u64,
    pub by_class: [u64; 9],
    /// Lanes active over all warp instructions (divided by warp instructions: the average).
    pub active_lanes: u64,
    /// Branches whose lanes went different ways.
    pub divergent_branches: u64,
    pub flops: u64,
    /// Global memory: warp-level requests, 32-byte sectors they touched, distinct bytes the
    /// lanes asked for.
    pub global_requests: u64,
    pub global_sectors: u64,
    pub global_bytes: u64,
    /// Distinct sectors over the launch (lower bound of DRAM traffic), if counted.
    pub unique_sectors: u64,
    /// Shared memory: warp-level requests and the wavefronts they took (conflicts = extra).
    pub shared_requests: u64,
    pub shared_wavefronts: u64,
    pub barriers: u64,
}

impl Metrics {
    pub fn add(&mut self, o: &Metrics) {
        self.blocks += o.blocks;
        self.threads += o.threads;
        self.warp_instructions += o.warp_instructions;
        for k in 0..9 {
            self.by_class[k] += o.by_class[k];
        }
        self.active_lanes += o.active_lanes;
        self.divergent_branches += o.divergent_branches;
        self.flops += o.flops;
        self.global_requests += o.global_requests;
        self.global_sectors += o.global_sectors;
        self.global_bytes += o.global_bytes;
        self.unique_sectors += o.unique_sectors;
        self.shared_requests += o.shared_requests;
        self.shared_wavefronts += o.shared_wavefronts;
        self.barriers += o.barriers;
    }

    /// Bytes asked for over bytes moved in sectors (1.0: perfectly coalesced).
    pub fn coalescing(&self) -> f64 {
        if self.global_sectors == 0 {
            1.0
        } else {
            self.global_bytes as f64 / (self.global_sectors * 32) as f64
        }
    }

    /// Shared-memory wavefronts beyond one per request.
    pub fn bank_conflicts(&self) -> u64 {
        self.shared_wavefronts - self.shared_requests
    }

    pub fn lanes_per_instruction(&self) -> f64 {
        if self.warp_instructions == 0 {
            0.0
        } else {
            self.active_lanes as f64 / self.warp_instructions as f64
        }
    }
}

const WARP: usize = 32;

struct Warp {
    /// Lane-major registers: `regs[r * 32 + lane]`.
    regs: Vec<u64>,
    pc: [u32; WARP],
    /// Lanes that can execute.
    running: u32,
    /// Lanes waiting at a barrier (their pc already past it).
    at_barrier: u32,
    exited: u32,
    /// Lanes that exist (the last warp of a block may be partial).
    present: u32,
    /// All non-exited lanes share `upc` (and `pc` is stale).
    uniform: bool,
    upc: u32,
    /// `bar.warp.sync`s this warp completed: lanes of one warp on either side of one are
    /// ordered, as lanes on either side of a block barrier are.
    wsync: u32,
    /// Thread index (x, y, z) and linear index in the block, per lane.
    tid: [[u32; 3]; WARP],
    linear: [u32; WARP],
}

impl Warp {
    fn diverge(&mut self) {
        if self.uniform {
            for l in 0..WARP {
                self.pc[l] = self.upc;
            }
            self.uniform = false;
        }
    }

    fn try_converge(&mut self) {
        if self.uniform || self.at_barrier != 0 {
            return;
        }
        let mut m = self.running;
        if m == 0 {
            return;
        }
        let first = self.pc[m.trailing_zeros() as usize];
        while m != 0 {
            let l = m.trailing_zeros() as usize;
            m &= m - 1;
            if self.pc[l] != first {
                return;
            }
        }
        self.uniform = true;
        self.upc = first;
    }
}

/// A small seeded generator (SplitMix64) for the schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A launch: everything that stays fixed while its blocks run.
pub struct Launch<'a> {
    pub module: &'a Module,
    pub kernel: &'a Kernel,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub params: &'a [u8],
    pub options: Options,
    /// Distinguishes this launch's race cells from earlier launches'.
    pub stamp: u32,
}

struct BlockState<'l, 'g> {
    launch: &'l Launch<'l>,
    global: &'g mut Global,
    ctaid: [u32; 3],
    block_linear: u32,
    tpb: u32,
    warps: Vec<Warp>,
    shared: Bytes,
    waiting: u32,
    barrier_line: u32,
    epoch: u32,
    first_exit: Option<(u32, u32)>,
    metrics: Metrics,
    sectors: HashSet<u64>,
    executed: u64,
}

/// Runs every block of the launch; the metrics, or the first problem found.
pub fn run(launch: &Launch, global: &mut Global) -> Result<Metrics, SimError> {
    let [gx, gy, gz] = launch.grid;
    let tpb = launch.block.iter().product::<u32>();
    let blocks = gx as u64 * gy as u64 * gz as u64;
    let mut order: Vec<u64> = (0..blocks).collect();
    let mut rng = Rng(launch.options.seed ^ 0xb10c);
    for i in (1..order.len()).rev() {
        let j = rng.below(i + 1);
        order.swap(i, j);
    }
    let mut total = Metrics::default();
    let mut sectors = HashSet::new();
    let mut executed = 0u64;
    // Register files are reused from block to block (a GEMM's can be megabytes): a
    // well-formed kernel writes a register before reading it.
    let mut pool: Vec<Vec<u64>> = Vec::new();
    for b in order {
        let ctaid = [
            (b % gx as u64) as u32,
            ((b / gx as u64) % gy as u64) as u32,
            (b / (gx as u64 * gy as u64)) as u32,
        ];
        let mut state = BlockState::new(
            launch, global, ctaid, b as u32, tpb, sectors, executed, &mut pool,
        );
        state.run()?;
        pool.extend(state.warps.drain(..).map(|w| w.regs));
        total.add(&state.metrics);
        sectors = std::mem::take(&mut state.sectors);
        executed = state.executed;
    }
    total.unique_sectors = sectors.len() as u64;
    Ok(total)
}

impl<'l, 'g> BlockState<'l, 'g> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        launch: &'l Launch<'l>,
        global: &'g mut Global,
        ctaid: [u32; 3],
        block_linear: u32,
        tpb: u32,
        sectors: HashSet<u64>,
        executed: u64,
        pool: &mut Vec<Vec<u64>>,
    ) -> Self {
        let [bx, by, _] = launch.block;
        let nregs = launch.kernel.registers as usize;
        let warps = (tpb as usize).div_ceil(WARP);
        let warps = (0..warps)
            .map(|w| {
                let mut tid = [[0u32; 3]; WARP];
                let mut linear = [0u32; WARP];
                let mut present = 0u32;
                for l in 0..WARP {
                    let t = (w * WARP + l) as u32;
                    if t < tpb {
                        present |= 1 << l;
                        tid[l] = [t % bx, (t / bx) % by, t / (bx * by)];
                        linear[l] = t;
                    }
                }
                Warp {
                    regs: pool.pop().unwrap_or_else(|| vec![0; nregs * WARP]),
                    pc: [0; WARP],
                    running: present,
                    at_barrier: 0,
                    exited: 0,
                    present,
                    uniform: true,
                    upc: 0,
                    wsync: 0,
                    tid,
                    linear,
                }
            })
            .collect();
        BlockState {
            launch,
            global,
            ctaid,
            block_linear,
            tpb,
            warps,
            shared: Bytes::new(launch.kernel.shared_window as usize, 0xAB),
            waiting: 0,
            barrier_line: 0,
            epoch: 1,
            first_exit: None,
            metrics: Metrics {
                blocks: 1,
                threads: tpb as u64,
                ..Metrics::default()
            },
            sectors,
            executed,
        }
    }

    fn fail(&self, check: Check, what: String, w: usize, lane: usize, instr: &Instr) -> SimError {
        SimError {
            check,
            message: format!(
                "kernel {}: {what} by thread {} of block {} at {}",
                self.launch.kernel.name,
                fmt3(self.warps[w].tid[lane]),
                fmt3(self.ctaid),
                self.where_(instr)
            ),
        }
    }

    fn where_(&self, instr: &Instr) -> String {
        let mut s = format!("PTX line {} (`{}`)", instr.ptx_line, instr.text);
        if let Some(src) = self.launch.module.source_line(instr) {
            s.push_str(&format!(", {src}"));
        }
        s
    }

    fn line_of(&self, pc: u32) -> String {
        match self.launch.kernel.code.get(pc as usize) {
            Some(i) => self.where_(i),
            None => "the end of the kernel".into(),
        }
    }

    fn run(&mut self) -> Result<(), SimError> {
        let mut rng =
            Rng(self.launch.options.seed ^ (self.block_linear as u64).wrapping_mul(0x9e37));
        let mut runnable = Vec::with_capacity(self.warps.len());
        loop {
            runnable.clear();
            runnable.extend((0..self.warps.len()).filter(|&w| self.warps[w].running != 0));
            if runnable.is_empty() {
                return self.finish();
            }
            let w = runnable[rng.below(runnable.len())];
            let slice = 1 + rng.below(64);
            for _ in 0..slice {
                if self.warps[w].running == 0 {
                    break;
                }
                self.step(w)?;
            }
        }
    }

    /// No warp can run: fine if every thread exited, otherwise a stuck block.
    fn finish(&self) -> Result<(), SimError> {
        let exited: u32 = self.warps.iter().map(|w| w.exited.count_ones()).sum();
        if exited == self.tpb {
            return Ok(());
        }
        let at_barrier: u32 = self.warps.iter().map(|w| w.at_barrier.count_ones()).sum();
        let name = &self.launch.kernel.name;
        if let Some((t, pc)) = self.first_exit.filter(|_| at_barrier > 0) {
            return Err(SimError {
                check: Check::Synccheck,
                message: format!(
                    "kernel {name}: divergent barrier: the barrier at {} in block {} is not \
                     reached by every thread: {at_barrier} wait there, {} exited before it \
                     (first: thread {} at {})",
                    self.line_of(self.barrier_line),
                    fmt3(self.ctaid),
                    exited,
                    fmt3(self.tid_of(t)),
                    self.line_of(pc)
                ),
            });
        }
        Err(SimError {
            check: Check::Deadlock,
            message: format!(
                "kernel {name}: block {} can make no progress: {at_barrier} threads wait at a \
                 barrier ({}), {exited} exited, the rest wait at warp-synchronous instructions",
                fmt3(self.ctaid),
                self.line_of(self.barrier_line)
            ),
        })
    }

    fn tid_of(&self, linear: u32) -> [u32; 3] {
        let [bx, by, _] = self.launch.block;
        [linear % bx, (linear / bx) % by, linear / (bx * by)]
    }

    #[inline]
    fn get(&self, w: usize, o: &Opnd, l: usize) -> u64 {
        match *o {
            Opnd::Reg(r) => self.warps[w].regs[r as usize * WARP + l],
            Opnd::Imm(v) => v,
            Opnd::Special(s) => self.special(w, s, l),
            Opnd::Addr { .. } | Opnd::None => 0,
        }
    }

    /// Operand `o` of every lane (inactive lanes too: cheaper than masking, never written back).
    #[inline]
    fn fetch(&self, w: usize, o: &Opnd, out: &mut [u64; WARP]) {
        match *o {
            Opnd::Reg(r) => {
                let base = r as usize * WARP;
                out.copy_from_slice(&self.warps[w].regs[base..base + WARP]);
            }
            Opnd::Imm(v) => *out = [v; WARP],
            Opnd::Special(s) => {
                for (l, v) in out.iter_mut().enumerate() {
                    *v = self.special(w, s, l);
                }
            }
            Opnd::Addr { .. } | Opnd::None => {}
        }
    }

    /// Writes `values` of the lanes in `exec` to register `o`.
    #[inline]
    fn write_back(&mut self, w: usize, o: &Opnd, exec: u32, values: &[u64; WARP]) {
        if let Opnd::Reg(r) = *o {
            let base = r as usize * WARP;
            let regs = &mut self.warps[w].regs[base..base + WARP];
            if exec == u32::MAX {
                regs.copy_from_slice(values);
            } else {
                let mut m = exec;
                while m != 0 {
                    let l = m.trailing_zeros() as usize;
                    m &= m - 1;
                    regs[l] = values[l];
                }
            }
        }
    }

    #[inline]
    fn set(&mut self, w: usize, o: &Opnd, l: usize, v: u64) {
        if let Opnd::Reg(r) = *o {
            self.warps[w].regs[r as usize * WARP + l] = v;
        }
    }

    fn special(&self, w: usize, s: Special, l: usize) -> u64 {
        let warp = &self.warps[w];
        (match s {
            Special::Tid(d) => warp.tid[l][d as usize],
            Special::Ntid(d) => self.launch.block[d as usize],
            Special::Ctaid(d) => self.ctaid[d as usize],
            Special::Nctaid(d) => self.launch.grid[d as usize],
            Special::LaneId => l as u32,
            Special::WarpId => w as u32,
            Special::LaneMaskLt => (1u32 << l) - 1,
        }) as u64
    }

    fn address(&self, w: usize, o: &Opnd, l: usize) -> u64 {
        match *o {
            Opnd::Addr { base, offset } => {
                let b = base.map_or(0, |r| self.warps[w].regs[r as usize * WARP + l]);
                b.wrapping_add(offset as u64)
            }
            _ => self.get(w, o, l),
        }
    }

    /// One warp instruction of warp `w`.
    fn step(&mut self, w: usize) -> Result<(), SimError> {
        self.executed += 1;
        if self.executed > self.launch.options.budget {
            return Err(SimError {
                check: Check::Deadlock,
                message: format!(
                    "kernel {}: more than {} warp instructions (a thread spinning on a \
                     condition that never changes?); block {}, warp {w} at {}",
                    self.launch.kernel.name,
                    self.launch.options.budget,
                    fmt3(self.ctaid),
                    self.line_of(self.current_pc(w))
                ),
            });
        }
        let kernel = self.launch.kernel;
        let (pc, group) = self.group(w);
        let Some(instr) = kernel.code.get(pc as usize) else {
            // Falling off the end is a return.
            self.exit_lanes(w, group, pc);
            return Ok(());
        };
        let mut exec = group;
        if let Some((p, neg)) = instr.guard {
            let mut m = group;
            while m != 0 {
                let l = m.trailing_zeros() as usize;
                m &= m - 1;
                let v = self.warps[w].regs[p as usize * WARP + l] & 1 != 0;
                if v == neg {
                    exec &= !(1 << l);
                }
            }
        }
        self.metrics.warp_instructions += 1;
        self.metrics.by_class[instr.class as usize] += 1;
        self.metrics.active_lanes += exec.count_ones() as u64;
        self.metrics.flops += instr.flops as u64 * exec.count_ones() as u64;
        match instr.op {
            Op::Bra => {
                if exec != 0 && exec != group {
                    self.metrics.divergent_branches += 1;
                }
                self.branch(w, pc, group, exec, instr.target);
                return Ok(());
            }
            Op::Ret => {
                self.exit_lanes(w, exec, pc);
                self.advance(w, group & !exec, pc);
                return Ok(());
            }
            Op::Bar { .. } => {
                self.barrier(w, pc, group, exec, instr)?;
                return Ok(());
            }
            Op::Shfl { mode } => self.shuffle(w, exec, instr, mode)?,
            Op::WarpSync => {
                if exec != 0 {
                    self.member_mask(w, exec, &instr.src[0], instr)?;
                    self.warps[w].wsync += 1;
                }
            }
            Op::Vote { mode } => self.vote(w, exec, instr, mode)?,
            Op::Ld { space, vec } => self.load(w, exec, instr, space, vec)?,
            Op::St { space, vec } => self.store(w, exec, instr, space, vec)?,
            Op::Atom { space, op } | Op::Red { space, op } => {
                self.atomic(w, exec, instr, space, op)?
            }
            Op::Fence => {}
            Op::Cvta { to_generic, space } => {
                let mut m = exec;
                while m != 0 {
                    let l = m.trailing_zeros() as usize;
                    m &= m - 1;
                    let a = self.get(w, &instr.src[0], l);
                    let v = match (space, to_generic) {
                        (Space::Shared, true) => a.wrapping_add(SHARED_GENERIC_BASE),
                        (Space::Shared, false) => a.wrapping_sub(SHARED_GENERIC_BASE),
                        _ => a,
                    };
                    self.set(w, &instr.dst[0], l, v);
                }
            }
            Op::Setp { cmp, combine: how } => {
                let mut m = exec;
                while m != 0 {
                    let l = m.trailing_zeros() as usize;
                    m &= m - 1;
                    let a = self.get(w, &instr.src[0], l);
                    let b = self.get(w, &instr.src[1], l);
                    let x = setp(cmp, instr.ty, a, b)
                        .map_err(|e| self.fail(Check::Unsupported, e, w, l, instr))?;
                    let c = how.is_some() && {
                        let c = self.get(w, &instr.src[2], l) & 1 != 0;
                        c ^ (instr.src[3] == Opnd::Imm(1))
                    };
                    self.set(w, &instr.dst[0], l, combine(how, x, c) as u64);
                    self.set(w, &instr.dst[1], l, combine(how, !x, c) as u64);
                }
            }
            Op::Cvt {
                from,
                round,
                sat,
                ftz,
            } => {
                let mut m = exec;
                while m != 0 {
                    let l = m.trailing_zeros() as usize;
                    m &= m - 1;
                    let a = self.get(w, &instr.src[0], l);
                    let v = convert(instr.ty, from, round, sat, ftz, a)
                        .map_err(|e| self.fail(Check::Unsupported, e, w, l, instr))?;
                    self.set(w, &instr.dst[0], l, v);
                }
            }
            ref op => {
                // Operands of all 32 lanes at once, one dispatch per warp instruction.
                let mut a = [0u64; WARP];
                let mut b = [0u64; WARP];
                let mut c = [0u64; WARP];
                self.fetch(w, &instr.src[0], &mut a);
                self.fetch(w, &instr.src[1], &mut b);
                self.fetch(w, &instr.src[2], &mut c);
                let mut d = [0u64; WARP];
                if let Err(e) = alu::compute_lanes(op, instr.ty, &a, &b, &c, &mut d) {
                    let l = exec.trailing_zeros().min(31) as usize;
                    return Err(self.fail(Check::Unsupported, e, w, l, instr));
                }
                self.write_back(w, &instr.dst[0], exec, &d);
            }
        }
        self.advance(w, group, pc);
        Ok(())
    }

    fn current_pc(&self, w: usize) -> u32 {
        let warp = &self.warps[w];
        if warp.uniform {
            warp.upc
        } else {
            let m = warp.running;
            if m == 0 {
                0
            } else {
                warp.pc[m.trailing_zeros() as usize]
            }
        }
    }

    /// The lanes that execute next: all running lanes at the lowest pc, except that a
    /// warp-synchronous instruction (shuffle, vote, `__syncwarp`) waits while other lanes can
    /// still move: they may be on their way to it, or about to exit.
    fn group(&self, w: usize) -> (u32, u32) {
        let warp = &self.warps[w];
        if warp.uniform {
            return (warp.upc, warp.running);
        }
        let code = &self.launch.kernel.code;
        let is_sync = |pc: u32| {
            code.get(pc as usize)
                .is_some_and(|i| matches!(i.op, Op::Shfl { .. } | Op::Vote { .. } | Op::WarpSync))
        };
        let lowest = |skip_sync: bool| {
            let mut min = u32::MAX;
            let mut group = 0;
            let mut m = warp.running;
            while m != 0 {
                let l = m.trailing_zeros() as usize;
                m &= m - 1;
                let p = warp.pc[l];
                if skip_sync && is_sync(p) {
                    continue;
                }
                if p < min {
                    min = p;
                    group = 1 << l;
                } else if p == min {
                    group |= 1 << l;
                }
            }
            (min, group)
        };
        let (pc, group) = lowest(false);
        if is_sync(pc) {
            let (other, others) = lowest(true);
            if others != 0 {
                return (other, others);
            }
        }
        (pc, group)
    }

    /// Moves `lanes` (all at `pc`) to `pc + 1`.
    fn advance(&mut self, w: usize, lanes: u32, pc: u32) {
        let warp = &mut self.warps[w];
        if warp.uniform {
            if lanes == warp.running {
                warp.upc = pc + 1;
                return;
            }
            if lanes == 0 {
                return;
            }
            warp.diverge();
        }
        let mut m = lanes;
        while m != 0 {
            let l = m.trailing_zeros() as usize;
            m &= m - 1;
            warp.pc[l] = pc + 1;
        }
        warp.try_converge();
    }

    fn branch(&mut self, w: usize, pc: u32, group: u32, taken: u32, target: u32) {
        let warp = &mut self.warps[w];
        if warp.uniform && group == warp.running && (taken == group || taken == 0) {
            warp.upc = if taken == group { target } else { pc + 1 };
            return;
        }
        warp.diverge();
        let mut m = group;
        while m != 0 {
            let l = m.trailing_zeros() as usize;
            m &= m - 1;
            warp.pc[l] = if taken & (1 << l) != 0 {
                target
            } else {
                pc + 1
            };
        }
        warp.try_converge();
    }

    fn exit_lanes(&mut self, w: usize, lanes: u32, pc: u32) {
        if lanes == 0 {
            return;
        }
        let warp = &mut self.warps[w];
        if lanes != warp.running {
            warp.diverge();
        }
        warp.running &= !lanes;
        warp.exited |= lanes;
        if self.first_exit.is_none() {
            let l = lanes.trailing_zeros() as usize;
            self.first_exit = Some((warp.linear[l], pc));
        }
    }

    fn barrier(
        &mut self,
        w: usize,
        pc: u32,
        group: u32,
        exec: u32,
        instr: &Instr,
    ) -> Result<(), SimError> {
        let first = exec.trailing_zeros().min(31) as usize;
        let id = self.get(w, &instr.src[0], first);
        if id != 0 {
            return Err(self.fail(
                Check::Unsupported,
                format!("named barrier {id} (only barrier 0 is simulated)"),
                w,
                first,
                instr,
            ));
        }
        self.advance(w, group, pc);
        if exec == 0 {
            return Ok(());
        }
        let warp = &mut self.warps[w];
        if exec != warp.running {
            warp.diverge();
        }
        warp.running &= !exec;
        warp.at_barrier |= exec;
        if self.waiting == 0 {
            self.barrier_line = pc;
        }
        self.waiting += exec.count_ones();
        if self.waiting == self.tpb {
            self.waiting = 0;
            self.epoch += 1;
            self.metrics.barriers += 1;
            for warp in &mut self.warps {
                warp.running |= warp.at_barrier;
                warp.at_barrier = 0;
                warp.try_converge();
            }
        }
        Ok(())
    }

    /// The membermask of a warp-synchronous instruction, checked against who executes it.
    fn member_mask(
        &self,
        w: usize,
        exec: u32,
        mask_op: &Opnd,
        instr: &Instr,
    ) -> Result<u32, SimError> {
        let first = exec.trailing_zeros() as usize;
        let mask = self.get(w, mask_op, first) as u32;
        let warp = &self.warps[w];
        if exec & !mask != 0 {
            let l = (exec & !mask).trailing_zeros() as usize;
            return Err(self.fail(
                Check::Synccheck,
                format!(
                    "`{}` with member mask {mask:#010x}, which omits the calling lane {l}",
                    instr.text
                ),
                w,
                l,
                instr,
            ));
        }
        let missing = mask & !exec;
        if missing != 0 {
            let l = missing.trailing_zeros() as usize;
            let why = if warp.present & (1 << l) == 0 {
                "does not exist (the block is smaller)"
            } else if warp.exited & (1 << l) != 0 {
                "has exited"
            } else {
                "is not at this instruction (diverged)"
            };
            return Err(self.fail(
                Check::Synccheck,
                format!(
                    "`{}` with member mask {mask:#010x} names lane {l}, which {why}",
                    instr.text
                ),
                w,
                first,
                instr,
            ));
        }
        Ok(mask)
    }

    fn shuffle(
        &mut self,
        w: usize,
        exec: u32,
        instr: &Instr,
        mode: ShflMode,
    ) -> Result<(), SimError> {
        if exec == 0 {
            return Ok(());
        }
        let mask = self.member_mask(w, exec, &instr.src[3], instr)?;
        let mut values = [0u64; WARP];
        let mut m = exec;
        while m != 0 {
            let l = m.trailing_zeros() as usize;
            m &= m - 1;
            values[l] = self.get(w, &instr.src[0], l) & 0xffff_ffff;
        }
        let mut m = exec;
        while m != 0 {
            let l = m.trailing_zeros() as usize;
            m &= m - 1;
            let b = (self.get(w, &instr.src[1], l) & 31) as usize;
            let c = self.get(w, &instr.src[2], l) as usize;
            let segmask = (c >> 8) & 31;
            let cval = c & 31;
            let max_lane = (l & segmask) | (cval & !segmask);
            let min_lane = l & segmask;
            let (j, ok) = match mode {
                ShflMode::Up => {
                    let j = l as isize - b as isize;
                    (j, j >= max_lane as isize)
                }
                ShflMode::Down => {
                    let j = (l + b) as isize;
                    (j, j <= max_lane as isize)
                }
                ShflMode::Bfly => {
                    let j = (l ^ b) as isize;
                    (j, j <= max_lane as isize)
                }
                ShflMode::Idx => {
                    let j = (min_lane | (b & !segmask)) as isize;
                    (j, j <= max_lane as isize)
                }
            };
            let j = if ok { j as usize } else { l };
            if mask & (1 << j) == 0 {
                return Err(self.fail(
                    Check::Synccheck,
                    format!(
                        "`{}` reads lane {j}, outside member mask {mask:#010x}",
                        instr.text
                    ),
                    w,
                    l,
                    instr,
                ));
            }
            let v = values[j];
            self.set(w, &instr.dst[0], l, v);
            self.set(w, &instr.dst[1], l, ok as u64);
        }
        Ok(())
    }

    fn vote(&mut self, w: usize, exec: u32, instr: &Instr, mode: VoteMode) -> Result<(), SimError> {
        if exec == 0 {
            return Ok(());
        }
        let mask = self.member_mask(w, exec, &instr.src[2], instr)?;
        let neg = instr.src[1] == Opnd::Imm(1);
        let mut ballot = 0u32;
        let mut m = exec;
        while m != 0 {
            let l = m.trailing_zeros() as usize;
            m &= m - 1;
            if (self.get(w, &instr.src[0], l) & 1 != 0) != neg {
                ballot |= 1 << l;
            }
        }
        let _ = mask;
        let v = match mode {
            VoteMode::Ballot => ballot as u64,
            VoteMode::All => (ballot == exec) as u64,
            VoteMode::Any => (ballot != 0) as u64,
            VoteMode::Uni => (ballot == exec || ballot == 0) as u64,
        };
        let mut m = exec;
        while m != 0 {
            let l = m.trailing_zeros() as usize;
            m &= m - 1;
            self.set(w, &instr.dst[0], l, v);
        }
        Ok(())
    }

    /// Resolves a shared or generic address to (is_shared, address in its space).
    fn resolve(&self, space: Space, addr: u64) -> (bool, u64) {
        match space {
            Space::Shared => (true, addr),
            Space::Generic => {
                let window = self.launch.kernel.shared_window as u64;
                if addr >= SHARED_GENERIC_BASE && addr < SHARED_GENERIC_BASE + window {
                    (true, addr - SHARED_GENERIC_BASE)
                } else {
                    (false, addr)
                }
            }
            _ => (false, addr),
        }
    }

    /// The address operand `o` of every lane in `exec`.
    fn lane_addresses(&self, w: usize, exec: u32, o: &Opnd) -> [u64; WARP] {
        let mut addrs = [0u64; WARP];
        let mut m = exec;
        while m != 0 {
            let l = m.trailing_zeros() as usize;
            m &= m - 1;
            addrs[l] = self.address(w, o, l);
        }
        addrs
    }

    fn load(
        &mut self,
        w: usize,
        exec: u32,
        instr: &Instr,
        space: Space,
        vec: u8,
    ) -> Result<(), SimError> {
        let size = instr.ty.bytes();
        if space == Space::Param {
            let mut m = exec;
            while m != 0 {
                let l = m.trailing_zeros() as usize;
                m &= m - 1;
                let off = self.address(w, &instr.src[0], l) as usize;
                let params = self.launch.params;
                for k in 0..vec as usize {
                    let at = off + k * size as usize;
                    let Some(bytes) = params.get(at..at + size as usize) else {
                        return Err(self.fail(
                            Check::Memcheck,
                            format!(
                                "parameter load at offset {at} past the {} parameter bytes",
                                params.len()
                            ),
                            w,
                            l,
                            instr,
                        ));
                    };
                    let mut v = [0u8; 8];
                    v[..size as usize].copy_from_slice(bytes);
                    let mut value = u64::from_le_bytes(v);
                    if instr.ty.is_signed() {
                        value = alu::sext(value, size * 8) as u64;
                    }
                    self.set(w, &instr.dst[k], l, value);
                }
            }
            return Ok(());
        }
        if space == Space::Local {
            return Err(self.fail(Check::Unsupported, "local memory".into(), w, 0, instr));
        }
        let width = size * vec as u32;
        let addrs = self.lane_addresses(w, exec, &instr.src[0]);
        self.count_access(exec, &addrs, width, space);
        let mut m = exec;
        while m != 0 {
            let l = m.trailing_zeros() as usize;
            m &= m - 1;
            let mut raw = [0u8; 16];
            self.access(w, l, instr, space, addrs[l], width, false, &mut raw)?;
            for k in 0..vec as usize {
                let mut v = [0u8; 8];
                v[..size as usize]
                    .copy_from_slice(&raw[k * size as usize..(k + 1) * size as usize]);
                let mut value = u64::from_le_bytes(v);
                if instr.ty.is_signed() {
                    value = alu::sext(value, size * 8) as u64;
                }
                self.set(w, &instr.dst[k], l, value);
            }
        }
        Ok(())
    }

    fn store(
        &mut self,
        w: usize,
        exec: u32,
        instr: &Instr,
        space: Space,
        vec: u8,
    ) -> Result<(), SimError> {
        if matches!(space, Space::Param | Space::Local) {
            return Err(self.fail(
                Check::Unsupported,
                format!("store to {space:?} memory"),
                w,
                0,
                instr,
            ));
        }
        let size = instr.ty.bytes();
        let width = size * vec as u32;
        let addrs = self.lane_addresses(w, exec, &instr.src[0]);
        self.count_access(exec, &addrs, width, space);
        let mut m = exec;
        while m != 0 {
            let l = m.trailing_zeros() as usize;
            m &= m - 1;
            let mut raw = [0u8; 16];
            for k in 0..vec as usize {
                let v = self.get(w, &instr.src[k + 1], l).to_le_bytes();
                raw[k * size as usize..(k + 1) * size as usize]
                    .copy_from_slice(&v[..size as usize]);
            }
            self.access(w, l, instr, space, addrs[l], width, true, &mut raw)?;
        }
        Ok(())
    }

    fn atomic(
        &mut self,
        w: usize,
        exec: u32,
        instr: &Instr,
        space: Space,
        op: super::ptx::AtomOp,
    ) -> Result<(), SimError> {
        use super::ptx::AtomOp;
        let size = instr.ty.bytes();
        let mut m = exec;
        while m != 0 {
            let l = m.trailing_zeros() as usize;
            m &= m - 1;
            let addr = self.address(w, &instr.src[0], l);
            let mut raw = [0u8; 16];
            // Atomics are ordered with each other: they bypass the race shadow.
            self.access_unraced(w, l, instr, space, addr, size, false, &mut raw)?;
            let old = u64::from_le_bytes(raw[..8].try_into().unwrap()) & alu::mask(instr.ty);
            let b = self.get(w, &instr.src[1], l);
            let c = self.get(w, &instr.src[2], l);
            let t = instr.ty;
            let new = match op {
                AtomOp::Add => alu::compute(
                    &Op::Add {
                        round: super::ptx::Round::Rn,
                        sat: false,
                    },
                    t,
                    old,
                    b,
                    0,
                ),
                AtomOp::Min => alu::compute(&Op::Min, t, old, b, 0),
                AtomOp::Max => alu::compute(&Op::Max, t, old, b, 0),
                AtomOp::And => alu::compute(&Op::And, t, old, b, 0),
                AtomOp::Or => alu::compute(&Op::Or, t, old, b, 0),
                AtomOp::Xor => alu::compute(&Op::Xor, t, old, b, 0),
                AtomOp::Exch => Ok(b),
                AtomOp::Cas => Ok(if old == b & alu::mask(t) { c } else { old }),
                AtomOp::Inc => Ok(if old >= b { 0 } else { old + 1 }),
                AtomOp::Dec => Ok(if old == 0 || old > b { b } else { old - 1 }),
            }
            .map_err(|e| self.fail(Check::Unsupported, e, w, l, instr))?;
            let mut out = [0u8; 16];
            out[..8].copy_from_slice(&new.to_le_bytes());
            self.access_unraced(w, l, instr, space, addr, size, true, &mut out)?;
            if matches!(instr.op, Op::Atom { .. }) {
                self.set(w, &instr.dst[0], l, old);
            }
        }
        Ok(())
    }

    /// Coalescing and bank-conflict counters of one warp-level access.
    fn count_access(&mut self, exec: u32, addrs: &[u64; WARP], width: u32, space: Space) {
        if exec == 0 {
            return;
        }
        let first = addrs[exec.trailing_zeros() as usize];
        let (shared, _) = self.resolve(space, first);
        if shared {
            // Words per bank: distinct 4-byte words that fall in the same bank cost a
            // wavefront each; the same word is a broadcast.
            let mut buf = [0u64; WARP * 4];
            let mut n = 0;
            let mut m = exec;
            while m != 0 {
                let l = m.trailing_zeros() as usize;
                m &= m - 1;
                let (_, a) = self.resolve(space, addrs[l]);
                for k in 0..width.div_ceil(4) as u64 {
                    buf[n] = a / 4 + k;
                    n += 1;
                }
            }
            let words = &mut buf[..n];
            words.sort_unstable();
            let mut per_bank = [0u32; 32];
            let mut prev = u64::MAX;
            for &wd in words.iter() {
                if wd == prev {
                    continue;
                }
                prev = wd;
                per_bank[(wd % 32) as usize] += 1;
            }
            let wavefronts = per_bank.iter().copied().max().unwrap_or(1).max(1);
            // Accesses wider than 4 bytes are split into phases of 128 bytes.
            let phases = ((exec.count_ones() * width) as u64).div_ceil(128).max(1);
            self.metrics.shared_requests += 1;
            self.metrics.shared_wavefronts += (wavefronts as u64).max(phases);
        } else {
            let mut buf = [0u64; WARP * 2];
            let mut n = 0;
            let mut m = exec;
            while m != 0 {
                let l = m.trailing_zeros() as usize;
                m &= m - 1;
                let a = addrs[l];
                for s in a / 32..=(a + width as u64 - 1) / 32 {
                    if n < buf.len() {
                        buf[n] = s;
                        n += 1;
                    }
                }
            }
            let sectors = &mut buf[..n];
            sectors.sort_unstable();
            let mut distinct = 0;
            let mut prev = u64::MAX;
            for &s in sectors.iter() {
                if s != prev {
                    distinct += 1;
                    prev = s;
                    if self.launch.options.unique_sectors {
                        self.sectors.insert(s);
                    }
                }
            }
            // Bytes the warp needs: lanes reading the same address (a broadcast) count once.
            let mut lane_addrs = [0u64; WARP];
            let mut k = 0;
            let mut m = exec;
            while m != 0 {
                let l = m.trailing_zeros() as usize;
                m &= m - 1;
                lane_addrs[k] = addrs[l];
                k += 1;
            }
            let lane_addrs = &mut lane_addrs[..k];
            lane_addrs.sort_unstable();
            let mut unique = 0u64;
            let mut prev = u64::MAX;
            for &a in lane_addrs.iter() {
                if a != prev {
                    unique += 1;
                    prev = a;
                }
            }
            self.metrics.global_requests += 1;
            self.metrics.global_sectors += distinct;
            self.metrics.global_bytes += unique * width as u64;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn access(
        &mut self,
        w: usize,
        l: usize,
        instr: &Instr,
        space: Space,
        addr: u64,
        width: u32,
        write: bool,
        raw: &mut [u8; 16],
    ) -> Result<(), SimError> {
        self.access_inner(
            w,
            l,
            instr,
            space,
            addr,
            width,
            write,
            raw,
            self.launch.options.racecheck,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn access_unraced(
        &mut self,
        w: usize,
        l: usize,
        instr: &Instr,
        space: Space,
        addr: u64,
        width: u32,
        write: bool,
        raw: &mut [u8; 16],
    ) -> Result<(), SimError> {
        self.access_inner(w, l, instr, space, addr, width, write, raw, false)
    }

    #[allow(clippy::too_many_arguments)]
    fn access_inner(
        &mut self,
        w: usize,
        l: usize,
        instr: &Instr,
        space: Space,
        addr: u64,
        width: u32,
        write: bool,
        raw: &mut [u8; 16],
        racecheck: bool,
    ) -> Result<(), SimError> {
        let verb = if write { "store" } else { "load" };
        let (shared, a) = self.resolve(space, addr);
        if a % width.min(16) as u64 != 0 {
            return Err(self.fail(
                Check::Memcheck,
                format!(
                    "misaligned {} {verb} of {width} bytes at {addr:#x} (must be a multiple of {})",
                    if shared { "shared" } else { "global" },
                    width.min(16)
                ),
                w,
                l,
                instr,
            ));
        }
        let me = self.block_linear * self.tpb + self.warps[w].linear[l] + 1;
        let epoch = (self.epoch, self.warps[w].wsync);
        let line = instr.ptx_line;
        let n = width as usize;
        if shared {
            let var = self.launch.kernel.shared.iter().find(|v| {
                a >= v.sim_offset as u64 && a + width as u64 <= (v.sim_offset + v.bytes) as u64
            });
            let Some(var) = var else {
                let near = self
                    .launch
                    .kernel
                    .shared
                    .iter()
                    .filter(|v| v.sim_offset as u64 <= a)
                    .max_by_key(|v| v.sim_offset);
                let what = match near {
                    Some(v) => format!(
                        "byte {} of shared `{}`, which holds {} bytes",
                        a as i64 - v.sim_offset as i64,
                        v.short,
                        v.bytes
                    ),
                    None => format!("shared address {a:#x}, before every shared variable"),
                };
                return Err(self.fail(
                    Check::Memcheck,
                    format!("out-of-bounds shared {verb} of {width} bytes at {what}"),
                    w,
                    l,
                    instr,
                ));
            };
            let var_name = &var.short;
            let var_off = a - var.sim_offset as u64;
            let at = a as usize;
            if !write && self.launch.options.initcheck {
                if let Some(b) = self.shared.first_uninit(at, n) {
                    return Err(self.fail(
                        Check::Initcheck,
                        format!(
                            "load of uninitialised shared memory: byte {} of `{var_name}` was never written",
                            b as u64 - var.sim_offset as u64
                        ),
                        w,
                        l,
                        instr,
                    ));
                }
            }
            if racecheck {
                let stamp = self.block_linear.wrapping_add(1);
                let tpb = self.tpb;
                let block = self.block_linear;
                let cells = self.shared.race_cells();
                if let Err((kind, other, other_line)) =
                    race(cells, a, width, stamp, me, block, epoch, line, write, tpb)
                {
                    let msg = self.race_message(
                        kind,
                        "shared",
                        &format!("`{var_name}` byte {var_off}"),
                        other,
                        other_line,
                    );
                    return Err(self.fail(Check::Racecheck, msg, w, l, instr));
                }
            }
            if write {
                self.shared.data[at..at + n].copy_from_slice(&raw[..n]);
                self.shared.mark_init(at, n);
            } else {
                raw[..n].copy_from_slice(&self.shared.data[at..at + n]);
            }
            return Ok(());
        }
        let (index, off) = match self.global.find(a) {
            Place::Inside(i, off) if off + width as u64 <= self.global.allocations[i].size => (i, off),
            Place::Inside(i, off) => {
                let size = self.global.allocations[i].size;
                return Err(self.fail(
                    Check::Memcheck,
                    format!(
                        "out-of-bounds global {verb} of {width} bytes at {addr:#x}: bytes {off}..{} of allocation #{i}, which holds {size} bytes",
                        off + width as u64
                    ),
                    w,
                    l,
                    instr,
                ));
            }
            Place::Freed(i) => {
                return Err(self.fail(
                    Check::Memcheck,
                    format!("use after free: global {verb} at {addr:#x}, inside allocation #{i}, which was freed"),
                    w,
                    l,
                    instr,
                ))
            }
            Place::Outside(near) => {
                let what = match near {
                    Some((i, past)) => format!(
                        "{past} bytes past the end of allocation #{i} ({} bytes)",
                        self.global.allocations[i].size
                    ),
                    None => "below every allocation".into(),
                };
                return Err(self.fail(
                    Check::Memcheck,
                    format!("out-of-bounds global {verb} of {width} bytes at {addr:#x}, {what}"),
                    w,
                    l,
                    instr,
                ));
            }
        };
        let at = off as usize;
        if !write && self.launch.options.initcheck {
            if let Some(b) = self.global.allocations[index].bytes.first_uninit(at, n) {
                return Err(self.fail(
                    Check::Initcheck,
                    format!(
                        "load of uninitialised global memory: byte {b} of allocation #{index} was never written"
                    ),
                    w,
                    l,
                    instr,
                ));
            }
        }
        if racecheck {
            let stamp = self.launch.stamp;
            let tpb = self.tpb;
            let block = self.block_linear;
            let cells = self.global.allocations[index].bytes.race_cells();
            if let Err((kind, other, other_line)) =
                race(cells, off, width, stamp, me, block, epoch, line, write, tpb)
            {
                let msg = self.race_message(
                    kind,
                    "global",
                    &format!("allocation #{index} byte {off}"),
                    other,
                    other_line,
                );
                return Err(self.fail(Check::Racecheck, msg, w, l, instr));
            }
        }
        let bytes = &mut self.global.allocations[index].bytes;
        if write {
            bytes.data[at..at + n].copy_from_slice(&raw[..n]);
            bytes.mark_init(at, n);
        } else {
            raw[..n].copy_from_slice(&bytes.data[at..at + n]);
        }
        Ok(())
    }

    fn race_message(
        &self,
        kind: &str,
        space: &str,
        place: &str,
        other: u32,
        other_line: u32,
    ) -> String {
        let who = if other == MANY {
            "other threads".to_string()
        } else {
            let t = other - 1;
            let block = t / self.tpb;
            let [gx, gy, _] = self.launch.grid;
            let b = [block % gx, (block / gx) % gy, block / (gx * gy)];
            format!(
                "thread {} of block {}",
                fmt3(self.tid_of(t % self.tpb)),
                fmt3(b)
            )
        };
        let mut other_at = format!("PTX line {other_line}");
        if let Some(i) = self
            .launch
            .kernel
            .code
            .iter()
            .find(|i| i.ptx_line == other_line)
        {
            if let Some(src) = self.launch.module.source_line(i) {
                other_at.push_str(&format!(" ({src})"));
            }
        }
        format!(
            "{kind} hazard on {space} memory ({place}) with {who} at {other_at}, with no barrier between them"
        )
    }
}

/// Records an access in the race cells of `addr..addr+width` and reports the first hazard:
/// (kind, the other thread id + 1 or [`MANY`], its PTX line).
#[allow(clippy::too_many_arguments)]
fn race(
    cells: &mut [RaceCell],
    addr: u64,
    width: u32,
    stamp: u32,
    me: u32,
    block: u32,
    (epoch, wsync): (u32, u32),
    line: u32,
    write: bool,
    tpb: u32,
) -> Result<(), (&'static str, u32, u32)> {
    let warp_of = |t: u32| ((t - 1) % tpb) / 32;
    // Unordered: another thread, in another block, or in this block with no barrier between
    // and, within one warp, no `__syncwarp` between either.
    let unordered = |t: u32, e: u32, ws: u32| {
        t != me
            && ((t - 1) / tpb != block
                || (e == epoch && (warp_of(t) != warp_of(me) || ws == wsync)))
    };
    let first = (addr / GRANULE) as usize;
    let last = ((addr + width as u64 - 1) / GRANULE) as usize;
    for cell in &mut cells[first..=last] {
        if cell.stamp != stamp {
            *cell = RaceCell {
                stamp,
                ..RaceCell::default()
            };
        }
        if cell.writer != 0 && unordered(cell.writer, cell.w_epoch, cell.w_wsync) {
            let kind = if write {
                "write-after-write"
            } else {
                "read-after-write"
            };
            return Err((kind, cell.writer, cell.w_line));
        }
        if write {
            if cell.reader == MANY {
                if cell.r_block != block || cell.r_epoch == epoch {
                    return Err(("write-after-read", MANY, cell.r_line));
                }
            } else if cell.reader != 0 && unordered(cell.reader, cell.r_epoch, cell.r_wsync) {
                return Err(("write-after-read", cell.reader, cell.r_line));
            }
            cell.writer = me;
            cell.w_epoch = epoch;
            cell.w_wsync = wsync;
            cell.w_line = line;
            cell.reader = 0;
        } else if cell.reader == 0
            || cell.reader == me
            || (cell.reader != MANY && !unordered(cell.reader, cell.r_epoch, cell.r_wsync))
            || (cell.reader == MANY && cell.r_block == block && cell.r_epoch != epoch)
        {
            cell.reader = me;
            cell.r_block = block;
            cell.r_epoch = epoch;
            cell.r_wsync = wsync;
            cell.r_line = line;
        } else {
            cell.r_block = if cell.r_block == block { block } else { MANY };
            cell.reader = MANY;
            cell.r_epoch = epoch;
        }
    }
    Ok(())
}

pub fn fmt3(v: [u32; 3]) -> String {
    format!("({}, {}, {})", v[0], v[1], v[2])
}
