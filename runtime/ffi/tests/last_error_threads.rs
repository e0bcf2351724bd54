//! A thread's last-error message is freed when the thread exits (the destructor of the
//! per-thread slot). Alone in its test binary: it counts the bytes live in the global
//! allocator, which other tests running at the same time would disturb.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use common::*;
use ctr_edge::*;

/// Bytes allocated and not yet freed, by every thread.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: forwards to the system allocator; the counter is an atomic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::SeqCst);
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::SeqCst);
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A thread that fails a call (leaving a message of about 60 bytes) and exits.
fn failing_thread() {
    std::thread::spawn(|| {
        let mut count = 0;
        // SAFETY: NULL model is documented as an error; `count` is valid for a write.
        let status = unsafe { ctr_edge_model_input_count(std::ptr::null(), &mut count) };
        assert_eq!(status, ctr_edge_status::NullArgument);
        assert!(last_error().contains("'model'"), "{}", last_error());
    })
    .join()
    .unwrap();
}

#[test]
fn messages_of_exited_threads_are_freed() {
    // Once first: the slot's key and std's lazily created thread bookkeeping.
    failing_thread();
    let before = LIVE.load(Ordering::SeqCst);
    for _ in 0..20 {
        failing_thread();
    }
    let after = LIVE.load(Ordering::SeqCst);
    assert_eq!(
        after - before,
        0,
        "bytes still allocated after 20 threads left a message and exited"
    );
}
