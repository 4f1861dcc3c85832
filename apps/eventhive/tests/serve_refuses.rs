//! `eventhive serve` refuses to start in a shape that is not production's, before it opens a
//! port: no process serves the dev conveniences because of an environment variable.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

/// `/dev/mail` needs no login and holds ticket codes: a variable that switched dev mode on
/// would serve it from a production gateway.
#[test]
fn dev_mode_cannot_be_switched_on_by_a_variable() {
    let output = Command::new(env!("CARGO_BIN_EXE_eventhive"))
        .args(["serve", "gateway"])
        .env("EVENTHIVE_DEV_MODE", "true")
        .env("EVENTHIVE_DATABASE_URL", "postgres://postgres@127.0.0.1:1")
        .env("EVENTHIVE_AMQP_URL", "amqp://guest:guest@127.0.0.1:1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "serve started: {stderr}");
    assert!(stderr.contains("EVENTHIVE_DEV_MODE"), "the refusal names the variable: {stderr}");
}
