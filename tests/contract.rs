//! The OpenAPI document that `mlops serve` publishes is the contract it keeps. Schemathesis
//! (pinned in `tests/checks`) reads the served document, generates requests from it, valid and
//! invalid, and runs all its checks on the answers: valid requests are accepted, invalid ones
//! refused with a 4xx, every status and body is one the document declares, and a method a path
//! does not allow gets 405 with `Allow`. `tests/checks/schemathesis.toml` says which statuses
//! count as a refusal. A fixed seed and a bounded number of examples keep the run repeatable.

use std::process::{Command, Output};

use crate::deployment_checks::checks_python;
use crate::harness::{Served, Workspace, call, client, project};
use crate::serving::trained;

/// Runs Schemathesis on `location` (a URL, or a file with `--url`) with every check.
fn schemathesis(location: &str, base_url: Option<&str>) -> Output {
    let python = checks_python();
    let mut command = Command::new(python.parent().unwrap().join("schemathesis"));
    command
        .arg("--config-file")
        .arg(project().join("tests/checks/schemathesis.toml"))
        .args(["run", location, "--checks", "all", "--max-examples", "100", "--seed", "1", "--no-color"])
        .current_dir(std::env::temp_dir());
    if let Some(url) = base_url {
        command.args(["--url", url]);
    }
    command.output().expect("running schemathesis")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn schemathesis_finds_the_server_keeping_its_document() {
    let workspace = Workspace::new();
    let spec = trained(&workspace);
    let server = Served::start(&workspace, &spec);
    let output = schemathesis(&server.url("/openapi.json"), None);
    let report = text(&output);
    assert!(output.status.success(), "{}", &report[report.len().saturating_sub(20_000)..]);
    assert!(report.contains("No issues found"), "{report}");
}

#[test]
fn a_document_that_disagrees_with_the_server_fails_the_check() {
    let workspace = Workspace::new();
    let spec = trained(&workspace);
    let server = Served::start(&workspace, &spec);
    let (status, mut document) = call(&client(), "GET", &server.url("/openapi.json"), None);
    assert_eq!(status, 200);
    // The document loses the datetime's pattern: it now allows text the server refuses.
    let when = &mut document["components"]["schemas"]["Row"]["properties"]["when"];
    assert!(when.get("pattern").is_some(), "{when}");
    when.as_object_mut().unwrap().remove("pattern");
    let file = workspace.write("loose-openapi.json", serde_json::to_vec(&document).unwrap());
    let output = schemathesis(file.to_str().unwrap(), Some(&server.address));
    let report = text(&output);
    assert!(!output.status.success(), "{report}");
    assert!(report.contains("Schema-valid request rejected"), "{report}");
}
