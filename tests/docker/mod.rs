//! The Docker appliance on the real engine: `docker/test` builds the image around this
//! test's binary (the prebuilt path, models baked in), runs `docker/compose.yaml`, and
//! checks ingestion from the drop folder, cited answers over HTTP as the first admin, a
//! restart, the hardening (uid 1000, read-only root, no capabilities) and a clean stop.

use crate::common::{models_dir, repo_root};

#[test]
fn docker_appliance_serves_cited_answers_hardened_and_stops_cleanly() {
    let run = std::process::Command::new(repo_root().join("docker/test"))
        .arg(env!("CARGO_BIN_EXE_lore"))
        .env("LORE_MODELS_DIR", models_dir())
        .current_dir(repo_root())
        .output()
        .expect("docker/test (bash) could not be started");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "docker/test failed ({}):\n{}\n{stderr}",
        run.status,
        String::from_utf8_lossy(&run.stdout)
    );
    // The measurements (image size, cold start, RSS while answering), for --nocapture.
    for line in stderr.lines().filter(|l| l.contains(" metric ")) {
        eprintln!("{line}");
    }
    assert!(stderr.contains("docker-test: passed"), "{stderr}");
}
