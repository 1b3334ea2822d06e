//! Fuzz target: the fuzzer's bytes are a program of allocation calls, run through the C ABI
//! (`malloc`, `calloc`, `realloc`, `free`, the aligned family, `malloc_usable_size`,
//! `malloc_trim`) and checked against a model of every live block.
//!
//! The model keeps, for each of `SLOTS` slots, the block's pointer, requested size, usable
//! size and a seed.  Every block is filled with a pattern derived from its seed over its whole
//! usable size and checked before it is freed or resized, so the target catches:
//! * two live blocks that overlap (checked on every allocation, and by the patterns);
//! * `malloc_usable_size` larger than the block really is (the fill would run into a
//!   neighbour);
//! * contents lost or damaged by `realloc`, by another block's use, or by the allocator's
//!   own bookkeeping (free-list links, remote-free stacks, purged pages);
//! * `calloc` memory that is not zero; an alignment not honoured; a NULL for a size that
//!   must succeed; a missing NULL or wrong `errno` for a request that must fail.
//!
//! Blocks also cross threads: a worker thread frees blocks this thread allocated (remote
//! frees, collected later by the owner heap) and allocates blocks this thread frees.
//!
//! The library is linked in as an rlib, so its `malloc` is the whole process's: libFuzzer
//! and the Rust runtime allocate through it too, and share its heaps with the model.

#![no_main]

use std::hint::black_box;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Mutex, OnceLock};

use arenalloc::ffi::aligned::{aligned_alloc, memalign, posix_memalign, pvalloc, valloc};
use arenalloc::ffi::glibc::malloc_trim;
use arenalloc::ffi::malloc::{calloc, free, malloc, malloc_usable_size, realloc};
use libc::c_void;
use libfuzzer_sys::fuzz_target;

/// Live blocks the model tracks at once.
const SLOTS: usize = 32;
/// Blocks up to this size are filled and checked whole; above it, the first and last 4 KiB
/// and one word per 4 KiB page (large blocks are rare but each would otherwise cost a
/// megabyte-sized fill on every operation).
const FULL_CHECK_LIMIT: usize = 64 << 10;
const PAGE: usize = 4096;

#[derive(Clone, Copy)]
struct Block {
    ptr: *mut u8,
    /// What was asked for: the prefix realloc must keep.
    requested: usize,
    /// What `malloc_usable_size` promised: all of it is written.
    usable: usize,
    seed: u64,
}

/// The byte the pattern of `seed` has at `offset`.
fn pattern_byte(seed: u64, offset: usize) -> u8 {
    let word = seed ^ ((offset as u64 >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    word.to_le_bytes()[offset & 7]
}

/// Calls `f(start, end)` for the byte ranges of a `size`-byte block that carry the pattern.
fn pattern_ranges(size: usize, mut f: impl FnMut(usize, usize)) {
    if size <= FULL_CHECK_LIMIT {
        f(0, size);
        return;
    }
    f(0, PAGE);
    let mut page = PAGE;
    while page + PAGE < size - PAGE {
        f(page, page + 8);
        page += PAGE;
    }
    f(size - PAGE, size);
}

fn fill(p: *mut u8, size: usize, seed: u64) {
    pattern_ranges(size, |start, end| {
        for offset in start..end {
            // SAFETY: offset < size, and the model only fills live blocks of `size` bytes.
            unsafe { *p.add(offset) = pattern_byte(seed, offset) };
        }
    });
}

/// Panics (which aborts: a crash for libFuzzer) when `[0, size)` of `p` does not carry the
/// pattern of `seed`.
fn check(p: *mut u8, size: usize, seed: u64, what: &str) {
    check_prefix(p, size, size, seed, what);
}

/// `check` of a block filled over `filled` bytes, of its first `kept` bytes only (what
/// `realloc` must keep).
fn check_prefix(p: *mut u8, filled: usize, kept: usize, seed: u64, what: &str) {
    pattern_ranges(filled, |start, end| {
        for offset in start..end.min(kept) {
            // SAFETY: offset < kept, and `p` is a live block of at least `kept` bytes.
            let got = unsafe { *p.add(offset) };
            if got != pattern_byte(seed, offset) {
                panic!("{what}: block {p:?} ({kept} of {filled} bytes checked): byte {offset} is {got:#04x}, expected {:#04x}",
                    pattern_byte(seed, offset));
            }
        }
    });
}

fn check_zero(p: *mut u8, size: usize) {
    pattern_ranges(size, |start, end| {
        for offset in start..end {
            // SAFETY: `p` is a live calloc block of at least `size` bytes.
            let got = unsafe { *p.add(offset) };
            assert_eq!(got, 0, "calloc block {p:?} ({size} bytes): byte {offset} is not zero");
        }
    });
}

fn errno() -> i32 {
    // SAFETY: errno is thread-local and always readable.
    unsafe { *libc::__errno_location() }
}

fn set_errno(value: i32) {
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = value };
}

/// Reads the fuzzer's bytes; past the end it reads zeros, and `done` turns true.
struct Input<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Input<'_> {
    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn byte(&mut self) -> u8 {
        let b = self.bytes.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn u16(&mut self) -> usize {
        u16::from_le_bytes([self.byte(), self.byte()]) as usize
    }

    /// A request size, spread over every kind of block: mostly small (the pools' classes up
    /// to 512 B), some medium (to 1 MiB), a few large, and sizes next to each boundary.
    fn size(&mut self) -> usize {
        const EDGES: [usize; 8] = [0, 16, 512, 1024, 16 << 10, 64 << 10, 1 << 20, 2 << 20];
        let kind = self.byte();
        let r = self.u16();
        match kind % 16 {
            0..=6 => r % 129,
            7..=9 => r % 1025,
            10..=11 => r % (32 << 10),
            12 => (r << 4) % ((1 << 20) + 1),
            13 => (1 << 20) + (r << 5) % (3 << 20),
            _ => {
                let edge = EDGES[r % EDGES.len()];
                let delta = (r >> 3) % 5; // -2 ..= +2 around the edge
                (edge + delta).saturating_sub(2)
            }
        }
    }
}

/// Work for the worker thread: free blocks this thread allocated, allocate a block this
/// thread will free.
enum Job {
    Free(Vec<Block>),
    Malloc(usize, u64),
}

enum Reply {
    Freed,
    Allocated(Block),
}

/// A `Job` or a `Reply` moved between threads (raw pointers are not `Send` by themselves).
struct Handover<T>(T);
// SAFETY: the blocks are plain memory owned by the model; exactly one thread uses a block
// at a time (the sender waits for the reply).
unsafe impl<T> Send for Handover<T> {}

struct Worker {
    jobs: SyncSender<Handover<Job>>,
    replies: Receiver<Handover<Reply>>,
}

fn worker() -> &'static Mutex<Worker> {
    static WORKER: OnceLock<Mutex<Worker>> = OnceLock::new();
    WORKER.get_or_init(|| {
        let (jobs, job_rx) = sync_channel::<Handover<Job>>(0);
        let (reply_tx, replies) = sync_channel::<Handover<Reply>>(0);
        std::thread::spawn(move || {
            for Handover(job) in job_rx {
                let reply = match job {
                    Job::Free(blocks) => {
                        for b in &blocks {
                            check(b.ptr, b.usable, b.seed, "remote free");
                            // SAFETY: a live block from this library, handed over by the model.
                            unsafe { free(b.ptr.cast()) };
                        }
                        Reply::Freed
                    }
                    Job::Malloc(size, seed) => Reply::Allocated(allocated(malloc(size).cast(), size, seed, "worker malloc")),
                };
                if reply_tx.send(Handover(reply)).is_err() {
                    break;
                }
            }
        });
        Mutex::new(Worker { jobs, replies })
    })
}

/// Runs `job` on the worker thread and waits for it to finish.
fn on_worker(job: Job) -> Reply {
    let w = worker().lock().unwrap();
    w.jobs.send(Handover(job)).expect("worker thread gone");
    w.replies.recv().expect("worker thread gone").0
}

/// Checks a fresh block (non-null, 16-aligned, usable ≥ requested) and fills it.
fn allocated(p: *mut u8, requested: usize, seed: u64, what: &str) -> Block {
    assert!(!p.is_null(), "{what}({requested}) returned NULL");
    assert_eq!(p as usize % 16, 0, "{what}({requested}) = {p:?} is not 16-aligned");
    // SAFETY: `p` is a live block from this library.
    let usable = unsafe { malloc_usable_size(p.cast()) };
    assert!(usable >= requested, "{what}({requested}): usable size {usable} is smaller");
    fill(p, usable, seed);
    Block { ptr: p, requested, usable, seed }
}

struct Model {
    slots: [Option<Block>; SLOTS],
    next_seed: u64,
}

impl Model {
    fn seed(&mut self) -> u64 {
        self.next_seed = self.next_seed.wrapping_add(0xA076_1D64_78BD_642F);
        self.next_seed
    }

    /// Asserts the new block `b` overlaps no live block, then keeps it in `slot` (freeing
    /// what was there first is the caller's job).
    fn keep(&mut self, slot: usize, b: Block) {
        let (start, end) = (b.ptr as usize, b.ptr as usize + b.usable.max(1));
        for other in self.slots.iter().flatten() {
            let (o_start, o_end) = (other.ptr as usize, other.ptr as usize + other.usable.max(1));
            assert!(end <= o_start || o_end <= start,
                "new block {:?}+{} overlaps live block {:?}+{}", b.ptr, b.usable, other.ptr, other.usable);
        }
        self.slots[slot] = Some(b);
    }

    fn free_slot(&mut self, slot: usize) {
        if let Some(b) = self.slots[slot].take() {
            check(b.ptr, b.usable, b.seed, "free");
            // SAFETY: a live block from this library, forgotten by the model.
            unsafe { free(b.ptr.cast()) };
        }
    }

    fn free_all(&mut self) {
        for slot in 0..SLOTS {
            self.free_slot(slot);
        }
    }

    fn step(&mut self, input: &mut Input) {
        let op = input.byte();
        let slot = input.byte() as usize % SLOTS;
        match op % 18 {
            0..=3 => {
                let size = input.size();
                self.free_slot(slot);
                let seed = self.seed();
                self.keep(slot, allocated(malloc(size).cast(), size, seed, "malloc"));
            }
            4 => {
                let size = input.size();
                let count = input.byte() as usize % 8 + 1;
                let each = size / count;
                self.free_slot(slot);
                let p: *mut u8 = calloc(count, each).cast();
                assert!(!p.is_null(), "calloc({count}, {each}) returned NULL");
                check_zero(p, count * each);
                let seed = self.seed();
                self.keep(slot, allocated(p, count * each, seed, "calloc"));
            }
            5 | 6 => self.realloc(slot, input.size()),
            7..=9 => self.free_slot(slot),
            10 => self.aligned(slot, input),
            11 => {
                // A remote free: the worker checks the block and frees it.
                if let Some(b) = self.slots[slot].take() {
                    on_worker(Job::Free(vec![b]));
                }
            }
            12 => {
                // A block of the worker's heap, freed later by this thread (a remote free).
                let size = input.size();
                self.free_slot(slot);
                let seed = self.seed();
                if let Reply::Allocated(b) = on_worker(Job::Malloc(size, seed)) {
                    self.keep(slot, b);
                }
            }
            13 => self.impossible(slot, input.byte()),
            14 => {
                if input.byte() % 4 == 0 {
                    malloc_trim(0);
                }
                if let Some(b) = self.slots[slot] {
                    // SAFETY: a live block.
                    let usable = unsafe { malloc_usable_size(b.ptr.cast()) };
                    assert_eq!(usable, b.usable, "malloc_usable_size({:?}) changed", b.ptr);
                    check(b.ptr, b.usable, b.seed, "usable size");
                }
            }
            15 | 16 => self.burst(input),
            _ => self.free_all(),
        }
    }

    /// Hundreds or thousands of blocks of one size, then all freed in an order the input
    /// picks: pools fill up, leave and rejoin their heap's lists, empty, and go back to their
    /// arena (the model's few slots alone would never fill a pool of small blocks).
    fn burst(&mut self, input: &mut Input) {
        let count = input.u16() % 3000 + 1;
        let size = input.size() % (8 << 10);
        let order = input.byte();
        let mut blocks = Vec::with_capacity(count);
        for _ in 0..count {
            let seed = self.seed();
            blocks.push(allocated(malloc(size).cast(), size, seed, "malloc (burst)"));
        }
        let free_here = |b: &Block| {
            check(b.ptr, b.usable, b.seed, "free (burst)");
            // SAFETY: a live block of the burst, freed once.
            unsafe { free(b.ptr.cast()) };
        };
        match order % 4 {
            0 => blocks.iter().for_each(free_here),
            1 => blocks.iter().rev().for_each(free_here),
            2 => {
                // Every other block first: pools go from full to half full to empty.
                blocks.iter().step_by(2).for_each(free_here);
                blocks.iter().skip(1).step_by(2).for_each(free_here);
            }
            _ => {
                // Half freed here, half by the worker thread (remote frees, collected later).
                let (mut mine, mut theirs) = (Vec::new(), Vec::new());
                for (i, b) in blocks.into_iter().enumerate() {
                    if i % 2 == 0 { mine.push(b) } else { theirs.push(b) }
                }
                mine.iter().for_each(free_here);
                on_worker(Job::Free(theirs));
            }
        }
    }

    fn realloc(&mut self, slot: usize, size: usize) {
        let old = self.slots[slot].take();
        let p = old.map_or(core::ptr::null_mut(), |b| b.ptr);
        if let Some(b) = old {
            check(b.ptr, b.usable, b.seed, "before realloc");
        }
        // SAFETY: `p` is NULL or a live block the model has let go of.
        let q: *mut u8 = unsafe { realloc(p.cast(), size) }.cast();
        if size == 0 && !p.is_null() {
            assert!(q.is_null(), "realloc({p:?}, 0) must free and return NULL");
            return;
        }
        assert!(!q.is_null(), "realloc({p:?}, {size}) returned NULL");
        if let Some(b) = old {
            check_prefix(q, b.usable, b.requested.min(size), b.seed, "realloc kept");
        }
        let seed = self.seed();
        let b = allocated(q, size, seed, "realloc");
        self.keep(slot, b);
    }

    /// posix_memalign, aligned_alloc, memalign, valloc or pvalloc, alignments 1 B to 4 MiB.
    fn aligned(&mut self, slot: usize, input: &mut Input) {
        let how = input.byte();
        let align = 1usize << (input.byte() % 23);
        let size = input.size();
        self.free_slot(slot);
        let (p, want_align): (*mut u8, usize) = match how % 5 {
            0 => {
                let mut out: *mut c_void = core::ptr::null_mut();
                let align = align.max(8);
                // SAFETY: `out` is a valid pointer-sized slot.
                let rc = unsafe { posix_memalign(&mut out, align, size) };
                assert_eq!(rc, 0, "posix_memalign({align}, {size}) failed");
                (out.cast(), align)
            }
            1 => (aligned_alloc(align, size).cast(), align),
            2 => (memalign(align, size).cast(), align),
            3 => (valloc(size).cast(), PAGE),
            _ => (pvalloc(size).cast(), PAGE),
        };
        assert!(!p.is_null(), "aligned allocation ({how}) of {size} at {align} returned NULL");
        assert_eq!(p as usize % want_align, 0, "{p:?} is not {want_align}-aligned");
        let seed = self.seed();
        let b = allocated(p, size, seed, "aligned");
        self.keep(slot, b);
    }

    /// Requests that must fail cleanly, leaving every block (and `slot`'s) intact.
    ///
    /// Each result goes through `black_box`: the compiler knows `malloc`'s meaning, and may
    /// delete an allocation whose pointer is only compared with NULL, folding the test to
    /// "not NULL".
    fn impossible(&mut self, slot: usize, which: u8) {
        const HUGE: [usize; 4] = [usize::MAX, usize::MAX - 15, isize::MAX as usize + 1, 1 << 62];
        let huge = HUGE[which as usize % HUGE.len()];
        set_errno(0);
        match which / 4 % 6 {
            0 => {
                assert!(black_box(malloc(huge)).is_null(), "malloc({huge}) must fail");
                assert_eq!(errno(), libc::ENOMEM, "malloc({huge}) errno");
            }
            1 => {
                assert!(black_box(calloc(huge, 16)).is_null(), "calloc({huge}, 16) must fail");
                assert_eq!(errno(), libc::ENOMEM, "calloc({huge}, 16) errno");
            }
            2 => {
                let mut out: *mut c_void = 0x1234 as *mut c_void;
                // SAFETY: `out` is a valid pointer-sized slot.
                let rc = unsafe { posix_memalign(&mut out, 24, 64) };
                assert_eq!(rc, libc::EINVAL, "posix_memalign(24, 64)");
                assert_eq!(out as usize, 0x1234, "posix_memalign wrote *memptr on failure");
            }
            3 => {
                assert!(black_box(aligned_alloc(48, 64)).is_null(), "aligned_alloc(48, 64) must fail");
                assert_eq!(errno(), libc::EINVAL, "aligned_alloc(48, 64) errno");
            }
            4 => {
                assert!(black_box(memalign(64, huge)).is_null(), "memalign(64, {huge}) must fail");
            }
            _ => {
                if let Some(b) = self.slots[slot] {
                    // SAFETY: a live block; on failure realloc leaves it untouched.
                    let q = unsafe { realloc(b.ptr.cast(), huge) };
                    assert!(q.is_null(), "realloc({:?}, {huge}) must fail", b.ptr);
                    assert_eq!(errno(), libc::ENOMEM, "realloc to {huge} errno");
                    check(b.ptr, b.usable, b.seed, "after failed realloc");
                }
            }
        }
    }
}

fuzz_target!(|bytes: &[u8]| {
    let mut model = Model { slots: [None; SLOTS], next_seed: bytes.len() as u64 };
    let mut input = Input { bytes, at: 0 };
    while !input.done() {
        model.step(&mut input);
    }
    model.free_all();
});
