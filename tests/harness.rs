//! The integration-test harness: a fresh store per test, the `mlops` binary run against it,
//! and helpers to check that nothing was lost or changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

/// The project directory.
pub fn project() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a venv install script of the project (`tests/localstack/install.sh`,
/// `tests/checks/install.sh`): idempotent, it prints the venv's path.
pub fn venv(script: &str) -> PathBuf {
    // Tests run on threads of one process: one install at a time, so two never write one venv.
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let output = Command::new("bash")
        .arg(project().join(script))
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    assert!(output.status.success(), "setting up the venv of {script} failed");
    PathBuf::from(String::from_utf8(output.stdout).expect("a path").trim())
}

pub fn bikeshare_csv() -> PathBuf {
    project().join("data/bikeshare/Bikeshare.csv")
}

pub fn bikeshare_spec() -> PathBuf {
    project().join("specs/bikeshare.toml")
}

/// A temporary directory holding a store (`root/`) and input files.
pub struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace { dir: tempfile::tempdir().expect("a temporary directory") }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes an input file next to the store.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).expect("writing an input file");
        path
    }

    /// Runs `mlops --root ROOT ARGS...`.
    pub fn mlops(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_mlops"))
            .arg("--root")
            .arg(self.root())
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .expect("running mlops")
    }

    /// Runs a command that must succeed with `--json`, and parses its one JSON object.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.push("--json");
        let output = self.mlops(&args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "mlops {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("mlops {args:?} printed no single JSON object ({e}): {stdout}"))
    }

    /// Runs a command that must fail; returns its stderr, which must be one line.
    pub fn fails(&self, args: &[&str]) -> String {
        let output = self.mlops(args);
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(!output.status.success(), "mlops {args:?} should have failed: {}", String::from_utf8_lossy(&output.stdout));
        let error_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(error_lines.len(), 1, "one error line expected, got: {stderr}");
        error_lines[0].to_string()
    }

    /// SHA-256 of every file under the store, by relative path.
    pub fn snapshot(&self, under: &str) -> BTreeMap<String, String> {
        let mut files = BTreeMap::new();
        let base = self.root().join(under);
        let mut pending = vec![base.clone()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    let relative = path.strip_prefix(&base).expect("under the base").display().to_string();
                    files.insert(relative, sha256_file(&path));
                }
            }
        }
        files
    }
}

pub fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("reading a file")))
}

/// A small regression dataset: `y = 3x + group effect + noise`, `n` rows from `start`.
pub fn toy_csv(n: usize, start: usize) -> String {
    let mut text = String::from("id,x,group,when,y\n");
    for i in start..start + n {
        let x = (i % 89) as f64 / 7.0;
        let group = ["red", "green", "blue"][i % 3];
        let effect = [0.0, 4.0, -2.0][i % 3];
        let day = 1 + i / 24 % 28;
        let hour = i % 24;
        text.push_str(&format!(
            "{i},{x},{group},2024-02-{day:02} {hour:02}:00:00,{:.3}\n",
            3.0 * x + effect + ((i * 7919) % 11) as f64 / 11.0
        ));
    }
    text
}

/// The spec `mlops init` would draft for [`toy_csv`], checked in by the tests that use it.
pub fn toy_spec(workspace: &Workspace) -> PathBuf {
    let data = workspace.write("toy-init.csv", toy_csv(300, 0));
    let spec = workspace.path("toy.toml");
    workspace.json(&["init", data.to_str().unwrap(), "--target", "y", "--name", "toy", "-o", spec.to_str().unwrap()]);
    spec
}

/// A running `mlops serve`, stopped (with Ctrl-C, so it flushes its log) when dropped.
pub struct Served {
    child: std::process::Child,
    pub address: String,
}

impl Served {
    pub fn start(workspace: &Workspace, spec: &Path) -> Served {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_mlops"))
            .arg("--root")
            .arg(workspace.root())
            .args(["serve", "--spec", spec.to_str().unwrap(), "--addr", "127.0.0.1:0"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting mlops serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let mut lines = std::io::BufReader::new(stderr).lines();
        let address = loop {
            let line = lines.next().expect("mlops serve printed its address").expect("readable stderr");
            if let Some(at) = line.find("http://") {
                break line[at..].split_whitespace().next().unwrap().to_string();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Served { child, address }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Stops the server with SIGINT and waits for it.
    pub fn stop(mut self) {
        self.interrupt();
    }

    fn interrupt(&mut self) {
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.interrupt();
    }
}

/// An HTTP client that returns error statuses as responses.
pub fn client() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(std::time::Duration::from_secs(20))).build().into()
}

/// Status and JSON body of a request.
pub fn call(agent: &ureq::Agent, method: &str, url: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    let response = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        ("POST", Some(body)) => agent.post(url).content_type("application/json").send(body),
        ("POST", None) => agent.post(url).send_empty(),
        ("PUT", None) => agent.put(url).send_empty(),
        (other, _) => panic!("no helper for {other}"),
    };
    let mut response = response.expect("the server answers");
    let status = response.status().as_u16();
    let text = response.body_mut().with_config().limit(64 << 20).read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}
