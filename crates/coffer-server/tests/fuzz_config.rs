//! Fuzzing the configuration parser: the example `coffer.toml` (every
//! section) with random edits. Parsed, or refused with a message naming the
//! file — never a panic. `COFFER_FUZZ_CASES` cases (docs/testing.md).

use std::path::Path;

use coffer_server::config::ServerConfig;
use proptest::prelude::*;

const EXAMPLE: &str = include_str!("../../../examples/coffer.toml");

proptest! {
    #![proptest_config(coffer_testkit::fuzz::config())]

    #[test]
    fn the_example_config_mutated_parses_or_is_refused(
        bytes in coffer_testkit::fuzz::mutated(EXAMPLE.as_bytes().to_vec())
    ) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = ServerConfig::parse(&text, Path::new("/srv"), Path::new("/etc/coffer.toml")) {
            prop_assert!(e.to_string().contains("/etc/coffer.toml"), "{e}");
        }
    }
}
