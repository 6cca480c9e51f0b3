//! Times as the server records and shows them: Unix seconds in the
//! catalog, RFC 3339 on the wire and in export manifests.

/// RFC 3339 from Unix seconds.
pub fn rfc3339(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| secs.to_string())
}
