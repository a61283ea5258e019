//! Who made a container: a sidecar (`serve`) or the CLI, and which process
//! on which kernel, so a sidecar starting after a crash can tell what a dead
//! process left half-done from what a live one is still working on.
//!
//! The label value is `KIND:BOOT_ID:PID_NAMESPACE:PID:START_TICKS`. From the
//! same kernel and pid namespace, a process is known alive (the pid runs,
//! started at the same tick) or dead; from elsewhere (another container,
//! another host on a shared engine) its fate is unknown.

use std::sync::LazyLock;

/// On build and chaincode containers: the process that made them.
pub const LABEL_CREATOR: &str = "org.cclaunch.creator";

/// What made a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Serve,
    Cli,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Serve => "serve",
            Kind::Cli => "cli",
        }
    }
}

/// What is known from here of the process a creator label names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Alive,
    Dead,
    /// Another kernel or pid namespace, or a label this cclaunch cannot read.
    Unknown,
}

/// A creator label, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creator {
    pub kind: Option<Kind>,
    pub pid: Option<u32>,
    pub fate: Fate,
}

/// This kernel's boot id and this process's pid namespace, read once.
static HERE: LazyLock<(String, String)> = LazyLock::new(|| {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| id.trim().to_string())
        .unwrap_or_default();
    // "pid:[4026531836]": the namespace's inode.
    let namespace = std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .and_then(|link| {
            let link = link.to_string_lossy().into_owned();
            let inner = link.strip_prefix("pid:[")?.strip_suffix(']')?;
            Some(inner.to_string())
        })
        .unwrap_or_default();
    (boot, namespace)
});

/// The label naming this process as a creator of `kind`.
pub fn label(kind: Kind) -> String {
    let (boot, namespace) = &*HERE;
    let pid = std::process::id();
    let start = start_ticks(&pid.to_string()).unwrap_or_default();
    format!("{}:{boot}:{namespace}:{pid}:{start}", kind.name())
}

/// Reads a creator label as seen from this process.
pub fn read(label: &str) -> Creator {
    let parts: Vec<&str> = label.split(':').collect();
    let kind = match parts.first() {
        Some(&"serve") => Some(Kind::Serve),
        Some(&"cli") => Some(Kind::Cli),
        _ => None,
    };
    let pid = parts.get(3).and_then(|p| p.parse::<u32>().ok());
    let (boot, namespace) = &*HERE;
    let fate = match (parts.as_slice(), pid) {
        ([_, b, n, _, start], Some(pid))
            if !boot.is_empty() && !namespace.is_empty() && b == boot && n == namespace =>
        {
            match start_ticks(&pid.to_string()) {
                Some(now) if now == *start => Fate::Alive,
                _ => Fate::Dead,
            }
        }
        _ => Fate::Unknown,
    };
    Creator { kind, pid, fate }
}

/// When a process started, in clock ticks after boot (field 22 of
/// /proc/PID/stat, counted after the command name, which may hold spaces).
fn start_ticks(pid: &str) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_finished_one_is_dead() {
        let me = read(&label(Kind::Cli));
        assert_eq!(me.kind, Some(Kind::Cli));
        assert_eq!(me.pid, Some(std::process::id()));
        assert_eq!(me.fate, Fate::Alive);

        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start = start_ticks(&pid.to_string());
        child.wait().unwrap();
        let (boot, namespace) = &*HERE;
        let gone = format!(
            "serve:{boot}:{namespace}:{pid}:{}",
            start.unwrap_or_default()
        );
        assert_eq!(read(&gone).fate, Fate::Dead);
        // The same pid started at another tick is another process.
        let me = std::process::id();
        let reused = format!("serve:{boot}:{namespace}:{me}:1");
        assert_eq!(read(&reused).fate, Fate::Dead);
    }

    #[test]
    fn a_process_elsewhere_is_of_unknown_fate() {
        let (boot, _) = &*HERE;
        let elsewhere = format!("serve:{boot}:1:{}:1", std::process::id());
        assert_eq!(read(&elsewhere).fate, Fate::Unknown);
        assert_eq!(read(&elsewhere).kind, Some(Kind::Serve));
        assert_eq!(read("garbage").fate, Fate::Unknown);
        assert_eq!(read("garbage").kind, None);
    }
}
