//! S3 naming rules shared by the S3 component, the S3 target and their one
//! client: which bucket names and object keys Coffer sends to a server.
//!
//! Requests address objects by URL (`endpoint/bucket/key`), and URL paths
//! are normalised on the way: a `..` segment removes the one before it, so
//! the key `../other-bucket/x` would write into *another bucket*; `.`
//! segments vanish, and a backslash is read as `/` by URL parsers. Such keys
//! therefore cannot be addressed faithfully and are refused everywhere, as is
//! a leading `/`. Empty segments (`a//b`) are valid keys and kept.

/// Checks `name` against the S3 bucket naming rules that every S3 server
/// accepts: 3–63 characters of lowercase letters, digits, `.` and `-`,
/// starting and ending with a letter or digit, no `..`, `.-` or `-.`, and
/// not an IPv4 address.
pub fn check_bucket_name(name: &str) -> Result<(), String> {
    let rule = "a bucket name is 3 to 63 characters of a-z, 0-9, '.' and '-', starting and \
                ending with a letter or digit, without '..' and not an IP address";
    let chars_ok = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let ends_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let bytes = name.as_bytes();
    let ok = (3..=63).contains(&name.len())
        && chars_ok
        && ends_ok(bytes.first())
        && ends_ok(bytes.last())
        && !name.contains("..")
        && !name.contains(".-")
        && !name.contains("-.")
        && name.parse::<std::net::Ipv4Addr>().is_err();
    if ok {
        Ok(())
    } else {
        Err(format!("invalid bucket name {name:?}: {rule}"))
    }
}

/// Checks that `key` (an object key, or a key prefix) can be addressed
/// through a URL without normalisation changing which object it names: no
/// `.` or `..` segment, no backslash, no leading `/`.
pub fn check_object_key(key: &str) -> Result<(), String> {
    let problem = if key.starts_with('/') {
        Some("it starts with '/'")
    } else if key.contains('\\') {
        Some("it contains a backslash")
    } else if key.split('/').any(|s| s == "." || s == "..") {
        Some("it has a '.' or '..' path segment")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(format!(
            "object key {key:?} is refused: {p}, which URL normalisation would turn into \
             another key (possibly in another bucket)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        for ok in ["abc", "coffer-test", "my.bucket.v2", "a1b", &"a".repeat(63)] {
            assert!(check_bucket_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ab",
            &"a".repeat(64),
            "Upper",
            "under_score",
            "-start",
            "end-",
            ".start",
            "a..b",
            "a.-b",
            "a-.b",
            "192.168.5.4",
            "../other",
            "a/b",
            "a\\b",
            "spa ce",
        ] {
            let e = check_bucket_name(bad).unwrap_err();
            assert!(e.contains("invalid bucket name"), "{bad}: {e}");
        }
    }

    #[test]
    fn object_keys() {
        for ok in [
            "a",
            "a/b",
            "x//y",
            "dots/..hidden/x..",
            "a/",
            "",
            ".a",
            "a./b",
        ] {
            assert!(check_object_key(ok).is_ok(), "{ok}");
        }
        for bad in [
            "../other/x",
            "a/../b",
            "a/./b",
            ".",
            "..",
            "a/..",
            "/abs",
            "a\\b",
            "..\\x",
        ] {
            assert!(check_object_key(bad).is_err(), "{bad}");
        }
    }
}
