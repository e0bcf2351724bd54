//! After the first run at a batch size, `ctr_edge_session_run` does not allocate (the runtime's
//! promise, kept through the C layer: inputs are converted on the stack and the last-error
//! slot is only freed on success).

#[path = "../../tests/support/alloc_counter.rs"]
mod alloc_counter;
mod common;

use alloc_counter::allocations_in;

use common::*;
use ctr_edge::*;

#[test]
fn repeated_runs_do_not_allocate() {
    let opened = Opened::new();
    let session = opened.session;
    let mut out = [0.0f32; 64];
    for n in [1, 32, 64] {
        let batch = XBatch::new(n);
        let input = [batch.input()];
        let planning = allocations_in(|| {
            let (status, _) = run(session, &input, &mut out);
            assert_eq!(status, ctr_edge_status::Ok, "{}", last_error());
        });
        // The counter sees the planning of a new batch size (so zero below means something).
        assert!(
            planning > 0,
            "the first run at batch {n} plans and allocates"
        );
        let repeated = allocations_in(|| {
            for _ in 0..3 {
                let (status, written) = run(session, &input, &mut out);
                assert_eq!((status, written), (ctr_edge_status::Ok, n));
            }
        });
        assert_eq!(repeated, 0, "allocations in repeated runs at batch {n}");
    }
}
