//! `cometbench run` on a scenario written for a test, for the binary's tests.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// What a run came to: its exit code, what it printed, its run.json and its
/// results directory. Dropped, it removes the directory the run was given.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub run: serde_json::Value,
    pub dir: PathBuf,
    top: PathBuf,
}

impl Drop for Ran {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.top);
    }
}

/// Runs `bin run` on scenario `text` named `name` (written with its `name`
/// line into a directory of its own under the system's temporary one, where
/// its results go too).
pub fn run_scenario(bin: &str, name: &str, text: &str) -> Ran {
    let dir = std::env::temp_dir().join(format!("cometbench-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, format!("name = \"{name}\"\n{text}")).unwrap();
    let out = Command::new(bin)
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&dir)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    println!("{stdout}");
    let results = stdout
        .lines()
        .find_map(|l| l.strip_prefix("results: "))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no results directory: {stdout}"));
    let text = std::fs::read_to_string(results.join("run.json")).unwrap();
    Ran {
        code: out.status.code(),
        stdout,
        run: serde_json::from_str(&text).unwrap(),
        dir: results,
        top: dir,
    }
}
