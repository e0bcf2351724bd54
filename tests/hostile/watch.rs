//! Runs a child process under watch: its wall time, its peak resident memory (`wait4`'s
//! `ru_maxrss`) and how it ended. Shared, by `#[path]`, by the hostile-corpus tests.

#![allow(dead_code)] // each test uses a part

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a watched child ended.
#[derive(Debug)]
pub struct Watched {
    /// Exit code; `None` when a signal ended it (an abort, a crash, the watch's kill).
    pub code: Option<i32>,
    /// The signal that ended it.
    pub signal: Option<i32>,
    /// Killed by the watch for running past the time limit.
    pub timed_out: bool,
    /// Wall time until it ended (or was killed).
    pub elapsed: Duration,
    /// Peak resident set size, bytes.
    pub max_rss: u64,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` with stdout and stderr captured, killing it after `limit`. When `address_space`
/// is given the child's virtual memory is capped there (`RLIMIT_AS`), so that a runaway
/// allocation fails in the child instead of pushing the test machine into swap.
pub fn run(mut cmd: Command, limit: Duration, address_space: Option<u64>) -> Watched {
    use std::os::unix::process::CommandExt;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(bytes) = address_space {
        // SAFETY: between fork and exec only `setrlimit` runs (async-signal-safe), on a value
        // computed before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: bytes as libc::rlim_t,
                    rlim_max: bytes as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let start = Instant::now();
    // Reaped by `wait4` below (which also gives the peak RSS), not by std's `Child::wait`.
    #[allow(clippy::zombie_processes)]
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let pid = child.id() as libc::pid_t;
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let mut timed_out = false;
    let mut status = 0;
    // SAFETY: a zeroed `rusage` is a valid value for `wait4` to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our child, not reaped yet (std's `Child` is never waited on here);
        // the out-pointers are valid locals.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        assert!(r == 0, "wait4: {}", std::io::Error::last_os_error());
        if !timed_out && start.elapsed() > limit {
            timed_out = true;
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = start.elapsed();
    let exited = libc::WIFEXITED(status);
    Watched {
        code: exited.then(|| libc::WEXITSTATUS(status)),
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        timed_out,
        elapsed,
        max_rss: usage.ru_maxrss as u64 * 1024,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}
