//! Compiles every contract under `proto/` with the pure-Rust `protox` compiler, so building
//! EventHive needs no system `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not with `env!` at compile time: the compiled build script is shared by
    // every checkout that uses the same target dir (cargo hashes path packages by their place in
    // the workspace), and a path baked into it would read another checkout's contracts.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "eventhive/common/v1/common.proto",
        "eventhive/identity/v1/identity.proto",
        "eventhive/catalog/v1/catalog.proto",
        "eventhive/ticketing/v1/ticketing.proto",
        "eventhive/payments/v1/payments.proto",
        "eventhive/notifications/v1/notifications.proto",
        "eventhive/analytics/v1/analytics.proto",
        "eventhive/waiting_room/v1/waiting_room.proto",
    ];
    let descriptors = protox::compile(files, [&root])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(descriptors)?;
    // Relative, so cargo looks in the checkout it is building, whichever ran this last.
    println!("cargo:rerun-if-changed=../../proto");
    Ok(())
}
