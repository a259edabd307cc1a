//! Any bytes through the text parser with the production limits: a panic or a run past
//! libFuzzer's `-timeout` is a finding (scripts/fuzz-ingest keeps it under
//! ingest/tests/fuzz-regressions/).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lore_ingest::{parse_bytes, DocumentFormat, Limits};

fuzz_target!(|data: &[u8]| {
    let _ = parse_bytes(
        data,
        DocumentFormat::Text,
        std::path::Path::new("fuzz-input"),
        &Limits::default(),
    );
});
