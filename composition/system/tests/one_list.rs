//! The list of services is the only place that names them all: every service crate in the
//! workspace is in it (a crate left out would silently never run), and each entry is coherent.

// A test file: a helper that fails, fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use eventhive_system::SERVICES;

fn service_crates() -> BTreeSet<String> {
    let services = concat!(env!("CARGO_MANIFEST_DIR"), "/../../services");
    std::fs::read_dir(services)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("Cargo.toml").is_file())
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn every_service_crate_is_in_the_list() {
    let listed: BTreeSet<String> = SERVICES.iter().map(|entry| entry.name.to_owned()).collect();
    // A crate's directory is spelled with hyphens (`waiting-room`), its service's name with
    // underscores (`waiting_room`), which settings and database names need.
    let crates: BTreeSet<String> = service_crates().into_iter().map(|name| name.replace('-', "_")).collect();
    let missing: Vec<_> = crates.difference(&listed).collect();
    let stray: Vec<_> = listed.difference(&crates).collect();
    assert!(missing.is_empty(), "services/ has crates that eventhive_system::SERVICES does not list: {missing:?}");
    assert!(stray.is_empty(), "SERVICES lists services with no crate under services/: {stray:?}");
}

#[test]
fn names_and_ports_are_unique() {
    let names: BTreeSet<_> = SERVICES.iter().map(|entry| entry.name).collect();
    let ports: BTreeSet<_> = SERVICES.iter().map(|entry| entry.default_port).collect();
    assert_eq!(names.len(), SERVICES.len());
    assert_eq!(ports.len(), SERVICES.len());
}

#[test]
fn no_two_services_claim_the_same_setting() {
    let mut seen = BTreeSet::new();
    let shared = serde_json::to_value(eventhive_platform::Settings::default()).unwrap();
    for entry in &SERVICES {
        for key in entry.keys() {
            assert!(shared.get(&key).is_none(), "{} claims the shared setting {key}", entry.name);
            assert!(seen.insert(key.clone()), "two services claim the setting {key}");
        }
    }
}

#[test]
fn a_misspelled_setting_is_refused_by_name() {
    let mut settings = eventhive_platform::Settings::default();
    settings.set("hold_ttl_sec", 60);
    let error = eventhive_system::prepare(settings).unwrap_err();
    assert_eq!(error.variable, "EVENTHIVE_HOLD_TTL_SEC");
}

#[test]
fn a_bad_value_in_a_section_is_refused_by_name() {
    let mut settings = eventhive_platform::Settings::default();
    settings.set("inventory_shards", 0);
    let error = eventhive_system::prepare(settings).unwrap_err();
    assert_eq!(error.variable, "EVENTHIVE_INVENTORY_SHARDS");
}

#[test]
fn the_shared_crates_know_no_service() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let services: Vec<String> = service_crates().into_iter().map(|name| format!("eventhive-{name}")).collect();
    for shared in std::fs::read_dir(format!("{root}/crates")).unwrap() {
        let manifest = shared.unwrap().path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else { continue };
        for line in text.lines() {
            let dependency = line.split(['.', ' ', '=']).next().unwrap_or_default();
            assert!(
                !services.iter().any(|service| service == dependency),
                "{} depends on the service crate {dependency}: shared crates sit below the services",
                manifest.display()
            );
        }
    }
}

#[tokio::test]
async fn serve_refuses_to_run_on_embedded_storage_or_an_in_process_bus() {
    let error = eventhive_system::serve(eventhive_platform::Settings::default(), "catalog").await.unwrap_err();
    assert!(error.to_string().contains("EVENTHIVE_DATABASE_URL"), "{error:#}");
    let settings = eventhive_platform::Settings {
        database_url: Some("postgres://postgres@127.0.0.1:1".into()),
        ..eventhive_platform::Settings::default()
    };
    let error = eventhive_system::serve(settings.clone(), "catalog").await.unwrap_err();
    assert!(error.to_string().contains("EVENTHIVE_AMQP_URL"), "{error:#}");
    // Without the secret key no service could trust a call, nor be trusted.
    let settings = eventhive_platform::Settings { amqp_url: Some("amqp://guest:guest@127.0.0.1:1".into()), ..settings };
    let error = eventhive_system::serve(settings, "catalog").await.unwrap_err();
    assert!(error.to_string().contains("EVENTHIVE_SECRET_KEY"), "{error:#}");
}

/// Publishing is mandatory: an event no queue takes is refused, and the outbox would hold it
/// (and every event written after it) forever. So every domain event of
/// `crates/domain/src/events.rs` has a consumer in the topology the services declare.
#[test]
fn every_domain_event_has_a_queue_in_the_topology() {
    let events =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../crates/domain/src/events.rs")).unwrap();
    let after = |marker: &str| -> Vec<String> {
        events
            .match_indices(marker)
            .map(|(at, m)| {
                events[at + m.len()..].split(';').next().unwrap_or_default().trim().trim_matches('"').to_owned()
            })
            .collect()
    };
    let (types, versions) = (after("const TYPE: &'static str ="), after("const VERSION: u32 ="));
    assert!(!types.is_empty() && types.len() == versions.len(), "the scan of events.rs is broken");
    let topology = eventhive_system::subscriptions();
    let unconsumed: Vec<String> = types
        .iter()
        .zip(&versions)
        .map(|(name, version)| format!("{name}.v{version}"))
        .filter(|key| !topology.iter().any(|subscription| subscription.matches(key)))
        .collect();
    assert!(unconsumed.is_empty(), "domain events no service subscribes to: {unconsumed:?}");
}
