//! Writing files and folders so that a reader never sees a half-written one.
//!
//! - One file: [`write_atomic`] fills a temporary file beside the destination, syncs it and
//!   renames it over the final name (the `.npy`/`.npz` writers, the JSON report); [`TempFile`]
//!   is its piece. On any error the temporary file is removed.
//! - A folder of files that belong together (an artifact: `model.onnx`, `model.weights`,
//!   `report.json`): [`StagedDir`]. The files are written into a fresh folder
//!   `.NAME.tmp-PID-N` beside the destination `NAME`, synced with the folder itself; then an
//!   existing `NAME` is renamed aside to `.NAME.old-PID-N`, the staged folder is renamed to
//!   `NAME`, the parent is synced and the old folder removed. Each step is one rename, so a
//!   crash at any point leaves `NAME` holding either the old files or the new ones, never a
//!   mix: between the two renames `NAME` is briefly absent and the old folder complete beside
//!   it, and the next [`StagedDir::create`] in that parent puts it back.
//!
//! Leftovers of crashed runs (these names with the id of a process that is no longer running)
//! are removed by the next [`StagedDir::create`] or [`write_atomic`] into the same folder, with
//! a warning. Removal only ever deletes files whose names the writer owns (the `ours` list,
//! and temporary names of this module), then the empty folder: a file someone else put there is
//! never deleted (the folder is left, with a warning).

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::SystemTime;

use crate::error::{Error, Result};

/// Numbers the temporary names of this process (with its id, they are unique).
static COUNTER: AtomicU64 = AtomicU64::new(0);

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
    if let Ok(dir) = File::open(non_empty(dir)) {
        let _ = dir.sync_all();
    }
}

/// `dir`, or `.` for the empty path (the parent of a bare file name).
fn non_empty(dir: &Path) -> &Path {
    if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }
}

/// Writes `path` atomically: `write` fills a buffered temporary file beside it, which is
/// flushed, synced and renamed into place. Any failure is an [`Error::Io`] naming `path`,
/// and leaves neither a temporary file nor a changed `path`. Temporary files of `path` left by
/// crashed processes are removed first.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> Result<()> {
    let parent = non_empty(path.parent().unwrap_or(Path::new("")));
    if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
        remove_stale(parent, &[], Some(name));
    }
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
    sync_dir(parent);
    Ok(())
}

/// What a destination folder holds, as [`folder_state`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderState {
    /// Nothing at that path.
    Absent,
    /// An empty folder (or one holding only temporary files of this module).
    Empty,
    /// A folder holding these files of the writer's (sorted), and nothing else.
    Holds(Vec<String>),
}

/// Looks at `dir` before it is replaced as a whole: absent, empty, or holding only files named
/// in `ours` (and temporary files of this module). A symbolic link, something that is not a
/// folder, or a folder with any other entry is an [`Error::InvalidArgument`] naming it and
/// the entries: replacing it would delete or hide files that are not the writer's.
pub fn folder_state(dir: &Path, ours: &[&str]) -> Result<FolderState> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let meta = match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(FolderState::Absent),
        other => other.map_err(io)?,
    };
    let refuse = |what: String| {
        Err(Error::InvalidArgument {
            reason: format!("{}: {what}", dir.display()),
        })
    };
    if meta.file_type().is_symlink() {
        return refuse(
            "is a symbolic link; the output folder is replaced as a whole, so give the folder \
             it points to"
                .into(),
        );
    }
    if !meta.is_dir() {
        return refuse("exists and is not a folder".into());
    }
    let mut held = Vec::new();
    let mut foreign = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let is_file = entry.file_type().map_err(io)?.is_file();
        match entry.file_name().to_str() {
            Some(name) if is_file && ours.contains(&name) => held.push(name.to_owned()),
            Some(name) if is_file && is_temp_file_name(name) => {}
            _ => foreign.push(entry.file_name().to_string_lossy().into_owned()),
        }
    }
    if !foreign.is_empty() {
        foreign.sort();
        let more = foreign.len().saturating_sub(5);
        foreign.truncate(5);
        let mut list = foreign.join(", ");
        if more > 0 {
            list.push_str(&format!(" and {more} more"));
        }
        return refuse(format!(
            "holds entries that are not the writer's ({list}); the output folder is replaced as \
             a whole, so it must be new, empty or hold only {}: choose another folder",
            ours.join(", ")
        ));
    }
    held.sort();
    Ok(if held.is_empty() {
        FolderState::Empty
    } else {
        FolderState::Holds(held)
    })
}

/// A folder written as a unit (see the module documentation): files go into
/// [`path`](Self::path), a fresh folder beside the destination, and [`commit`](Self::commit)
/// puts it in place of the destination. Dropped without a commit, the staged folder is
/// removed and the destination is untouched.
#[derive(Debug)]
pub struct StagedDir {
    target: PathBuf,
    parent: PathBuf,
    name: String,
    n: u64,
    staging: Option<PathBuf>,
    ours: &'static [&'static str],
}

impl StagedDir {
    /// Stages a new version of the folder `target`, whose files are named in `ours`: creates
    /// `target`'s parent if needed, removes (or, for a destination that is missing, restores)
    /// leftovers of crashed runs in it, checks with [`folder_state`] that `target` may be
    /// replaced, and creates the staged folder.
    pub fn create(target: &Path, ours: &'static [&'static str]) -> Result<StagedDir> {
        let io_err = |what: &str, source: io::Error| Error::Io {
            path: target.to_path_buf(),
            source: io::Error::new(source.kind(), format!("{what}: {source}")),
        };
        let name = match target.file_name().and_then(|n| n.to_str()) {
            Some(name) if name != "." && name != ".." => name.to_owned(),
            _ => {
                return Err(Error::InvalidArgument {
                    reason: format!(
                        "output folder '{}': give a path that ends in the folder's name",
                        target.display()
                    ),
                })
            }
        };
        let parent = non_empty(target.parent().unwrap_or(Path::new(""))).to_path_buf();
        fs::create_dir_all(&parent)
            .map_err(|e| io_err("cannot create the output folder's parent", e))?;
        if !parent.is_dir() {
            return Err(io_err(
                "cannot create the output folder",
                io::Error::new(io::ErrorKind::NotADirectory, "its parent is not a folder"),
            ));
        }
        remove_stale(&parent, ours, None);
        folder_state(target, ours)?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let staging = parent.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
        fs::create_dir(&staging).map_err(|e| {
            io_err(
                "cannot create the output folder (a temporary folder beside it)",
                e,
            )
        })?;
        Ok(StagedDir {
            target: target.to_path_buf(),
            parent,
            name,
            n,
            staging: Some(staging),
            ours,
        })
    }

    /// The staged folder, where the files are to be written.
    pub fn path(&self) -> &Path {
        self.staging.as_deref().unwrap_or(Path::new(""))
    }

    /// The destination, as given to [`create`](Self::create).
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Syncs the staged files and folder, then replaces the destination with it (the old
    /// version, if any, renamed aside and then removed). If the destination gained files that
    /// are not the writer's in the meantime, nothing is replaced and that is an error.
    pub fn commit(mut self) -> Result<()> {
        let staging = self.path().to_path_buf();
        let io_err = |path: &Path, what: &str, source: io::Error| Error::Io {
            path: path.to_path_buf(),
            source: io::Error::new(source.kind(), format!("{what}: {source}")),
        };
        let entries = fs::read_dir(&staging).map_err(|e| io_err(&staging, "cannot read", e))?;
        for entry in entries {
            let path = entry
                .map_err(|e| io_err(&staging, "cannot read", e))?
                .path();
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| io_err(&path, "cannot sync", e))?;
        }
        sync_dir(&staging);
        crash_point("staged");

        let old = match folder_state(&self.target, self.ours)? {
            FolderState::Absent => None,
            FolderState::Empty | FolderState::Holds(_) => {
                let old = self.parent.join(format!(
                    ".{}.old-{}-{}",
                    self.name,
                    std::process::id(),
                    self.n
                ));
                fs::rename(&self.target, &old).map_err(|e| {
                    io_err(&self.target, "cannot move the previous version aside", e)
                })?;
                sync_dir(&self.parent);
                crash_point("moved-aside");
                Some(old)
            }
        };
        if let Err(e) = fs::rename(&staging, &self.target) {
            if let Some(old) = &old {
                let _ = fs::rename(old, &self.target);
            }
            return Err(io_err(
                &self.target,
                "cannot rename the new version into place",
                e,
            ));
        }
        self.staging = None;
        sync_dir(&self.parent);
        crash_point("replaced");
        if let Some(old) = old {
            remove_owned_dir(&old, self.ours, "the previous version");
        }
        Ok(())
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if let Some(staging) = self.staging.take() {
            remove_owned_dir(&staging, self.ours, "an unfinished output folder");
        }
    }
}

/// Removes (or restores) the leftovers of crashed runs beside the folder `target`, as
/// [`StagedDir::create`] does first, for callers that look at `target` before staging.
pub fn recover_stale(target: &Path, ours: &[&str]) {
    remove_stale(
        non_empty(target.parent().unwrap_or(Path::new(""))),
        ours,
        None,
    );
}

/// What a temporary name of this module stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TempKind {
    /// `.NAME.PID.N.tmp`: a [`TempFile`].
    File,
    /// `.NAME.tmp-PID-N`: a [`StagedDir`]'s staged folder.
    Staged,
    /// `.NAME.old-PID-N`: the previous version, renamed aside by [`StagedDir::commit`].
    Old,
}

/// `(NAME, kind, PID)` of a temporary name of this module.
fn parse_temp_name(name: &str) -> Option<(&str, TempKind, u32)> {
    fn number<T: std::str::FromStr>(s: &str) -> Option<T> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    }
    let rest = name.strip_prefix('.')?;
    let parsed = if let Some(stem) = rest.strip_suffix(".tmp") {
        let (stem, n) = stem.rsplit_once('.')?;
        let (target, pid) = stem.rsplit_once('.')?;
        number::<u64>(n)?;
        Some((target, TempKind::File, number(pid)?))
    } else {
        // The last marker is the one (a folder's own name may hold `.tmp-`).
        [(".tmp-", TempKind::Staged), (".old-", TempKind::Old)]
            .into_iter()
            .filter_map(|(marker, kind)| {
                let (target, ids) = rest.rsplit_once(marker)?;
                let (pid, n) = ids.split_once('-')?;
                number::<u64>(n)?;
                Some((target, kind, number(pid)?))
            })
            .max_by_key(|(target, _, _)| target.len())
    };
    parsed.filter(|(target, _, _)| !target.is_empty())
}

fn is_temp_file_name(name: &str) -> bool {
    parse_temp_name(name).is_some_and(|(_, kind, _)| kind == TempKind::File)
}

/// Whether the process `pid`, which named a temporary that was last modified at `modified`,
/// may still be using it. With `/proc` (Linux, Android) the answer is whether it runs; elsewhere
/// a temporary older than this process counts as left over.
fn may_be_running(pid: u32, modified: Option<SystemTime>) -> bool {
    static STARTED: OnceLock<SystemTime> = OnceLock::new();
    let started = *STARTED.get_or_init(SystemTime::now);
    if pid == std::process::id() {
        return true;
    }
    let proc = Path::new("/proc");
    if proc.join("self").is_dir() {
        return proc.join(pid.to_string()).exists();
    }
    modified.is_none_or(|m| m >= started)
}

/// Removes the leftovers of crashed processes in `dir` (with a warning each): temporary files
/// (only those of `file_target` when given, and then nothing else), staged folders, and old
/// versions, except that an old version whose destination is missing (a crash between
/// [`StagedDir::commit`]'s two renames) is renamed back into place. Folders are removed only
/// when they hold nothing but files named in `ours` and temporary files.
fn remove_stale(dir: &Path, ours: &[&str], file_target: Option<&str>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut found: Vec<(PathBuf, String, TempKind, u32)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let (target, kind, pid) = parse_temp_name(name.to_str()?)?;
            if file_target.is_some_and(|t| kind != TempKind::File || t != target) {
                return None;
            }
            let modified = entry.metadata().and_then(|m| m.modified()).ok();
            (!may_be_running(pid, modified)).then(|| (entry.path(), target.to_owned(), kind, pid))
        })
        .collect();
    // Old versions first: one may be restored before a staged folder of the same name goes.
    found.sort_by_key(|(_, _, kind, _)| *kind != TempKind::Old);
    for (path, target, kind, pid) in found {
        let left = format!("left by an interrupted run (process {pid})");
        match kind {
            TempKind::File => match fs::remove_file(&path) {
                Ok(()) => log::warn!("removed {}, {left}", path.display()),
                Err(e) => log::warn!("cannot remove {}, {left}: {e}", path.display()),
            },
            TempKind::Old if fs::symlink_metadata(dir.join(&target)).is_err() => {
                let restored = dir.join(&target);
                match fs::rename(&path, &restored) {
                    Ok(()) => log::warn!(
                        "restored {} from {}, {left} while it replaced it",
                        restored.display(),
                        path.display()
                    ),
                    Err(e) => log::warn!(
                        "cannot restore {} from {}, {left}: {e}",
                        restored.display(),
                        path.display()
                    ),
                }
            }
            TempKind::Staged | TempKind::Old => {
                if remove_owned_dir(&path, ours, "a folder left by an interrupted run") {
                    log::warn!("removed {}, {left}", path.display());
                }
            }
        }
    }
}

/// Removes the folder `dir` if it holds only files named in `ours` and temporary files: those
/// are deleted, then the empty folder. Anything else stays, with a warning saying why; `what`
/// names the folder in it. Returns whether the folder is gone.
fn remove_owned_dir(dir: &Path, ours: &[&str], what: &str) -> bool {
    let removed = (|| -> io::Result<Option<String>> {
        let mut foreign = None;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let owned = name
                .to_str()
                .is_some_and(|n| ours.contains(&n) || is_temp_file_name(n));
            if owned && entry.file_type()?.is_file() {
                fs::remove_file(entry.path())?;
            } else {
                foreign = Some(name.to_string_lossy().into_owned());
            }
        }
        if foreign.is_none() {
            fs::remove_dir(dir)?;
        }
        Ok(foreign)
    })();
    match removed {
        Ok(None) => true,
        Ok(Some(foreign)) => {
            log::warn!(
                "kept {} ({what}): it holds '{foreign}', which is not the writer's",
                dir.display()
            );
            false
        }
        Err(e) => {
            log::warn!("cannot remove {} ({what}): {e}", dir.display());
            false
        }
    }
}

/// In debug builds, aborts the process when the environment variable
/// `CTR_EDGE_TEST_CRASH_AFTER` names `stage`: the tests' stand-in for a crash or a SIGKILL at
/// that point (nothing is cleaned up, as after a real one). Release builds ignore it.
fn crash_point(stage: &str) {
    #[cfg(debug_assertions)]
    if std::env::var_os("CTR_EDGE_TEST_CRASH_AFTER").is_some_and(|s| s == stage) {
        eprintln!("CTR_EDGE_TEST_CRASH_AFTER={stage}: aborting");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = stage;
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

    #[test]
    fn temporary_names_are_recognized_exactly() {
        use TempKind::*;
        let cases = [
            (
                ".model.weights.123.0.tmp",
                Some(("model.weights", File, 123)),
            ),
            (".out.tmp-42-7", Some(("out", Staged, 42))),
            (".my.tmp-dir.old-9-0", Some(("my.tmp-dir", Old, 9))),
            (".out.tmp-42-", None),
            (".out.tmp--1", None),
            (".out.old-x-1", None),
            ("out.tmp-42-7", None),
            ("..tmp-1-2", None),
            (".notes.txt", None),
            (".a.+1.0.tmp", None),
        ];
        for (name, want) in cases {
            assert_eq!(parse_temp_name(name), want, "{name}");
        }
    }

    #[test]
    fn a_staged_folder_replaces_the_old_one_or_leaves_it() {
        const OURS: &[&str] = &["a", "b"];
        let root = scratch("staged").with_file_name("staged-root");
        let _ = fs::remove_dir_all(&root);
        let target = root.join("out");
        let write = |dir: &Path, name: &str, text: &str| fs::write(dir.join(name), text).unwrap();

        let staged = StagedDir::create(&target, OURS).unwrap();
        write(staged.path(), "a", "1");
        write(staged.path(), "b", "1");
        staged.commit().unwrap();
        assert_eq!(
            folder_state(&target, OURS).unwrap(),
            FolderState::Holds(vec!["a".into(), "b".into()])
        );

        // Dropped without a commit: nothing changes.
        let staged = StagedDir::create(&target, OURS).unwrap();
        write(staged.path(), "a", "2");
        drop(staged);
        assert_eq!(fs::read(target.join("a")).unwrap(), b"1");

        // Replaced as a whole: "b" is gone with the old version.
        let staged = StagedDir::create(&target, OURS).unwrap();
        write(staged.path(), "a", "3");
        staged.commit().unwrap();
        assert_eq!(fs::read(target.join("a")).unwrap(), b"3");
        assert!(!target.join("b").exists());
        let mut names: Vec<String> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["out"]);

        // A file that is not ours: refused before and at commit, never deleted.
        write(&target, "c", "theirs");
        let err = StagedDir::create(&target, OURS).unwrap_err().to_string();
        assert!(err.contains("'c'") || err.contains("(c)"), "{err}");
        fs::remove_file(target.join("c")).unwrap();
        let staged = StagedDir::create(&target, OURS).unwrap();
        write(&target, "c", "theirs");
        assert!(staged.commit().is_err());
        assert_eq!(fs::read(target.join("c")).unwrap(), b"theirs");
        assert_eq!(fs::read(target.join("a")).unwrap(), b"3");
        fs::remove_dir_all(&root).unwrap();
    }
}
