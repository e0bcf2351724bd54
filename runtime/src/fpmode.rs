//! Denormals flushed to zero for the duration of a run.
//!
//! An operand or result below f32's normal range (|x| < 2^-126) costs a microcode assist of
//! about a hundred cycles per instruction on x86: a model trained with weight decay, whose
//! unused weights decay into that range, ran 17x slower. `compress` writes such weights as
//! zero, but activations can still go denormal (products of small values), and models that
//! were not compressed keep theirs. So [`FlushDenormals`] sets, until it is dropped:
//! - x86/x86-64 (SSE): MXCSR's FTZ (results flushed, bit 15) and DAZ (operands read as zero,
//!   bit 6);
//! - aarch64: FPCR.FZ (bit 24), which flushes both operands and results of the FP and
//!   Advanced SIMD instructions;
//!
//! and then puts back the caller's exact register value (on unwind too). Other targets are
//! left as they are (32-bit ARM's NEON flushes denormals always; its scalar VFP path and
//! Cortex-M builds keep IEEE behaviour).
//!
//! Effect on results: any value that would have been denormal becomes a zero of the same
//! sign, a change below 1.2e-38 in magnitude; scores compared with tract and onnxruntime
//! (which keep denormals by default) stay within every tolerance of the tests.
//!
//! Rust and LLVM assume the default floating-point environment, so code compiled under
//! these modes may constant-fold an expression differently from how it computes it at run
//! time, in denormal cases only. Nothing in the runtime depends on denormal results for
//! control flow or memory safety (indices come from integer inputs, checked), so the change
//! can only move values below 1.2e-38; rounding mode and exception masks are never touched.

/// Flush-to-zero (and denormals-are-zero where the target has it) while alive.
pub(crate) struct FlushDenormals {
    saved: fp::Reg,
}

#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "x86", target_feature = "sse")
))]
mod fp {
    /// MXCSR.
    pub(super) type Reg = u32;
    /// MXCSR.FTZ (bit 15) and MXCSR.DAZ (bit 6).
    pub(super) const FLUSH: Reg = (1 << 15) | (1 << 6);

    pub(super) fn read() -> Reg {
        let mut csr: Reg = 0;
        // SAFETY: `stmxcsr` stores the 32-bit MXCSR into the given, writable, 4-byte location.
        unsafe {
            core::arch::asm!(
                "stmxcsr [{p}]",
                p = in(reg) &mut csr,
                options(nostack, preserves_flags)
            )
        };
        csr
    }

    pub(super) fn write(csr: Reg) {
        // SAFETY: `ldmxcsr` loads MXCSR from a readable 4-byte location. The values written
        // are the caller's own (restore) or it with FTZ/DAZ set, which change denormal
        // handling only (see the module documentation); reserved bits are never set, so the
        // instruction cannot fault.
        unsafe {
            core::arch::asm!(
                "ldmxcsr [{p}]",
                p = in(reg) &csr,
                options(nostack, preserves_flags, readonly)
            )
        };
    }
}

#[cfg(target_arch = "aarch64")]
mod fp {
    /// FPCR.
    pub(super) type Reg = u64;
    /// FPCR.FZ.
    pub(super) const FLUSH: Reg = 1 << 24;

    pub(super) fn read() -> Reg {
        let fpcr: Reg;
        // SAFETY: reading FPCR is allowed at EL0 and has no side effect.
        unsafe {
            core::arch::asm!("mrs {r}, fpcr", r = out(reg) fpcr, options(nomem, nostack, preserves_flags))
        };
        fpcr
    }

    pub(super) fn write(fpcr: Reg) {
        // SAFETY: writing FPCR is allowed at EL0; the values written are the caller's own
        // (restore) or it with FZ set, which changes denormal handling only.
        unsafe {
            core::arch::asm!("msr fpcr, {r}", r = in(reg) fpcr, options(nomem, nostack, preserves_flags))
        };
    }
}

/// Targets left in their IEEE mode: nothing to set.
#[cfg(not(any(
    target_arch = "x86_64",
    all(target_arch = "x86", target_feature = "sse"),
    target_arch = "aarch64"
)))]
mod fp {
    pub(super) type Reg = u32;
    pub(super) const FLUSH: Reg = 0;

    pub(super) fn read() -> Reg {
        0
    }

    pub(super) fn write(_: Reg) {}
}

impl FlushDenormals {
    /// Sets the flush modes; the caller's are restored on drop.
    #[inline]
    pub(crate) fn enter() -> Self {
        let saved = fp::read();
        if saved | fp::FLUSH != saved {
            fp::write(saved | fp::FLUSH);
        }
        FlushDenormals { saved }
    }
}

impl Drop for FlushDenormals {
    #[inline]
    fn drop(&mut self) {
        if fp::read() != self.saved {
            fp::write(self.saved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest positive normal f32 times 0.5: a denormal result, unless flushed.
    /// `black_box` keeps the compiler from folding the product.
    fn half_of_min_normal() -> f32 {
        core::hint::black_box(f32::MIN_POSITIVE) * core::hint::black_box(0.5f32)
    }

    #[test]
    fn flushes_inside_and_restores_after() {
        let before = half_of_min_normal();
        assert!(before.is_subnormal(), "IEEE default outside: {before:e}");
        {
            let _g = FlushDenormals::enter();
            let inside = half_of_min_normal();
            #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
            assert_eq!(inside, 0.0, "flushed inside: {inside:e}");
            // DAZ / FZ on operands: a denormal operand reads as zero.
            let d = core::hint::black_box(f32::from_bits(1));
            let sum = d + core::hint::black_box(0.0f32);
            #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
            assert_eq!(sum.to_bits(), 0, "operand read as zero: {sum:e}");
            let _ = (inside, sum);
        }
        let after = half_of_min_normal();
        assert!(after.is_subnormal(), "restored: {after:e}");
    }

    #[test]
    fn restores_the_callers_exact_mode() {
        // A caller that already flushes keeps flushing after a run.
        let outer = FlushDenormals::enter();
        {
            let _inner = FlushDenormals::enter();
        }
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        assert_eq!(half_of_min_normal(), 0.0);
        drop(outer);
        assert!(half_of_min_normal().is_subnormal());
    }
}
