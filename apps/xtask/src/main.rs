//! `cargo xtask test [nextest arguments]`: the README's test command. It installs the pinned
//! cargo-nextest if the machine has none, says which backends this run exercises (embedded
//! only, or embedded and PostgreSQL + RabbitMQ + Redis) and how to run the other, runs every
//! test of the workspace, and says it again at the end, under nextest's summary.
//!
//! `EVENTHIVE_TEST_INFRA=required` (set by `.ci/run`) turns a missing server into a failure
//! that names it; see `eventhive_test_infra`.

use std::process::{Command, ExitCode};

/// The nextest this repository is tested with; installed from crates.io when missing.
const NEXTEST_VERSION: &str = "0.9.143";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.split_first() {
        Some((task, rest)) if task == "test" => test(rest),
        _ => {
            eprintln!("usage: cargo xtask test [arguments for cargo nextest run]");
            ExitCode::from(2)
        }
    }
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn test(extra: &[String]) -> ExitCode {
    let has_nextest = cargo().args(["nextest", "--version"]).output().is_ok_and(|out| out.status.success());
    if !has_nextest {
        eprintln!("xtask: installing cargo-nextest {NEXTEST_VERSION} (once)");
        let installed = cargo()
            .args(["install", "--locked", &format!("cargo-nextest@{NEXTEST_VERSION}")])
            .status()
            .is_ok_and(|status| status.success());
        if !installed {
            eprintln!("xtask: could not install cargo-nextest");
            return ExitCode::FAILURE;
        }
    }
    let report = eventhive_test_infra::report();
    println!("== {report}");
    if eventhive_test_infra::mode() == eventhive_test_infra::Mode::Required
        && !eventhive_test_infra::missing().is_empty()
    {
        eprintln!("xtask: the infrastructure is required and missing; not running the tests");
        return ExitCode::FAILURE;
    }
    let some_packages = extra.iter().any(|arg| arg == "-p" || arg.starts_with("--package"));
    let scope: &[&str] = if some_packages { &[] } else { &["--workspace"] };
    let status = cargo().args(["nextest", "run"]).args(scope).args(extra).status();
    println!("== {report}");
    match status {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(status) => ExitCode::from(u8::try_from(status.code().unwrap_or(1)).unwrap_or(1)),
        Err(error) => {
            eprintln!("xtask: cannot run cargo nextest: {error}");
            ExitCode::FAILURE
        }
    }
}
