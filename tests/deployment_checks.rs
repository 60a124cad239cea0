//! Checks of the AWS deployment that LocalStack cannot make: cfn-lint on the template with the
//! state machine definition inlined (`infra/lint.py`), in the checks venv (`tests/checks`).

use std::path::PathBuf;
use std::process::Command;

use crate::harness::{project, venv};

/// The Python of the deployment checks' venv (cfn-lint, moto), installed on first use.
pub fn checks_python() -> PathBuf {
    venv("tests/checks/install.sh").join("bin/python")
}

#[test]
fn the_template_and_state_machine_pass_cfn_lint() {
    let lint = Command::new(checks_python()).arg(project().join("infra/lint.py")).output().expect("running infra/lint.py");
    assert!(lint.status.success(), "cfn-lint:\n{}{}", String::from_utf8_lossy(&lint.stdout), String::from_utf8_lossy(&lint.stderr));
}
