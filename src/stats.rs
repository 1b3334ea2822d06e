//! Heap statistics, gathered on demand: what `arenalloc_stats`, `arenalloc_stats_print`,
//! `malloc_stats`, `mallinfo2` and `ARENALLOC_STATS=1` report.
//!
//! Nothing is counted on the fast paths.  A snapshot walks every pool table under the
//! arena lock (`arena::for_each_pool`) and reads the arena, large-block and heap counters;
//! pools of running threads change meanwhile, so the figures are exact only when the other
//! threads are quiet.  The report is written line by line with `diag::Line`: it allocates
//! nothing, so it can run at exit, in a fork child, or from a program whose heap is broken.
//!
//! Never call from a signal handler: the snapshot takes the arena and registry spinlocks.

use crate::arena::{self, ArenaStats};
use crate::config::{ARENA_SIZE, SLOT_SIZE};
use crate::diag::Line;
use crate::large;
use crate::size_class::{size_of_class, CLASSES};

/// One size class's pools.
#[derive(Clone, Copy, Default)]
pub struct ClassStats {
    pub pools: usize,
    pub blocks_in_use: usize,
    pub blocks_free: usize,
}

/// Everything the reports show.
pub struct Snapshot {
    pub classes: [ClassStats; CLASSES],
    pub arenas: ArenaStats,
    pub pool_slots: usize,
    pub large_blocks: usize,
    pub large_bytes: usize,
    pub heaps: usize,
    pub heaps_attached: usize,
}

impl Snapshot {
    /// Bytes in pool blocks handed out, at their class size.
    pub fn pool_bytes_in_use(&self) -> usize {
        self.classes.iter().enumerate().map(|(c, cs)| cs.blocks_in_use * size_of_class(c)).sum()
    }

    /// Bytes in pool blocks not handed out (free lists and never-used tails).
    pub fn pool_bytes_free(&self) -> usize {
        self.classes.iter().enumerate().map(|(c, cs)| cs.blocks_free * size_of_class(c)).sum()
    }

    pub fn pools(&self) -> usize {
        self.classes.iter().map(|c| c.pools).sum()
    }

    pub fn blocks_in_use(&self) -> usize {
        self.classes.iter().map(|c| c.blocks_in_use).sum::<usize>() + self.large_blocks
    }

    /// Bytes handed out: pool blocks at their class size, large blocks at their mapping.
    pub fn bytes_in_use(&self) -> usize {
        self.pool_bytes_in_use() + self.large_bytes
    }

    /// Address space mapped for blocks: every arena, every live large mapping.
    pub fn bytes_mapped(&self) -> usize {
        self.arenas.current * ARENA_SIZE + self.large_bytes
    }
}

/// Takes a snapshot (see the module comment for how exact it is).
pub fn snapshot() -> Snapshot {
    crate::alloc::settle_frees();
    let mut classes = [ClassStats::default(); CLASSES];
    let mut pool_slots = 0;
    arena::for_each_pool(|pool| {
        if let Some(c) = classes.get_mut(pool.class) {
            c.pools += 1;
            c.blocks_in_use += pool.used;
            c.blocks_free += pool.capacity.saturating_sub(pool.used);
        }
        pool_slots += pool.slots;
    });
    let (heaps, heaps_attached) = crate::registry::heap_counts();
    Snapshot {
        classes,
        arenas: arena::stats(),
        pool_slots,
        large_blocks: large::live_blocks(),
        large_bytes: large::live_bytes(),
        heaps,
        heaps_attached,
    }
}

/// Writes the report to stderr, in the spirit of CPython's `sys._debugmallocstats()`.
pub fn print(s: &Snapshot) {
    Line::new().str("arenalloc ").str(env!("CARGO_PKG_VERSION")).str(" heap statistics (pid ")
        .dec(crate::os::process_id()).str(")\n").write();
    Line::new().str("class   size  pools  blocks in use  free blocks  bytes in use\n").write();
    for (c, cs) in s.classes.iter().enumerate() {
        if cs.pools == 0 {
            continue;
        }
        Line::new().dec_width(c, 5).dec_width(size_of_class(c), 7).dec_width(cs.pools, 7)
            .dec_width(cs.blocks_in_use, 15).dec_width(cs.blocks_free, 13)
            .dec_width(cs.blocks_in_use * size_of_class(c), 14).str("\n").write();
    }
    let a = &s.arenas;
    Line::new().str("arenas: ").dec(a.current).str(" current, ").dec(a.peak).str(" peak, ")
        .dec(a.mapped).str(" allocated, ").dec(a.unmapped).str(" freed (")
        .dec(ARENA_SIZE >> 20).str(" MiB each)\n").write();
    Line::new().str("pools: ").dec(s.pools()).str(" using ").dec(s.pool_slots).str(" slots of ")
        .dec(SLOT_SIZE >> 10).str(" KiB; blocks: ").dec(s.pool_bytes_in_use()).str(" bytes in use, ")
        .dec(s.pool_bytes_free()).str(" bytes free\n").write();
    Line::new().str("large blocks: ").dec(s.large_blocks).str(" in use, ").dec(s.large_bytes)
        .str(" bytes mapped\n").write();
    let mapped = s.bytes_mapped();
    let used = s.bytes_in_use();
    // Fragmentation: the share of mapped address space not holding live blocks (free
    // blocks, free slots, arena headers), in tenths of a percent.
    let permille = if mapped == 0 { 0 } else { (mapped - used.min(mapped)) * 1000 / mapped };
    Line::new().str("bytes in use: ").dec(used).str(", mapped: ").dec(mapped).str(", unused: ")
        .dec(permille / 10).str(".").dec(permille % 10).str("% of mapped\n").write();
    Line::new().str("thread heaps: ").dec(s.heaps).str(" (").dec(s.heaps_attached)
        .str(" attached to live threads)\n").write();
}
