//! Writing files so that a reader never sees a half-written one: the bytes go to a temporary
//! file beside the destination, are synced, and the temporary file is renamed over the final
//! name. On any error the temporary file is removed.
//!
//! [`write_atomic`] does all of it for one file (the `.npy`/`.npz` writers, the JSON report);
//! [`TempFile`] is the piece for writers that publish several files in an order of their own
//! (the artifact: weights first, then the model that names them).

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// A temporary file beside its destination; removed on drop unless [`persist`](Self::persist)
/// renamed it into place.
#[derive(Debug)]
pub struct TempFile {
    path: Option<PathBuf>,
}

impl TempFile {
    /// Creates a fresh temporary file in the folder of `final_path`, named
    /// `.NAME.PID.N.tmp` (never an existing file), and the guard that removes it.
    pub fn beside(final_path: &Path) -> io::Result<(TempFile, File)> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let file_name = final_path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = final_path.with_file_name(format!(
            ".{}.{}.{n}.tmp",
            file_name.to_string_lossy(),
            std::process::id()
        ));
        let file = File::options().write(true).create_new(true).open(&path)?;
        Ok((TempFile { path: Some(path) }, file))
    }

    /// The temporary file's path.
    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Renames the temporary file over `final_path` (the file must be synced and closed by
    /// then). On failure the guard still removes it when dropped.
    pub fn persist(mut self, final_path: &Path) -> io::Result<()> {
        fs::rename(self.path(), final_path)?;
        self.path = None;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = fs::remove_file(path);
        }
    }
}

/// Makes renames into `dir` durable. Not every platform can open a folder for syncing; the
/// files themselves are synced before they are renamed, so a failure here is not an error.
pub fn sync_dir(dir: &Path) {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
}

/// Writes `path` atomically: `write` fills a buffered temporary file beside it, which is
/// flushed, synced and renamed into place. Any failure is an [`Error::Io`] naming `path`,
/// and leaves neither a temporary file nor a changed `path`.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> Result<()> {
    let written = (|| {
        let (tmp, file) = TempFile::beside(path)?;
        let mut w = BufWriter::new(file);
        write(&mut w)?;
        w.flush()?;
        let file = w.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        drop(file);
        tmp.persist(path)
    })();
    written.map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    sync_dir(path.parent().unwrap_or(Path::new("")));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        // One folder per test: the tests run in parallel and count leftover temporaries.
        let dir =
            std::env::temp_dir().join(format!("ctr-edge-fsutil-{}-{name}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn writes_replace_the_file_and_leave_no_temporary() {
        let path = scratch("replaced.txt");
        write_atomic(&path, |w| w.write_all(b"first")).unwrap();
        write_atomic(&path, |w| w.write_all(b"second")).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert!(leftovers(path.parent().unwrap()).is_empty());
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_removes_the_temporary() {
        let path = scratch("kept.txt");
        write_atomic(&path, |w| w.write_all(b"old")).unwrap();
        let e = write_atomic(&path, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("disk on fire"))
        })
        .unwrap_err();
        assert!(matches!(&e, Error::Io { path: p, .. } if p == &path), "{e}");
        assert!(e.to_string().contains("disk on fire"), "{e}");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert!(leftovers(path.parent().unwrap()).is_empty());
        let e = write_atomic(Path::new("/"), |_| Ok(())).unwrap_err();
        assert!(e.to_string().contains("not a file path"), "{e}");
    }
}
