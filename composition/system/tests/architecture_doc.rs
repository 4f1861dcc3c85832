//! docs/architecture.md stays true to the code: its inventory (the table between the
//! `inventory:start` and `inventory:end` markers) names exactly the services, gRPC services,
//! domain events, bus queues and databases the code has, and the metrics section names every
//! series the code records. A name added on one side only fails here, saying which and where.

// A test file: a helper that fails, fails the test.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use eventhive_platform::Settings;
use eventhive_system::SERVICES;

const KINDS: [&str; 5] = ["service", "gRPC service", "domain event", "queue", "database"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn files(dir: &Path, extension: &str, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, extension, found);
        } else if path.extension().is_some_and(|e| e == extension) {
            found.push(path);
        }
    }
}

/// The first string literal after `marker` in `text`, each time it occurs.
fn quoted_after<'a>(text: &'a str, marker: &str) -> Vec<&'a str> {
    text.match_indices(marker)
        .filter_map(|(at, _)| {
            let rest = &text[at + marker.len()..];
            let rest = rest.trim_start().strip_prefix('"')?;
            rest.split_once('"').map(|(value, _)| value)
        })
        .collect()
}

/// The inventory table of the doc: (kind, name) per row.
fn documented() -> BTreeSet<(String, String)> {
    let doc = read(&root().join("docs/architecture.md"));
    let start = doc
        .find("<!-- inventory:start -->")
        .unwrap_or_else(|| panic!("the doc has no <!-- inventory:start --> marker"));
    let end =
        doc.find("<!-- inventory:end -->").unwrap_or_else(|| panic!("the doc has no <!-- inventory:end --> marker"));
    let mut rows = BTreeSet::new();
    for line in doc[start..end].lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() < 2 || cells[0] == "kind" || cells[0].starts_with("---") {
            continue;
        }
        let name = cells[1].trim_matches('`');
        assert!(KINDS.contains(&cells[0]), "inventory row of an unknown kind {:?} (known: {KINDS:?})", cells[0]);
        assert!(rows.insert((cells[0].to_owned(), name.to_owned())), "inventory names {name} twice");
    }
    rows
}

fn in_code() -> BTreeSet<(String, String)> {
    let root = root();
    let mut rows = BTreeSet::new();
    let mut add = |kind: &str, name: String| rows.insert((kind.to_owned(), name));

    let prefix = Settings::default().database_prefix;
    for entry in &SERVICES {
        add("service", entry.name.to_owned());
        if (entry.migrations)().is_some() {
            add("database", format!("{prefix}_{}", entry.name));
        }
    }

    let mut protos = Vec::new();
    files(&root.join("proto"), "proto", &mut protos);
    for proto in protos {
        let text = read(&proto);
        let package = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("package "))
            .map(|p| p.trim_end_matches(';').trim().to_owned())
            .unwrap_or_else(|| panic!("{} declares no package", proto.display()));
        for line in text.lines() {
            if let Some(rest) = line.trim().strip_prefix("service ") {
                let name = rest.split(|c: char| c == '{' || c.is_whitespace()).next().unwrap_or_default();
                add("gRPC service", format!("{package}.{name}"));
            }
        }
    }

    // `const TYPE: &'static str = "catalog.event_published";` then its `const VERSION: u32 = 1;`.
    let events = read(&root.join("crates/domain/src/events.rs"));
    let types = quoted_after(&events, "const TYPE: &'static str =");
    let versions: Vec<&str> = events
        .match_indices("const VERSION: u32 =")
        .map(|(at, m)| events[at + m.len()..].split(';').next().unwrap_or_default().trim())
        .collect();
    assert_eq!(types.len(), versions.len(), "every domain event in events.rs has a TYPE and a VERSION");
    for (name, version) in types.iter().zip(versions) {
        add("domain event", format!("{name}.v{version}"));
    }

    // `Subscription::new("<queue>", ...)`, or `Subscription::new(QUEUE, ...)` with `const QUEUE: &str = "..."`.
    let mut sources = Vec::new();
    for service in std::fs::read_dir(root.join("services")).unwrap() {
        let src = service.unwrap().path().join("src");
        if src.is_dir() {
            let mut crate_files = Vec::new();
            files(&src, "rs", &mut crate_files);
            sources.push(crate_files.iter().map(|f| read(f)).collect::<Vec<_>>().join("\n"));
        }
    }
    for source in sources {
        for (at, marker) in source.match_indices("Subscription::new(") {
            let argument = source[at + marker.len()..].trim_start();
            if let Some(rest) = argument.strip_prefix('"') {
                add("queue", rest.split('"').next().unwrap_or_default().to_owned());
            } else {
                let constant = argument.split([',', ')']).next().unwrap_or_default().trim();
                let constant = constant.rsplit("::").next().unwrap_or_default();
                let value = quoted_after(&source, &format!("const {constant}: &str ="));
                let value = value.first().unwrap_or_else(|| panic!("queue constant {constant} not found"));
                add("queue", (*value).to_owned());
            }
        }
    }
    rows
}

#[test]
fn the_inventory_in_the_architecture_doc_matches_the_code() {
    let documented = documented();
    let in_code = in_code();
    for kind in KINDS {
        assert!(in_code.iter().any(|(k, _)| k == kind), "found no {kind} in the code: the scan is broken");
    }
    let undocumented: Vec<_> = in_code.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&in_code).collect();
    assert!(
        undocumented.is_empty() && stale.is_empty(),
        "docs/architecture.md's inventory is out of date.\n  in the code, not in the doc: {undocumented:?}\n  in the doc, not in the code: {stale:?}"
    );
}

#[test]
fn every_metric_is_in_the_architecture_doc_and_described() {
    let doc = read(&root().join("docs/architecture.md"));
    let described: BTreeSet<&str> = eventhive_platform::metrics::CATALOG.iter().map(|(name, ..)| *name).collect();
    let missing: Vec<_> = described.iter().filter(|name| !doc.contains(&format!("`{name}`"))).collect();
    assert!(missing.is_empty(), "docs/architecture.md's metrics table does not name {missing:?}");

    // Every series recorded anywhere has a description (a `# HELP` line).
    let mut sources = Vec::new();
    for dir in ["crates", "services"] {
        files(&root().join(dir), "rs", &mut sources);
    }
    let mut recorded = BTreeSet::new();
    for source in sources {
        let text = read(&source);
        for macro_name in ["counter!(", "gauge!(", "histogram!("] {
            for name in quoted_after(&text, macro_name) {
                recorded.insert(name.to_owned());
            }
        }
    }
    let undescribed: Vec<_> = recorded.iter().filter(|name| !described.contains(name.as_str())).collect();
    assert!(undescribed.is_empty(), "recorded but not in eventhive_platform::metrics::CATALOG: {undescribed:?}");
}
