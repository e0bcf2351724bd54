//! What std supplies to the `std` build, for the build without it: the global allocator (the C
//! library's `malloc` family) and the panic handler (message to stderr, then `abort()`).
//!
//! Compiled only without the `std` feature, and never in this crate's own test harness (which
//! links std). The no-`std` build must use `panic = "abort"` (the `release-small` profile of
//! `targets/release-small.toml` does): there is no unwinding without std.
//!
//! Unwinding leftovers. The precompiled `core` and `alloc` of the `*-linux-*` targets are
//! built with `panic = "unwind"`, so a few of their functions keep landing pads even after LTO
//! (`alloc::fmt::format` does): those name the personality routine `rust_eh_personality`,
//! which only std defines, and call `_Unwind_Resume`, which only the C toolchain's unwinder
//! (`libgcc_s`, `libunwind`) defines (rust-lang/rust#106864). Nothing unwinds in this build, so
//! neither is ever called, but the shared library would not load (`BIND_NOW`) with them
//! undefined. On ELF targets this module defines both as hidden aliases of a function that
//! aborts: `rust_eh_personality` weak (a real one elsewhere in a static link wins), and
//! `__wrap__Unwind_Resume`, which the `cdylib` alone uses: build.rs links it with
//! `--wrap=_Unwind_Resume`. A static library leaves `_Unwind_Resume` to the application's
//! link, which has an unwinder (gcc links `libgcc_s`, the NDK's clang `libunwind`), so C++ code
//! linked beside it keeps the real one.

#[cfg(all(not(feature = "std"), not(test)))]
mod imp {
    use core::alloc::{GlobalAlloc, Layout};
    use core::ffi::c_void;
    use core::fmt::Write;

    /// The alignment `malloc` guarantees for every block (as std's Unix allocator assumes):
    /// 16 bytes on 64-bit targets, 8 on 32-bit ones.
    #[cfg(target_pointer_width = "64")]
    const MIN_ALIGN: usize = 16;
    #[cfg(not(target_pointer_width = "64"))]
    const MIN_ALIGN: usize = 8;

    /// The C library's allocator, honouring alignments above what `malloc` guarantees with
    /// `posix_memalign` (the same rules as std's `System` allocator on Unix).
    struct Malloc;

    #[global_allocator]
    static ALLOCATOR: Malloc = Malloc;

    /// Whether `malloc`/`calloc`/`realloc` alone give a block of `size` bytes aligned to
    /// `align`. (`align > size`: a small block may come from a size class of lesser alignment.)
    fn malloc_aligns(align: usize, size: usize) -> bool {
        align <= MIN_ALIGN && align <= size
    }

    /// A block of `layout` from `posix_memalign` (NULL on failure).
    ///
    /// # Safety
    /// `layout.size() > 0`.
    unsafe fn aligned_malloc(layout: Layout) -> *mut u8 {
        // posix_memalign wants a power of two that is a multiple of `sizeof(void *)`.
        let align = layout.align().max(size_of::<usize>());
        let mut out: *mut c_void = core::ptr::null_mut();
        // SAFETY: `out` is valid for a write; `align` is a power of two multiple of the pointer
        // size.
        let ret = unsafe { libc::posix_memalign(&mut out, align, layout.size()) };
        if ret == 0 {
            out.cast()
        } else {
            core::ptr::null_mut()
        }
    }

    // SAFETY: every block comes from malloc/calloc/realloc/posix_memalign, aligned as the
    // layout asks (checked above), and is released with `free` (valid for all of them).
    unsafe impl GlobalAlloc for Malloc {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if malloc_aligns(layout.align(), layout.size()) {
                // SAFETY: plain C call; NULL on failure is what `alloc` returns too.
                unsafe { libc::malloc(layout.size()) }.cast()
            } else {
                // SAFETY: `GlobalAlloc` callers pass a non-zero size.
                unsafe { aligned_malloc(layout) }
            }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            if malloc_aligns(layout.align(), layout.size()) {
                // SAFETY: plain C call.
                unsafe { libc::calloc(layout.size(), 1) }.cast()
            } else {
                // SAFETY: non-zero size by the `GlobalAlloc` contract.
                let p = unsafe { aligned_malloc(layout) };
                if !p.is_null() {
                    // SAFETY: a fresh block of `layout.size()` bytes.
                    unsafe { core::ptr::write_bytes(p, 0, layout.size()) };
                }
                p
            }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
            // SAFETY: `ptr` came from this allocator, so from the malloc family.
            unsafe { libc::free(ptr.cast()) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if malloc_aligns(layout.align(), new_size) {
                // SAFETY: `ptr` came from the malloc family; realloc keeps the contents.
                unsafe { libc::realloc(ptr.cast(), new_size) }.cast()
            } else {
                // SAFETY: the `GlobalAlloc::realloc` contract makes this a valid layout.
                let new_layout =
                    unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
                // SAFETY: non-zero size by contract.
                let new = unsafe { self.alloc(new_layout) };
                if !new.is_null() {
                    // SAFETY: both blocks are valid for the smaller size and distinct.
                    unsafe {
                        core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                new
            }
        }
    }

    /// Writes to stderr (fd 2) without allocating; errors are ignored (nothing to do then).
    struct Stderr;

    impl Write for Stderr {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let mut rest = s.as_bytes();
            while !rest.is_empty() {
                // SAFETY: `rest` is valid for `rest.len()` bytes.
                let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
                if n <= 0 {
                    break;
                }
                rest = &rest[n as usize..];
            }
            Ok(())
        }
    }

    /// The target of the unwinding leftovers (see the module documentation): never called.
    extern "C" fn unwinding_abort() -> ! {
        // SAFETY: `abort` has no preconditions.
        unsafe { libc::abort() }
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    core::arch::global_asm!(
        ".weak rust_eh_personality",
        ".hidden rust_eh_personality",
        ".type rust_eh_personality, %function",
        ".set rust_eh_personality, {abort}",
        ".globl __wrap__Unwind_Resume",
        ".hidden __wrap__Unwind_Resume",
        ".type __wrap__Unwind_Resume, %function",
        ".set __wrap__Unwind_Resume, {abort}",
        abort = sym unwinding_abort,
    );

    /// A panic is a bug of the library: say where on stderr and abort the process (there is no
    /// unwinding to catch without std).
    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        let _ = writeln!(
            Stderr,
            "ctr_edge: internal error (a bug, please report it), aborting: {info}"
        );
        // SAFETY: `abort` has no preconditions.
        unsafe { libc::abort() }
    }
}
