//! After the first run at a batch size, `ctr_edge_session_run` does not allocate (the runtime's
//! promise, kept through the C layer: inputs are converted on the stack and the last-error
//! slot is only freed on success).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::*;
use ctr_edge::*;

/// Counts this thread's allocations.
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counter is a thread-local `Cell` with a const
// initializer, so touching it never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn repeated_runs_do_not_allocate() {
    let model = open_model();
    let session = new_session(model);
    let rows = example_rows();
    let x = c("X");
    let mut out = [0.0f32; 64];
    for n in [1, 32, 64] {
        let shape = [n, FEATURES];
        let input = [x_input(&x, &shape, &rows[..n * FEATURES])];
        let first = ALLOCATIONS.with(Cell::get);
        let (status, _) = run(session, &input, &mut out);
        assert_eq!(status, ctr_edge_status::Ok, "{}", last_error());
        let before = ALLOCATIONS.with(Cell::get);
        // The counter sees the planning of a new batch size (so zero below means something).
        assert!(
            before > first,
            "the first run at batch {n} plans and allocates"
        );
        for _ in 0..3 {
            let (status, written) = run(session, &input, &mut out);
            assert_eq!((status, written), (ctr_edge_status::Ok, n));
        }
        let after = ALLOCATIONS.with(Cell::get);
        assert_eq!(
            after - before,
            0,
            "allocations in repeated runs at batch {n}"
        );
    }
    // SAFETY: live handles, freed once.
    unsafe {
        ctr_edge_session_free(session);
        ctr_edge_model_free(model);
    }
}
