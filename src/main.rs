//! The `lore` binary: CLI, service and answering.
fn main() {}
