//! No input makes the parser panic: random text, and random mutations of a real config.

use mmm_config::{Config, Program};
use proptest::prelude::*;

const SAMPLE: &str = include_str!("fixtures/cluster3/mmm_common.conf");

fn programs() -> impl Strategy<Value = Program> {
    prop_oneof![
        Just(Program::Monitor),
        Just(Program::Agent),
        Just(Program::Control)
    ]
}

/// Lines built from the config's own vocabulary, so the parser gets deep into typing/validation.
fn config_line() -> impl Strategy<Value = String> {
    let words = prop::sample::select(vec![
        "<host",
        "<role",
        "<check",
        "<monitor>",
        "</monitor>",
        "</host>",
        "</role>",
        "<monitor_node",
        "<socket>",
        "</socket>",
        "<agent>",
        "</agent>",
        "ip",
        "ips",
        "hosts",
        "mode",
        "peer",
        "prefer",
        "this",
        "port",
        "db1",
        "db2",
        "default",
        "writer",
        "master",
        "slave",
        "exclusive",
        "balanced",
        "10.0.0.1",
        "10.0.0.1,10.0.0.2",
        "0.5",
        "-1",
        "1e9",
        ">",
        "/>",
        "#",
        "include",
        "active_master_role",
        "type",
        "ssl",
        "check_period",
        "99999",
        "\t",
        " ",
        ",",
    ]);
    prop::collection::vec(words, 0..5).prop_map(|w| w.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC*", program in programs()) {
        let _ = Config::from_str_for_tests(&text, "fuzz.conf", program);
    }

    #[test]
    fn vocabulary_lines_never_panic(lines in prop::collection::vec(config_line(), 0..40), program in programs()) {
        let text = lines.join("\n");
        if let Ok(c) = Config::from_str_for_tests(&text, "fuzz.conf", program) {
            let _ = c.render_effective();
        }
    }

    #[test]
    fn mutated_sample_never_panics(cut in 0..SAMPLE.len(), insert in "[ -~\n\t]{0,20}", program in programs()) {
        let mut text = SAMPLE.to_owned();
        let at = (0..=cut).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        text.insert_str(at, &insert);
        if let Ok(c) = Config::from_str_for_tests(&text, "fuzz.conf", program) {
            let _ = c.render_effective();
        }
    }
}
