//! The simulated device's memory: global allocations and a block's shared window, each with
//! the shadow state the checks need.
//!
//! - **Addresses.** Global allocations get 256-byte-aligned addresses from [`GLOBAL_BASE`]
//!   up, never reused, with at least [`RED_ZONE`] unmapped bytes between two allocations: an
//!   overrun lands in no allocation (memcheck names the one it ran past), and an address of a
//!   freed allocation is a use after free, not a read of whatever came next.
//! - **Initialisation.** One bit per byte says whether the byte was ever written (by a copy
//!   from the host, a memset or a kernel); a new allocation's bytes are garbage (`0xCD`) and
//!   unwritten.
//! - **Races.** One [`RaceCell`] per 2-byte granule (the smallest access strata's kernels
//!   make) remembers the last writer and the readers since, as (thread, barrier epoch, warp
//!   `__syncwarp` count, PTX line). Two 1-byte accesses to one granule by different threads
//!   count as touching the same bytes (no kernel makes them today). Cells carry the launch they belong to, so nothing is cleared between launches.

// Items named after the PTX ISA (types, state spaces, opcodes) or internal to the simulator:
// the ISA manual and the module comment above document them.
#![allow(missing_docs)]

/// Where the first global allocation lives (the look of a device pointer).
pub const GLOBAL_BASE: u64 = 0x7f00_0000_0000;
/// Alignment of every allocation, as `cudaMalloc` guarantees.
pub const ALIGN: u64 = 256;
/// Unmapped bytes after every allocation.
pub const RED_ZONE: u64 = 1024;
/// Generic addresses of the shared window start here (`cvta.shared`).
pub const SHARED_GENERIC_BASE: u64 = 0x0001_0000_0000_0000;
/// Bytes per race-shadow granule.
pub const GRANULE: u64 = 2;
/// A granule read by two or more threads since its last write.
pub const MANY: u32 = u32::MAX;

/// Who last touched a granule, and when.
#[derive(Clone, Copy, Debug, Default)]
pub struct RaceCell {
    /// The launch (global memory) or block (shared memory) these fields belong to.
    pub stamp: u32,
    /// Writer: linear thread id + 1 (0: none), its barrier epoch and PTX line.
    pub writer: u32,
    pub w_epoch: u32,
    /// The writer's warp's `__syncwarp` count at the access.
    pub w_wsync: u32,
    pub w_line: u32,
    /// Reader: thread id + 1, or [`MANY`]; its block ([`MANY`]: several), epoch, PTX line.
    pub reader: u32,
    pub r_block: u32,
    pub r_epoch: u32,
    pub r_wsync: u32,
    pub r_line: u32,
}

/// Bytes with an initialised-bit per byte and, once racecheck touches them, race cells.
#[derive(Debug)]
pub struct Bytes {
    pub data: Vec<u8>,
    init: Vec<u64>,
    pub race: Vec<RaceCell>,
}

impl Bytes {
    pub fn new(len: usize, fill: u8) -> Bytes {
        Bytes {
            data: vec![fill; len],
            init: vec![0; len.div_ceil(64)],
            race: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn mark_init(&mut self, start: usize, len: usize) {
        for b in start..start + len {
            self.init[b / 64] |= 1 << (b % 64);
        }
    }

    /// Marks byte `b` written or never written.
    pub fn set_init(&mut self, b: usize, written: bool) {
        if written {
            self.init[b / 64] |= 1 << (b % 64);
        } else {
            self.init[b / 64] &= !(1 << (b % 64));
        }
    }

    /// The first byte of `start..start+len` never written, if any.
    pub fn first_uninit(&self, start: usize, len: usize) -> Option<usize> {
        (start..start + len).find(|&b| self.init[b / 64] & (1 << (b % 64)) == 0)
    }

    pub fn race_cells(&mut self) -> &mut [RaceCell] {
        if self.race.is_empty() {
            let n = (self.data.len() as u64).div_ceil(GRANULE) as usize;
            self.race = vec![RaceCell::default(); n];
        }
        &mut self.race
    }
}

/// One global allocation.
#[derive(Debug)]
pub struct Allocation {
    pub id: usize,
    pub base: u64,
    pub size: u64,
    pub bytes: Bytes,
    pub freed: bool,
}

/// Every allocation ever made (freed ones keep their address range and lose their bytes).
#[derive(Debug, Default)]
pub struct Global {
    pub allocations: Vec<Allocation>,
    next: u64,
    /// The allocation the last lookup found: consecutive accesses usually hit the same one.
    last: usize,
}

/// What an address of global memory is.
pub enum Place {
    /// Allocation index and offset into it.
    Inside(usize, u64),
    /// Inside an allocation that was freed.
    Freed(usize),
    /// In no allocation; the nearest one below, if any, and the distance past its end.
    Outside(Option<(usize, u64)>),
}

impl Global {
    pub fn allocate(&mut self, size: u64) -> u64 {
        if self.next == 0 {
            self.next = GLOBAL_BASE;
        }
        let base = self.next;
        let span = size.max(1).div_ceil(ALIGN) * ALIGN;
        self.next = base + span + RED_ZONE;
        let id = self.allocations.len();
        self.allocations.push(Allocation {
            id,
            base,
            size,
            bytes: Bytes::new(size as usize, 0xCD),
            freed: false,
        });
        base
    }

    pub fn free(&mut self, base: u64) -> Result<(), String> {
        let exact = self
            .allocations
            .binary_search_by_key(&base, |a| a.base)
            .ok();
        let place = match exact {
            Some(i) if self.allocations[i].freed => Place::Freed(i),
            Some(i) => Place::Inside(i, 0),
            None => Place::Outside(None),
        };
        match place {
            Place::Inside(i, 0) => {
                let a = &mut self.allocations[i];
                a.freed = true;
                a.bytes = Bytes::new(0, 0);
                Ok(())
            }
            Place::Freed(i) => Err(format!("double free of allocation #{i} at {base:#x}")),
            _ => Err(format!(
                "free of {base:#x}, which is not an allocation's start"
            )),
        }
    }

    /// Where `addr` lies. Allocations are sorted by base (addresses only grow).
    pub fn find(&mut self, addr: u64) -> Place {
        if let Some(a) = self.allocations.get(self.last) {
            if !a.freed && addr >= a.base && addr < a.base + a.size {
                return Place::Inside(self.last, addr - a.base);
            }
        }
        let i = self.allocations.partition_point(|a| a.base <= addr);
        if i == 0 {
            return Place::Outside(None);
        }
        let a = &self.allocations[i - 1];
        if addr < a.base + a.size.max(1) {
            if a.freed {
                return Place::Freed(i - 1);
            }
            if addr < a.base + a.size {
                self.last = i - 1;
                return Place::Inside(i - 1, addr - a.base);
            }
        }
        Place::Outside(Some((i - 1, addr - (a.base + a.size))))
    }

    /// The live allocation starting at `base` and holding `len` bytes from `offset`.
    pub fn range(&mut self, base: u64, offset: u64, len: u64) -> Result<&mut Allocation, String> {
        // By exact base, so an allocation of zero bytes is found too.
        let exact = self
            .allocations
            .binary_search_by_key(&base, |a| a.base)
            .ok()
            .map(|i| (i, self.allocations[i].freed));
        let place = match exact {
            Some((i, false)) => Place::Inside(i, 0),
            Some((i, true)) => Place::Freed(i),
            None => Place::Outside(None),
        };
        match place {
            Place::Inside(i, 0) => {
                let a = &mut self.allocations[i];
                if offset + len > a.size {
                    return Err(format!(
                        "copy of {len} bytes at offset {offset} of allocation #{i}, which holds {} bytes",
                        a.size
                    ));
                }
                Ok(a)
            }
            Place::Freed(i) => Err(format!("allocation #{i} at {base:#x} was freed")),
            _ => Err(format!("{base:#x} is not the start of a device allocation")),
        }
    }

    /// Bytes allocated and not freed.
    pub fn live_bytes(&self) -> u64 {
        self.allocations
            .iter()
            .filter(|a| !a.freed)
            .map(|a| a.size)
            .sum()
    }
}
