//! Resident memory of this process, from `/proc/self/status` (`VmRSS`). Where there is no
//! procfs (not Linux or Android), figures are `None` and reports say "n/a".

/// Resident set size of this process in KiB, if the platform reports it.
pub fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

/// The `VmRSS:   1234 kB` line of a `/proc/<pid>/status` text.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => Some(value),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_status_line() {
        let text = "Name:\tx\nVmPeak:\t 999 kB\nVmRSS:\t    5120 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_vm_rss(text), Some(5120));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        assert!(resident_kib().is_some_and(|k| k > 0));
    }
}
