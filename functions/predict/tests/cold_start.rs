//! A function that cannot start says why, at once: one line naming what to set, the init error
//! posted to the Lambda runtime API (which `cargo lambda invoke` and AWS show to the caller), and
//! a non-zero exit, never a hang.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

/// What the function posted to the runtime API: the request line, its headers and body.
struct Posted {
    request_line: String,
    headers: Vec<String>,
    body: serde_json::Value,
}

/// Runs the predict binary with only `vars` set, against a runtime API on a loopback port that
/// answers one request; returns the exit status, what it logged (stdout, where Lambda's log
/// lines go, then logged) and what was posted.
fn start_with(vars: &[(&str, &str)]) -> (std::process::ExitStatus, String, Option<Posted>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let api = std::thread::spawn(move || {
        let (stream, _) = listener.accept().ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).ok()?;
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).ok()?;
            if line.trim().is_empty() {
                break;
            }
            headers.push(line.trim().to_ascii_lowercase());
        }
        let length: usize = headers.iter().find_map(|h| h.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
        let mut body = vec![0; length];
        reader.read_exact(&mut body).ok()?;
        (&stream).write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n").ok()?;
        Some(Posted { request_line: request_line.trim().to_string(), headers, body: serde_json::from_slice(&body).ok()? })
    });
    let output = Command::new(env!("CARGO_BIN_EXE_predict"))
        .env_clear()
        .envs(vars.iter().copied())
        .env("AWS_LAMBDA_RUNTIME_API", &address)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("running predict");
    // A function that posted nothing leaves the listener waiting: connect once to end it.
    let _ = std::net::TcpStream::connect(&address);
    let logged = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status, logged, api.join().unwrap())
}

const AWS: [(&str, &str); 3] = [("AWS_REGION", "us-east-1"), ("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")];

#[test]
fn a_missing_variable_is_one_line_and_the_init_error() {
    let vars: Vec<_> = AWS.iter().copied().chain([("MLOPS_BUCKET", "data")]).collect();
    let (status, logged, posted) = start_with(&vars);
    assert_eq!(status.code(), Some(1), "{logged}");
    let lines: Vec<&str> = logged.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {logged}");
    assert!(lines[0].contains("environment variable MLOPS_DATASET is not set"), "{logged}");
    let posted = posted.expect("the init error was posted");
    assert_eq!(posted.request_line, "POST /2018-06-01/runtime/init/error HTTP/1.1");
    assert!(posted.headers.contains(&"lambda-runtime-function-error-type: configuration".to_string()), "{:?}", posted.headers);
    assert_eq!(posted.body["errorType"], "Configuration");
    assert_eq!(posted.body["errorMessage"], "cannot start: environment variable MLOPS_DATASET is not set");
}

#[test]
fn no_region_and_no_credentials_are_configuration_errors_at_start() {
    let (status, logged, posted) = start_with(&[("MLOPS_BUCKET", "data"), ("MLOPS_DATASET", "bikeshare")]);
    assert_eq!(status.code(), Some(1), "{logged}");
    assert!(logged.contains("no AWS region: set AWS_REGION"), "{logged}");
    assert_eq!(posted.expect("posted").body["errorType"], "Configuration");

    let (status, logged, posted) =
        start_with(&[("AWS_REGION", "us-east-1"), ("MLOPS_BUCKET", "data"), ("MLOPS_DATASET", "bikeshare"), ("HOME", "/nonexistent")]);
    assert_eq!(status.code(), Some(1), "{logged}");
    assert!(logged.contains("no AWS credentials"), "{logged}");
    assert_eq!(posted.expect("posted").body["errorType"], "Configuration");
}
