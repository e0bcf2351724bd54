//! Containment of a panic in code we do not own (tract): [`contained`] runs a closure and turns
//! a panic inside it into the panic's message, printed nowhere (the caller reports it as a
//! typed error). Panics elsewhere in the process are reported by the hook that was installed
//! before, as usual.
//!
//! tract panics on some malformed models (an index out of its table during constant folding,
//! an overflowing shape product, a stride of 0); the exporter and the benchmark harness call
//! tract only through [`contained`], so such a model ends with an error naming tract, never
//! with a dead process. (An allocation that fails still aborts: the callers keep tract away
//! from models the runtime's resource limits refuse.)

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Whether this thread is inside [`contained`] (its panics are kept, not printed).
    static INSIDE: Cell<bool> = const { Cell::new(false) };
    /// The message and location of the last panic kept on this thread.
    static KEPT: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Installs, once, a panic hook that keeps the message of a panic inside [`contained`] and
/// hands every other panic to the hook installed before it.
fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if INSIDE.with(Cell::get) {
                let message = payload_message(info.payload());
                let text = match info.location() {
                    Some(at) => format!("{message} (at {}:{})", at.file(), at.line()),
                    None => message,
                };
                KEPT.with(|k| *k.borrow_mut() = Some(text));
            } else {
                previous(info);
            }
        }));
    });
}

fn payload_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Runs `f`; a panic inside it becomes `Err(message)` (with the source location tract
/// panicked at), not printed. Nested calls are fine.
pub fn contained<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    let was_inside = INSIDE.with(|i| i.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    INSIDE.with(|i| i.set(was_inside));
    result.map_err(|payload| {
        KEPT.with(|k| k.borrow_mut().take())
            .unwrap_or_else(|| payload_message(payload.as_ref()))
    })
}

#[cfg(test)]
mod tests {
    use super::contained;

    #[test]
    fn a_panic_becomes_its_message_and_a_value_passes_through() {
        assert_eq!(contained(|| 7), Ok(7));
        let v: Vec<u8> = Vec::new();
        let index = v.len() + 3;
        let err = contained(|| v[index]).unwrap_err();
        assert!(err.contains("index out of bounds"), "{err}");
        assert!(err.contains("contain.rs"), "{err}");
        // Nested: the inner panic is kept; the outer call still returns normally.
        let outer = contained(|| contained(|| panic!("inner {}", 1)));
        let inner = outer.expect("the outer call returns").unwrap_err();
        assert!(inner.starts_with("inner 1 (at "), "{inner}");
        assert!(inner.contains("contain.rs"), "{inner}");
    }
}
