//! Open options: the resource limits a model is held to and how its weights file is checked.
//!
//! Every opener has a `*_with` twin taking [`OpenOptions`]; the plain openers use
//! [`OpenOptions::default`], whose limits are safe for a phone app (a hostile or broken model
//! gets [`crate::Error::ResourceLimit`], never an allocation that kills the process).

/// Caps on what a model may make the runtime allocate or walk. Exceeding one is
/// [`crate::Error::ResourceLimit`] naming the node, the size asked for and the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Most nodes in the graph (after decoding, before folding).
    pub max_nodes: usize,
    /// Longest chain of nodes from an input or constant to an output.
    pub max_depth: usize,
    /// Most bytes of constants computed at load or plan time (folded `ConstantOfShape`,
    /// `Tile`, `Expand`, shape arithmetic...), all together.
    pub max_folded_bytes: usize,
    /// Most bytes of scratch memory one plan (one batch size) may allocate.
    pub max_scratch_bytes: usize,
}

impl Limits {
    /// The defaults: 100,000 nodes, depth 10,000, 64 MiB of folded constants and 1 GiB of
    /// scratch per plan. CTR models have hundreds of nodes and kilobytes of folded constants
    /// (the committed fixtures: under 21 KiB at batch 4096); scratch grows with the batch (the
    /// fixtures at batch 4096: 11 MiB for a Wide&Deep, 108 MiB for a DCNv2 on Criteo, 609 MiB
    /// for an xDeepFM, whose CIN is the widest; `PlanStats::buffer_bytes` gives a model's).
    pub const DEFAULT: Limits = Limits {
        max_nodes: 100_000,
        max_depth: 10_000,
        max_folded_bytes: 64 << 20,
        max_scratch_bytes: 1 << 30,
    };

    /// No caps (only checked arithmetic remains): for trusted models.
    pub const UNLIMITED: Limits = Limits {
        max_nodes: usize::MAX,
        max_depth: usize::MAX,
        max_folded_bytes: usize::MAX,
        max_scratch_bytes: usize::MAX,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// How an opener checks that the weights file belongs to the model (against the checksum the
/// exporter records in `metadata_props`; a model without one is not checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Verify {
    /// No check.
    None,
    /// The default: the file's size and a hash of sampled blocks, cheap at any size.
    #[default]
    Identity,
    /// A hash of every byte (reads the whole file once).
    Full,
}

/// Options of [`crate::Model`]'s `*_with` openers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Resource limits.
    pub limits: Limits,
    /// Weights check.
    pub verify: Verify,
}

impl OpenOptions {
    /// The defaults ([`Limits::DEFAULT`], [`Verify::Identity`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// These options with `limits`.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// These options with `verify`.
    pub fn verify(mut self, verify: Verify) -> Self {
        self.verify = verify;
        self
    }
}
