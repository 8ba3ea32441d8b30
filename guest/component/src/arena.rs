//! The guest's global allocator: dlmalloc, plus a per-call bump arena for the encoded fast path.
//!
//! Decoding a request and deciding it makes a few dozen short-lived allocations that all die
//! when the call ends. In dlmalloc each costs tens of nanoseconds inside wasm, which measured
//! as most of a decision's cost. [`scoped`] runs a closure with allocations served from a bump
//! arena (a pointer increment) and returns its result where it was built: the encoded verdicts
//! live in the arena, which is reused by every call, so no output buffer is allocated, copied
//! or freed per call.
//!
//! INVARIANT: nothing allocated in the arena is read after the next [`scoped`] call resets it.
//! The one arena block that leaves [`scoped`] is the export's returned `list<u8>`: the host
//! copies it out while lifting the result, and the canonical ABI's post-return frees it (a
//! no-op for an arena pointer) before the instance can be called again, so it is gone before
//! the next reset. Freeing an arena pointer is a no-op, and every other pointer goes to
//! dlmalloc, so a stray arena pointer can never reach dlmalloc's free.
#![allow(unsafe_code, reason = "a global allocator is unsafe by definition")]

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;

use alloc::vec::Vec;

/// First arena size; it doubles (up to [`MAX_ARENA`]) after a call that overflowed it.
const INITIAL_ARENA: usize = 64 << 10;
const MAX_ARENA: usize = 4 << 20;
const ARENA_ALIGN: usize = 16;

/// dlmalloc with an optional bump arena in front of it.
pub(crate) struct Allocator {
    dlmalloc: dlmalloc::GlobalDlmalloc,
    state: ArenaState,
}

struct ArenaState {
    active: Cell<bool>,
    overflowed: Cell<bool>,
    start: Cell<usize>,
    end: Cell<usize>,
    next: Cell<usize>,
}

// SAFETY: this component is single-threaded (wasm32 without threads), so the cells are never
// accessed concurrently.
unsafe impl Sync for Allocator {}

impl Allocator {
    pub(crate) const fn new() -> Allocator {
        Allocator {
            dlmalloc: dlmalloc::GlobalDlmalloc,
            state: ArenaState {
                active: Cell::new(false),
                overflowed: Cell::new(false),
                start: Cell::new(0),
                end: Cell::new(0),
                next: Cell::new(0),
            },
        }
    }

    fn in_arena(&self, ptr: *mut u8) -> bool {
        let address = ptr as usize;
        address >= self.state.start.get() && address < self.state.end.get()
    }

    /// Bump-allocates `layout`, or `None` when the arena is inactive or full.
    fn bump(&self, layout: Layout) -> Option<*mut u8> {
        if !self.state.active.get() {
            return None;
        }
        let aligned = self.state.next.get().checked_next_multiple_of(layout.align())?;
        let end = aligned.checked_add(layout.size())?;
        if end > self.state.end.get() {
            self.state.overflowed.set(true);
            return None;
        }
        self.state.next.set(end);
        Some(aligned as *mut u8)
    }

    /// Makes sure an arena exists, doubling it if the last call overflowed.
    fn prepare(&self) {
        let size = self.state.end.get() - self.state.start.get();
        let wanted = match (size, self.state.overflowed.get()) {
            (0, _) => INITIAL_ARENA,
            (size, true) if size < MAX_ARENA => size * 2,
            _ => size,
        };
        if wanted != size {
            if size > 0 {
                let old = Layout::from_size_align(size, ARENA_ALIGN);
                if let Ok(old) = old {
                    // SAFETY: the arena block was allocated from dlmalloc with this layout.
                    unsafe { self.dlmalloc.dealloc(self.state.start.get() as *mut u8, old) };
                }
            }
            let start = Layout::from_size_align(wanted, ARENA_ALIGN)
                // SAFETY: a non-zero size with a valid alignment.
                .map(|layout| unsafe { self.dlmalloc.alloc(layout) } as usize)
                .unwrap_or(0);
            let end = if start == 0 { 0 } else { start + wanted };
            self.state.start.set(start);
            self.state.end.set(end);
        }
        self.state.overflowed.set(false);
        self.state.next.set(self.state.start.get());
    }
}

// SAFETY: every pointer handed out is either from dlmalloc (and freed there) or from the arena
// (never freed individually; see the module invariant).
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout) {
            Some(ptr) => ptr,
            // SAFETY: forwarded with the caller's guarantees.
            None => unsafe { self.dlmalloc.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !self.in_arena(ptr) {
            // SAFETY: not an arena pointer, so dlmalloc allocated it.
            unsafe { self.dlmalloc.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.in_arena(ptr) {
            // SAFETY: not an arena pointer, so dlmalloc allocated it.
            return unsafe { self.dlmalloc.realloc(ptr, layout, new_size) };
        }
        // The most recent arena allocation grows in place (the common case of a growing Vec).
        let old_end = ptr as usize + layout.size();
        if self.state.active.get() && old_end == self.state.next.get() {
            let new_end = ptr as usize + new_size;
            if new_end <= self.state.end.get() {
                self.state.next.set(new_end);
                return ptr;
            }
        }
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return core::ptr::null_mut();
        };
        // SAFETY: a valid layout; the copy stays within both blocks.
        unsafe {
            let new_ptr = self.alloc(new_layout);
            if !new_ptr.is_null() {
                core::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
            }
            new_ptr
        }
    }
}

#[global_allocator]
static ALLOCATOR: Allocator = Allocator::new();

/// Runs `work` with its allocations in the arena and returns its bytes where they were built:
/// in the arena (only for the export to return; see the module invariant), or in dlmalloc if
/// the arena overflowed. Either way dropping or freeing them later is sound.
pub(crate) fn scoped(work: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
    let state = &ALLOCATOR.state;
    if state.active.get() {
        return work();
    }
    ALLOCATOR.prepare();
    state.active.set(true);
    let out = work();
    state.active.set(false);
    out
}
