//! Per-thread allocation accounting, for the memory budget of script runs
//! (`scripts.max_memory_mib`).
//!
//! [`CountingAlloc`] wraps the process's global allocator and keeps, per thread, the net
//! number of bytes that thread allocated (allocations minus deallocations). A script run
//! notes the counter when it starts, and the engine's progress callback (called on every
//! Rhai operation) stops the run when the counter has grown by more than the budget.
//!
//! The count is one add to a thread-local cell per allocation, always on; it is read only
//! while a run with a budget is in progress. Memory freed on another thread than the one
//! that allocated it makes one counter drift down and the other up: only differences taken
//! on one thread over one run are meaningful.
//!
//! The binary installs it (`crates/vigil/src/main.rs`); tests that need the budget install
//! it with `#[global_allocator]` in their own file. When it is not the global allocator,
//! [`accounting_active`] is false and runs have no memory budget.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

thread_local! {
    /// Net bytes allocated by this thread. Const-initialised and without a destructor, so
    /// reading it never allocates and works while a thread is being torn down.
    static NET: Cell<isize> = const { Cell::new(0) };
}

#[inline(always)]
fn add(bytes: isize) {
    let _ = NET.try_with(|n| n.set(n.get().wrapping_add(bytes)));
}

/// Net bytes this thread allocated since it started (0 when the global allocator is not a
/// [`CountingAlloc`]).
#[inline]
pub fn thread_allocated() -> isize {
    NET.try_with(Cell::get).unwrap_or(0)
}

/// Whether the global allocator is a [`CountingAlloc`]: makes one small allocation and
/// looks whether this thread's counter saw it.
pub fn accounting_active() -> bool {
    let before = thread_allocated();
    let probe: Vec<u8> = std::hint::black_box(Vec::with_capacity(4096));
    let during = thread_allocated();
    drop(probe);
    during - before >= 4096
}

/// A global allocator that counts, per thread, the net bytes allocated through `A`.
///
/// ```ignore
/// #[global_allocator]
/// static ALLOC: vigil_script::CountingAlloc<std::alloc::System> =
///     vigil_script::CountingAlloc::new(std::alloc::System);
/// ```
pub struct CountingAlloc<A>(A);

impl<A> CountingAlloc<A> {
    /// Counts the allocations of `inner`.
    pub const fn new(inner: A) -> CountingAlloc<A> {
        CountingAlloc(inner)
    }
}

// SAFETY: every call is forwarded unchanged to `A`, which upholds `GlobalAlloc`'s contract;
// the bookkeeping touches only a const-initialised thread-local `Cell`, which neither
// allocates nor unwinds.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAlloc<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract, which we pass on.
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `self`, hence by `self.0`, with `layout`.
        unsafe { self.0.dealloc(ptr, layout) };
        add(-(layout.size() as isize));
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and the caller upholds `realloc`'s contract.
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            add(new_size as isize - layout.size() as isize);
        }
        p
    }
}
