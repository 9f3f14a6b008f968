//! Fixtures shared by the monitor's unit tests.

use mmm_config::{Config, Program};

/// The seed's monitor configuration as corrected (`config/tests/fixtures/seed-fixed/mmm_mon.conf`).
pub fn seed_monitor_config() -> Config {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/tests/fixtures/seed-fixed/mmm_mon.conf");
    let text = std::fs::read_to_string(&file).expect("fixture");
    let name = file.to_str().expect("utf-8 path");
    Config::from_str_for_tests(&text, name, Program::Monitor).unwrap_or_else(|e| panic!("{e}"))
}
