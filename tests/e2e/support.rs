//! Running the built `cairn` binary the way a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn cairn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run_in(dir: &Path, args: &[&str]) -> Run {
    let output: Output = cairn()
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("the cairn binary runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A scratch directory holding the given files.
pub fn project(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, content) in files {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent directories");
        }
        std::fs::write(path, content).expect("write a project file");
    }
    dir
}

/// A fixed-offset zone where it is about noon now, so the examples' quiet hours
/// (21:00..08:00 local) never hold a message back, whenever the test runs.
pub fn zone_at_noon() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let hour = i64::try_from(secs / 3_600 % 24).expect("an hour");
    // POSIX-style names: `Etc/GMT+N` is N hours *behind* UTC.
    match hour - 12 {
        0 => "Etc/GMT".to_string(),
        n if n > 0 => format!("Etc/GMT+{n}"),
        n => format!("Etc/GMT{n}"),
    }
}
