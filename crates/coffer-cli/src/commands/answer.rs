//! Showing a server's answers: as they came with `--json`, else read out of
//! the JSON for people (a missing field shows as `-`).

use serde_json::Value;

use crate::client::Answer;
use crate::output::{Output, human_bytes};

/// The server's JSON as it came with `--json`, else `human` of it.
pub fn print(out: Output, answer: &Answer, human: impl FnOnce(&Value) -> String) {
    if out.json {
        println!("{}", answer.text.trim_end());
    } else {
        let shown = human(&answer.value);
        if !shown.is_empty() {
            println!("{shown}");
        }
    }
}

/// A string field, or `-`.
pub fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

/// The items of an array field (none if it is not one).
pub fn lines(v: Option<&Vec<Value>>) -> impl Iterator<Item = &Value> {
    v.into_iter().flatten()
}

/// A byte count for people, or `-`.
pub fn size(v: &Value) -> String {
    v.as_u64().map_or("-".to_owned(), human_bytes)
}
