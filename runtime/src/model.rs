//! The immutable, shareable [`Model`]: the validated graph, constants viewing the weights
//! buffer in place, and the kernel table.

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::ops::Range;

use crate::error::{Error, Result};
use crate::graph::{self, LoadedGraph};
use crate::kernels::{KernelVariant, Kernels};
use crate::onnx::OnnxModel;
use crate::options::{Limits, OpenOptions};
use crate::session::Session;
use crate::tensor::DType;

/// Description of a model input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoInfo {
    /// Value name in the graph.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape; `None` marks a symbolic dimension (the batch).
    pub shape: Vec<Option<usize>>,
}

impl IoInfo {
    /// `f32 [N, 8]`-style description for messages (`N` for symbolic dimensions).
    pub fn describe(&self) -> String {
        let dims: Vec<String> = self
            .shape
            .iter()
            .map(|d| match d {
                Some(v) => v.to_string(),
                None => "N".to_string(),
            })
            .collect();
        alloc::format!("{} [{}]", self.dtype.name(), dims.join(", "))
    }
}

/// The bytes of the weights file: borrowed from the caller, or owned by the model (any owner of
/// bytes: a file mapping of [`Model::open`] or of the C ABI, a `Vec`...).
enum Backing<'w> {
    Borrowed(&'w [u8]),
    Owned(Box<dyn AsRef<[u8]> + Send + Sync>),
}

impl Backing<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Borrowed(b) => b,
            Backing::Owned(owner) => (**owner).as_ref(),
        }
    }
}

/// A loaded model. Immutable and `Send + Sync`: share it between threads, give each thread
/// its own [`Session`].
pub struct Model<'w> {
    backing: Backing<'w>,
    pub(crate) graph: LoadedGraph,
    inputs: Vec<IoInfo>,
    outputs: Vec<IoInfo>,
    metadata: Vec<(String, String)>,
    pub(crate) kernels: &'static Kernels,
    /// The limits every plan of this model is held to (sessions plan new batch sizes).
    pub(crate) limits: Limits,
}

impl core::fmt::Debug for Model<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Model")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .field("nodes", &self.graph.nodes.len())
            .field("weights_bytes", &self.weights().len())
            .finish()
    }
}

/// Batch size used for the load-time validation plan of symbolic dimensions. (Not 1: some
/// exported models squeeze a batch of one away and only work for larger batches.)
const VALIDATION_BATCH: usize = 2;

impl<'w> Model<'w> {
    /// Load from the ONNX bytes and the bytes of its external weights file, which the model
    /// borrows: weights are viewed in place. Models without external data take `&[]`.
    pub fn from_bytes(onnx: &[u8], weights: &'w [u8]) -> Result<Model<'w>> {
        Self::from_bytes_with(onnx, weights, &OpenOptions::default())
    }

    /// [`Model::from_bytes`] with `options` (limits, weights check).
    pub fn from_bytes_with(
        onnx: &[u8],
        weights: &'w [u8],
        options: &OpenOptions,
    ) -> Result<Model<'w>> {
        Self::build(onnx, Backing::Borrowed(weights), options)
    }

    fn build(onnx: &[u8], backing: Backing<'w>, options: &OpenOptions) -> Result<Model<'w>> {
        Self::build_decoded(&crate::onnx::decode_model(onnx)?, backing, options)
    }

    /// The one loading path: every constructor decodes the ONNX bytes once and ends here.
    fn build_decoded(
        decoded: &OnnxModel<'_>,
        backing: Backing<'w>,
        options: &OpenOptions,
    ) -> Result<Model<'w>> {
        let weights = backing.bytes();
        crate::artifact::verify_weights(&decoded.metadata, weights, options.verify)?;
        let graph = graph::load_graph(decoded, weights, &options.limits)?;
        let kernels = crate::kernels::best();
        // Validate shapes and attributes once now, so a broken model fails at load.
        let shapes: Vec<Vec<usize>> = graph
            .inputs
            .iter()
            .map(|(_, i)| {
                i.shape
                    .iter()
                    .map(|d| d.unwrap_or(VALIDATION_BATCH))
                    .collect()
            })
            .collect();
        graph::plan::plan(&graph, weights, kernels, &shapes, &options.limits)?;
        let inputs = graph.inputs.iter().map(|(_, i)| i.clone()).collect();
        let outputs = graph.outputs.iter().map(|(_, i)| i.clone()).collect();
        let metadata = decoded
            .metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(Model {
            backing,
            graph,
            inputs,
            outputs,
            metadata,
            kernels,
            limits: options.limits,
        })
    }

    /// The weights buffer (mapped file or borrowed bytes).
    pub fn weights(&self) -> &[u8] {
        self.backing.bytes()
    }

    /// Model inputs.
    pub fn inputs(&self) -> &[IoInfo] {
        &self.inputs
    }

    /// Model outputs.
    pub fn outputs(&self) -> &[IoInfo] {
        &self.outputs
    }

    /// `metadata_props` of the file.
    pub fn metadata(&self) -> &[(String, String)] {
        &self.metadata
    }

    /// The kernel family this model's sessions run.
    pub fn kernel_variant(&self) -> KernelVariant {
        self.kernels.variant
    }

    /// Number of nodes in the graph (after folding `Constant` nodes).
    pub fn node_count(&self) -> usize {
        self.graph.nodes.len()
    }

    /// The f32 values of an initializer, viewed in place when it lives in the weights file
    /// (used by tests to check zero copy). `None` when absent or not f32.
    pub fn initializer_f32(&self, name: &str) -> Option<&[f32]> {
        let id = self.graph.names.iter().position(|n| n == name)?;
        let c = self.graph.consts.get(id)?.as_ref()?;
        match graph::plan::const_data(c, self.weights(), name).ok()? {
            graph::value::Data::F32(v) => Some(v),
            _ => None,
        }
    }

    /// A new session with its own scratch memory.
    pub fn session(&self) -> Session<'_, 'w> {
        Session::new(self)
    }
}

impl Model<'static> {
    /// Load from the ONNX bytes and an owner of the weights file's bytes, which the model keeps
    /// (and drops with itself): weights are viewed in place in `weights.as_ref()`, as with
    /// [`Model::from_bytes`], without a borrow to outlive. For weights mapped or allocated by
    /// the caller. `as_ref` must return the same bytes on every call, as a `Vec`, a
    /// `Box<[u8]>` or a file mapping does.
    pub fn from_owned(
        onnx: &[u8],
        weights: impl AsRef<[u8]> + Send + Sync + 'static,
    ) -> Result<Model<'static>> {
        Self::from_owned_with(onnx, weights, &OpenOptions::default())
    }

    /// [`Model::from_owned`] with `options` (limits, weights check).
    pub fn from_owned_with(
        onnx: &[u8],
        weights: impl AsRef<[u8]> + Send + Sync + 'static,
        options: &OpenOptions,
    ) -> Result<Model<'static>> {
        Self::build(onnx, Backing::Owned(Box::new(weights)), options)
    }

    /// Load from the ONNX bytes (decoded once, read during the call only) and the weights file
    /// their external data names, which `map_weights` supplies: it is called at most once,
    /// with that file's `location` (checked to be a plain file name: no directory, no `..`,
    /// no NUL; [`crate::onnx::check_location`]), and only when some tensor is external. The
    /// model keeps what it returns, as [`Model::from_owned`] does (an empty file is as no
    /// weights). The path openers are this plus a file mapping: [`Model::open`] with
    /// `memmap2`, the C ABI with the C library's `mmap`.
    pub fn open_with<W>(
        onnx: &[u8],
        map_weights: impl FnOnce(&str) -> Result<W>,
        options: &OpenOptions,
    ) -> Result<Model<'static>>
    where
        W: AsRef<[u8]> + Send + Sync + 'static,
    {
        let decoded = crate::onnx::decode_model(onnx)?;
        let backing = match crate::onnx::external_location(&decoded)? {
            None => Backing::Borrowed(&[]),
            Some(location) => {
                let weights = map_weights(location)?;
                if weights.as_ref().is_empty() {
                    Backing::Borrowed(&[])
                } else {
                    Backing::Owned(Box::new(weights))
                }
            }
        };
        Self::build_decoded(&decoded, backing, options)
    }

    /// Load an artifact whose two files are byte ranges of one file of `file_len` bytes (an
    /// app's assets inside its APK; `file` names it in messages): `onnx` holds `model.onnx`,
    /// `weights` its external data (empty for a model without). The ranges are held to
    /// [`crate::artifact::check_file_ranges`] first; then `map` supplies the bytes of a range
    /// (called with `onnx`, whose bytes are read during the call only, then with `weights`
    /// when some tensor is external, whose bytes the model keeps as [`Model::open_with`] does),
    /// and the weights must pass [`crate::artifact::check_weights_alignment`]. The location the
    /// external data names is not used: the caller's range is the weights file. The range
    /// openers are this plus a mapping of a range: `Model::open_file_ranges` with `memmap2`,
    /// the C ABI's `ctr_edge_model_open_fd` with the C library's `mmap`.
    pub fn open_ranges_with<W>(
        file: &str,
        file_len: u64,
        onnx: Range<u64>,
        weights: Range<u64>,
        mut map: impl FnMut(Range<u64>) -> Result<W>,
        options: &OpenOptions,
    ) -> Result<Model<'static>>
    where
        W: AsRef<[u8]> + Send + Sync + 'static,
    {
        crate::artifact::check_file_ranges(file, file_len, &onnx, &weights)?;
        let onnx_bytes = map(onnx)?;
        Self::open_with(
            onnx_bytes.as_ref(),
            |location| {
                if weights.is_empty() {
                    return Err(Error::FileRange {
                        file: file.to_string(),
                        range: "weights",
                        offset: weights.start,
                        len: 0,
                        reason: alloc::format!(
                            "is empty, but the model keeps tensors in external data (location \
                             {location:?})"
                        ),
                    });
                }
                let bytes = map(weights.clone())?;
                crate::artifact::check_weights_alignment(file, &weights, bytes.as_ref())?;
                Ok(bytes)
            },
            options,
        )
    }
}

#[cfg(feature = "std")]
impl Model<'static> {
    /// Open `model.onnx` and memory-map the weights file its external data names (relative to
    /// the model's folder): [`Model::open_with`] over a `memmap2` mapping.
    pub fn open(onnx_path: impl AsRef<std::path::Path>) -> Result<Model<'static>> {
        Self::open_options(onnx_path, &OpenOptions::default())
    }

    /// [`Model::open`] with `options` (limits, weights check).
    pub fn open_options(
        onnx_path: impl AsRef<std::path::Path>,
        options: &OpenOptions,
    ) -> Result<Model<'static>> {
        let path = onnx_path.as_ref();
        let onnx = {
            use std::io::Read;
            let mut file = open_regular(path)?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)
                .map_err(|e| io_error(path, e))?;
            bytes
        };
        let mut mapped = None;
        let model = Self::open_with(
            &onnx,
            |location| {
                let dir = path.parent().unwrap_or(std::path::Path::new("."));
                let map = MappedFile::open(&dir.join(location))?;
                mapped = Some(map.clone());
                Ok(map)
            },
            options,
        )?;
        if let Some(map) = mapped {
            map.release_pages();
        }
        Ok(model)
    }
}

#[cfg(feature = "std")]
impl Model<'static> {
    /// Open an artifact that sits inside `file` as two byte ranges, such as two assets stored
    /// uncompressed in an Android APK (each `AssetFileDescriptor` gives the APK's descriptor,
    /// a start offset and a length): `onnx` holds `model.onnx`, `weights` its `model.weights`
    /// (empty for a model without external data). [`Model::open_ranges_with`] over `memmap2`
    /// mappings of the ranges (from the page boundary below each start; the ONNX range is
    /// unmapped after decoding, the weights range stays mapped, owned by the model).
    ///
    /// Checks as [`Model::open`]: `file` must be a regular file, the weights must belong to the
    /// model (`options.verify`), the model must fit `options.limits`; and the ranges must fit
    /// the file and each other, the weights range starting at a 64-byte-aligned offset
    /// ([`crate::artifact::check_file_ranges`]; [`Error::FileRange`] otherwise).
    ///
    /// `file` is only borrowed: the model keeps its own mapping, so the caller may close the
    /// file once this returns. As with [`Model::open`], the bytes of the ranges must not be
    /// modified or truncated while the model lives (an installed APK is not).
    pub fn open_file_ranges(
        file: &std::fs::File,
        onnx: Range<u64>,
        weights: Range<u64>,
    ) -> Result<Model<'static>> {
        Self::open_file_ranges_with(file, onnx, weights, &OpenOptions::default())
    }

    /// [`Model::open_file_ranges`] with `options` (limits, weights check).
    pub fn open_file_ranges_with(
        file: &std::fs::File,
        onnx: Range<u64>,
        weights: Range<u64>,
        options: &OpenOptions,
    ) -> Result<Model<'static>> {
        let name = file_name(file);
        let path = std::path::Path::new(&name);
        let meta = file.metadata().map_err(|e| io_error(path, e))?;
        check_regular(&meta, path)?;
        let weights_range = weights.clone();
        let mut mapped = None;
        let model = Self::open_ranges_with(
            &name,
            meta.len(),
            onnx,
            weights,
            |range| {
                let is_weights = range == weights_range;
                let map = MappedFile::map_range(file, path, range)?;
                if is_weights {
                    mapped = Some(map.clone());
                }
                Ok(map)
            },
            options,
        )?;
        if let Some(map) = mapped {
            map.release_pages();
        }
        Ok(model)
    }
}

/// How messages name an open file: `fd N` on Unix, `file` elsewhere.
#[cfg(feature = "std")]
fn file_name(file: &std::fs::File) -> String {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        alloc::format!("fd {}", file.as_raw_fd())
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        "file".to_string()
    }
}

/// A read-only mapping of a whole file or of a byte range of one (`None` for no bytes, which
/// cannot be mapped), shared so that the opener keeps a handle on what the model owns.
#[cfg(feature = "std")]
#[derive(Clone)]
struct MappedFile(Option<std::sync::Arc<memmap2::Mmap>>);

#[cfg(feature = "std")]
impl MappedFile {
    fn open(path: &std::path::Path) -> Result<MappedFile> {
        let file = open_regular(path)?;
        let len = file.metadata().map_err(|e| io_error(path, e))?.len();
        if len == 0 {
            return Ok(MappedFile(None));
        }
        // SAFETY: the map is read-only and private to this model. Another process truncating
        // or rewriting the file while it is mapped would change or fault the bytes under us;
        // the exporter writes artifacts atomically (new file + rename), so a published weights
        // file is never modified in place. This is the documented contract of `Model::open`.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| io_error(path, e))?;
        Ok(MappedFile(Some(std::sync::Arc::new(map))))
    }

    /// Maps `range` of `file` (checked to lie inside it; `path` names it in messages).
    /// `memmap2` maps from the page boundary below `range.start` and views the range.
    fn map_range(
        file: &std::fs::File,
        path: &std::path::Path,
        range: Range<u64>,
    ) -> Result<MappedFile> {
        if range.is_empty() {
            return Ok(MappedFile(None));
        }
        let len = usize::try_from(range.end - range.start).map_err(|_| {
            io_error(
                path,
                std::io::Error::other(alloc::format!(
                    "a range of {} bytes is too large to map",
                    range.end - range.start
                )),
            )
        })?;
        // SAFETY: as in `open`: a read-only private mapping whose bytes the caller promises
        // not to modify or truncate while the model lives (`Model::open_file_ranges`'s
        // contract); the range lies inside the file (`check_file_ranges`), so no page of it
        // is past the end of the file.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(range.start)
                .len(len)
                .map(file)
        }
        .map_err(|e| io_error(path, e))?;
        Ok(MappedFile(Some(std::sync::Arc::new(map))))
    }

    /// Unmaps the pages the open touched (the weights check reads sampled blocks, or every
    /// byte with `Verify::Full`): they stay in the page cache and come back on the next read,
    /// but the process's resident size after open no longer counts them. With large folios
    /// (Linux 6.x on ext4) each sampled 4 KiB block mapped 2 MiB: 128 MiB of a 256 MiB file.
    fn release_pages(&self) {
        #[cfg(unix)]
        if let Some(map) = &self.0 {
            // SAFETY: the mapping is read-only and private, so its pages hold the file's bytes
            // unmodified; dropping them loses nothing and the next access maps the file's
            // (unchanged, by `Model::open`'s contract) bytes again. No reference into the
            // mapping is invalidated: the addresses stay mapped.
            let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }
}

#[cfg(feature = "std")]
impl AsRef<[u8]> for MappedFile {
    fn as_ref(&self) -> &[u8] {
        self.0.as_deref().map_or(&[], |m| &m[..])
    }
}

/// Opens `path` for reading if it is a regular file. Anything else (a FIFO, a device, a
/// folder) is an I/O error "not a regular file"; on Unix the open does not block (a FIFO
/// without a writer would block a plain open forever).
#[cfg(feature = "std")]
fn open_regular(path: &std::path::Path) -> Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc_o_nonblock());
    }
    let file = options.open(path).map_err(|e| io_error(path, e))?;
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    check_regular(&meta, path)?;
    Ok(file)
}

/// A folder is the I/O error "Is a directory", anything else but a regular file (a FIFO, a
/// device, a socket) "not a regular file".
#[cfg(feature = "std")]
fn check_regular(meta: &std::fs::Metadata, path: &std::path::Path) -> Result<()> {
    if meta.is_dir() {
        // What reading a folder says (std's `fs::read` reported this before).
        #[cfg(unix)]
        let e = std::io::Error::from_raw_os_error(21); // EISDIR on Linux, Android, macOS, BSDs
        #[cfg(not(unix))]
        let e = std::io::Error::from(std::io::ErrorKind::IsADirectory);
        return Err(io_error(path, e));
    }
    if !meta.is_file() {
        return Err(io_error(path, std::io::Error::other("not a regular file")));
    }
    Ok(())
}

/// `O_NONBLOCK` of the platform's C library (the runtime does not depend on `libc`).
#[cfg(all(feature = "std", unix))]
const fn libc_o_nonblock() -> i32 {
    if cfg!(any(target_os = "linux", target_os = "android")) {
        if cfg!(any(target_arch = "mips", target_arch = "mips64")) {
            0x80
        } else {
            0o4000
        }
    } else {
        // macOS, iOS and the BSDs.
        0x4
    }
}

#[cfg(feature = "std")]
fn io_error(path: &std::path::Path, e: std::io::Error) -> crate::error::Error {
    crate::error::Error::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

// The model is shared across threads by design.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Model<'static>>();
};
