//! The C library calls of both builds: read-only file mappings (`open`, `fstat`, `mmap`) and
//! OS error messages worded as std words them (`"No such file or directory (os error 2)"`).

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use core::ffi::{c_char, c_int, c_void, CStr};

/// The calling thread's `errno`.
pub(crate) fn errno() -> c_int {
    // SAFETY: the C library's per-thread errno location is always valid for reads.
    unsafe {
        #[cfg(target_os = "android")]
        let location = libc::__errno();
        #[cfg(target_vendor = "apple")]
        let location = libc::__error();
        #[cfg(not(any(target_os = "android", target_vendor = "apple")))]
        let location = libc::__errno_location();
        *location
    }
}

/// `"<strerror text> (os error <code>)"`, as std's `io::Error` displays an OS error.
pub(crate) fn os_error_message(code: c_int) -> String {
    let mut buf = [0 as c_char; 128];
    // SAFETY: `buf` is valid for `buf.len()` bytes; the POSIX `strerror_r` (the libc crate
    // binds glibc's `__xpg_strerror_r`) NUL-terminates what it writes on success.
    let ok = unsafe { libc::strerror_r(code, buf.as_mut_ptr(), buf.len()) } == 0;
    let text = if ok {
        // SAFETY: NUL-terminated within `buf` on success.
        unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy()
    } else {
        "Unknown error".into()
    };
    format!("{text} (os error {code})")
}

/// A failed file operation: the path (lossy UTF-8, or `fd N` for a file given by descriptor)
/// and the reason.
#[derive(Debug)]
pub(crate) struct IoError {
    pub path: String,
    pub reason: String,
}

impl IoError {
    fn new(path: &str, reason: String) -> IoError {
        IoError {
            path: path.to_owned(),
            reason,
        }
    }

    fn os(path: &str, code: c_int) -> IoError {
        IoError::new(path, os_error_message(code))
    }
}

impl From<IoError> for ctr_edge_runtime::Error {
    fn from(e: IoError) -> Self {
        ctr_edge_runtime::Error::Io {
            path: e.path,
            reason: e.reason,
        }
    }
}

/// Closes a file descriptor when dropped.
struct Fd(c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: an open descriptor this value owns. (A failed close of a read-only file
        // loses nothing.)
        unsafe { libc::close(self.0) };
    }
}

/// The size of the regular file open as `fd` (`name` names it in messages): an I/O error
/// for a descriptor that is not open ("Bad file descriptor"), a folder ("Is a directory",
/// what `read` says) or anything else that is not a regular file.
pub(crate) fn regular_file_size(fd: c_int, name: &str) -> Result<u64, IoError> {
    // SAFETY: `stat` is plain old data; all zeroes is a valid value for `fstat` to
    // overwrite.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: a valid `stat` to write; `fstat` checks the descriptor (EBADF if not open).
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(IoError::os(name, errno()));
    }
    let kind = bits(st.st_mode) & bits(libc::S_IFMT);
    if kind == bits(libc::S_IFDIR) {
        // What `read` on a directory says (std's `fs::read` reported this).
        return Err(IoError::os(name, libc::EISDIR));
    }
    if kind != bits(libc::S_IFREG) {
        return Err(IoError::new(name, "not a regular file".to_owned()));
    }
    u64::try_from(st.st_size)
        .map_err(|_| IoError::new(name, format!("negative size {}", st.st_size)))
}

/// A regular file, or a byte range of one, mapped read-only and private (`MAP_PRIVATE`): the
/// bytes are the file's pages, not a copy. Unmapped when dropped. The file must not be
/// truncated or rewritten in place while mapped (the exporter replaces artifacts atomically).
#[derive(Debug)]
pub(crate) struct FileMap {
    /// Start of the mapping (page-aligned); dangling (never dereferenced) when `map_len` is 0.
    map: *const u8,
    map_len: usize,
    /// Where the bytes start in the mapping: a range is mapped from the page boundary below
    /// its start (`mmap` takes page-aligned offsets only).
    start: usize,
}

// SAFETY: the mapping is read-only and owned by this value alone; reading it from several
// threads is as safe as reading a `&[u8]`.
unsafe impl Send for FileMap {}
// SAFETY: as above: shared access is read-only.
unsafe impl Sync for FileMap {}

impl FileMap {
    /// Maps the regular file at `path`. An empty file gives an empty map (nothing mapped).
    pub(crate) fn open(path: &CStr) -> Result<FileMap, IoError> {
        let name = path.to_string_lossy();
        let fd = loop {
            // O_NONBLOCK: a FIFO without a writer would block a plain open forever (it is then
            // refused below as not a regular file); reads of regular files ignore the flag.
            let flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK;
            // SAFETY: `path` is NUL-terminated.
            let fd = unsafe { libc::open(path.as_ptr(), flags) };
            if fd >= 0 {
                break Fd(fd);
            }
            let code = errno();
            if code != libc::EINTR {
                return Err(IoError::os(&name, code));
            }
        };
        let size = regular_file_size(fd.0, &name)?;
        FileMap::map_range(fd.0, &name, 0..size)
    }

    /// Maps `range` of the file open as `fd` (`name` names it in messages), which the caller
    /// checked lies inside the file (so that no mapped page is past its end). The descriptor
    /// is not kept: the mapping outlives its close. An empty range maps nothing.
    pub(crate) fn map_range(
        fd: c_int,
        name: &str,
        range: core::ops::Range<u64>,
    ) -> Result<FileMap, IoError> {
        let len = range.end.saturating_sub(range.start);
        if len == 0 {
            return Ok(FileMap {
                map: core::ptr::NonNull::dangling().as_ptr(),
                map_len: 0,
                start: 0,
            });
        }
        // SAFETY: `sysconf` has no preconditions.
        let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
            p if p > 0 => p as u64,
            _ => 4096,
        };
        let start = range.start % page;
        let map_offset = range.start - start;
        let too_large = || {
            IoError::new(
                name,
                format!(
                    "{len} bytes at offset {} are too many to map here",
                    range.start
                ),
            )
        };
        let map_len = len
            .checked_add(start)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| isize::try_from(n).is_ok())
            .ok_or_else(too_large)?;
        // 32-bit Android's `off_t` has 32 bits: a range past 2 GiB is refused there.
        let offset = libc::off_t::try_from(map_offset).map_err(|_| too_large())?;
        // SAFETY: a fresh read-only private mapping of an open descriptor at a page-aligned
        // offset; the kernel picks the address.
        let ptr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                map_len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                fd,
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(IoError::os(name, errno()));
        }
        Ok(FileMap {
            map: ptr.cast_const().cast(),
            map_len,
            start: start as usize,
        })
    }

    /// The mapped bytes (the file's, or the range's).
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `map_len` readable bytes at `map` while the mapping lives, of which the
        // bytes from `start` (dangling and 0 bytes for an empty map); the file is not
        // rewritten by contract.
        unsafe { core::slice::from_raw_parts(self.map.add(self.start), self.map_len - self.start) }
    }

    /// The whole mapping, from its page-aligned start (for [`release_pages`]).
    pub(crate) fn pages(&self) -> &[u8] {
        // SAFETY: as in `bytes`.
        unsafe { core::slice::from_raw_parts(self.map, self.map_len) }
    }
}

/// Unmaps the pages of the mapping `bytes` (the [`FileMap::pages`] of a [`FileMap`]) that the
/// open touched (the weights check's sampled blocks, or every page with a full check): they
/// stay in the page cache and are mapped again on the next read, but no longer count in the
/// process's resident size after open (with large folios each sampled 4 KiB block maps 2 MiB).
///
/// # Safety
/// `bytes` is the [`FileMap::pages`] of a live [`FileMap`] (read-only, private, page-aligned
/// start).
pub(crate) unsafe fn release_pages(bytes: &[u8]) {
    if !bytes.is_empty() {
        // SAFETY: by contract a read-only private file mapping: its pages hold the file's
        // bytes unmodified, so dropping them loses nothing; the addresses stay mapped and the
        // next access reads the (unchanged, by contract) file again.
        unsafe {
            libc::madvise(
                bytes.as_ptr().cast_mut().cast::<c_void>(),
                bytes.len(),
                libc::MADV_DONTNEED,
            )
        };
    }
}

impl AsRef<[u8]> for FileMap {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        if self.map_len > 0 {
            // SAFETY: the mapping made in `map_range`, unmapped once; nothing borrows it any
            // more (borrows of `bytes` end with `&self`).
            unsafe { libc::munmap(self.map.cast_mut().cast::<c_void>(), self.map_len) };
        }
    }
}

/// `st_mode` and the `S_IF*` constants as `u32` (their widths differ between targets: 16 bits
/// on 32-bit Android).
fn bits(mode: impl Into<u32>) -> u32 {
    mode.into()
}

/// `path`'s folder joined with `name` (a plain file name): `dir/model.onnx` and
/// `model.weights` give `dir/model.weights`; a path without `/` gives `name` (relative to the
/// working directory, as `Path::parent` then `join` does).
pub(crate) fn sibling(path: &CStr, name: &str) -> Option<alloc::ffi::CString> {
    let bytes = path.to_bytes();
    let dir = bytes
        .iter()
        .rposition(|&b| b == b'/')
        .map_or(&[][..], |i| &bytes[..=i]);
    let mut joined = alloc::vec::Vec::with_capacity(dir.len() + name.len() + 1);
    joined.extend_from_slice(dir);
    joined.extend_from_slice(name.as_bytes());
    alloc::ffi::CString::new(joined).ok()
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    use crate::tiny_model::mappings_of;
    use crate::tiny_model::temp_dir;
    use alloc::string::ToString;
    use alloc::vec::Vec;
    use std::io::Write;

    /// A file of `bytes` in a fresh folder under the system temporary folder.
    fn temp_file(tag: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = temp_dir(&format!("sys-{tag}")).join("data.bin");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
        path
    }

    fn c_path(p: &std::path::Path) -> alloc::ffi::CString {
        alloc::ffi::CString::new(p.to_str().unwrap()).unwrap()
    }

    #[test]
    fn maps_the_file_in_place_and_unmaps_on_drop() {
        let content: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let path = temp_file("map", &content);
        let map = FileMap::open(&c_path(&path)).unwrap();
        assert_eq!(map.bytes(), &content[..]);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let start = map.bytes().as_ptr() as usize;
            let ranges = mappings_of(&path);
            assert!(
                ranges
                    .iter()
                    .any(|&(a, b)| a <= start && start + content.len() <= b),
                "{start:#x} is in no mapping of {} ({ranges:x?})",
                path.display()
            );
            drop(map);
            assert!(mappings_of(&path).is_empty(), "still mapped after drop");
        }
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn empty_file_maps_to_no_bytes() {
        let path = temp_file("empty", &[]);
        let map = FileMap::open(&c_path(&path)).unwrap();
        assert!(map.bytes().is_empty());
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn errors_read_as_std_words_them() {
        // The reference: std's own message for the same failure.
        let missing = std::path::Path::new("/nonexistent/ctr-edge/data.bin");
        let e = FileMap::open(&c_path(missing)).unwrap_err();
        assert_eq!(e.path, "/nonexistent/ctr-edge/data.bin");
        assert_eq!(
            e.reason,
            std::fs::File::open(missing).unwrap_err().to_string()
        );

        let dir = std::env::temp_dir();
        let e = FileMap::open(&c_path(&dir)).unwrap_err();
        assert_eq!(e.reason, std::fs::read(&dir).unwrap_err().to_string());

        assert_eq!(
            os_error_message(libc::EACCES),
            std::io::Error::from_raw_os_error(libc::EACCES).to_string()
        );
    }

    #[test]
    fn sibling_joins_like_path_parent_join() {
        for (path, expected) in [
            ("dir/model.onnx", "dir/model.weights"),
            ("/a/b/model.onnx", "/a/b/model.weights"),
            ("/model.onnx", "/model.weights"),
            ("model.onnx", "model.weights"),
        ] {
            let reference = std::path::Path::new(path)
                .parent()
                .unwrap()
                .join("model.weights");
            assert_eq!(reference.to_str().unwrap(), expected);
            let got = sibling(&c_path(std::path::Path::new(path)), "model.weights").unwrap();
            assert_eq!(got.to_str().unwrap(), expected);
        }
    }
}
