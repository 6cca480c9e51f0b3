//! What a request may point the server at: the hosts a target or a
//! redirected restore may reach (`server.target_allow`; link-local and cloud
//! metadata addresses never, unless listed), and the secrets a request may
//! carry (literal values only — never a file or variable of the server's).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};
use std::path::Path;

use coffer_model::component::Secret;
use coffer_model::target::{TargetKind, TargetSpec};
use ipnet::IpNet;

use crate::error::{ServiceError, ServiceResult};

/// Cloud metadata and host-agent addresses outside the link-local ranges
/// (AWS IPv6, Alibaba, Azure's wire server).
const METADATA: &[IpAddr] = &[
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16)),
];

fn link_local_or_metadata(ip: IpAddr) -> bool {
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local())
        }
    };
    link_local || METADATA.contains(&ip)
}

/// The host of a URL (`https://user@[::1]:9000/x` → `::1`).
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = hostport.strip_prefix('[') {
        return v6.split(']').next();
    }
    Some(hostport.split(':').next().unwrap_or(hostport)).filter(|h| !h.is_empty())
}

/// Refuses `host` (a name or an address; `field` names it in the message)
/// unless `server.target_allow` (`allow`) lets it through: with an empty
/// list any host but link-local and metadata addresses; with a list, only a
/// listed name, or addresses inside listed networks.
pub fn check_host(field: &str, host: &str, allow: &[String]) -> ServiceResult<()> {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => (host, 0)
            .to_socket_addrs()
            .map_err(|e| ServiceError::Invalid(format!("{field}: cannot resolve {host:?}: {e}")))?
            .map(|a| a.ip())
            .collect(),
    };
    let named = allow.iter().any(|a| a.eq_ignore_ascii_case(host));
    let networks: Vec<IpNet> = allow
        .iter()
        .filter_map(|a| {
            a.parse::<IpNet>()
                .ok()
                .or_else(|| a.parse::<IpAddr>().ok().map(IpNet::from))
        })
        .collect();
    let listed = |ip: &IpAddr| networks.iter().any(|n| n.contains(ip));
    if let Some(ip) = addrs
        .iter()
        .find(|ip| link_local_or_metadata(**ip) && !named && !listed(ip))
    {
        return Err(ServiceError::Forbidden(format!(
            "{field}: {host} is a link-local or cloud metadata address ({ip}); list it in \
             server.target_allow if it really is a storage server"
        )));
    }
    if allow.is_empty() || named || (!addrs.is_empty() && addrs.iter().all(listed)) {
        return Ok(());
    }
    Err(ServiceError::Forbidden(format!(
        "{field}: {host} is not in server.target_allow ({})",
        allow.join(", ")
    )))
}

/// Refuses a secret that is not a literal value: over the API, `{file}` and
/// `{env}` would make the server read its own files or environment and send
/// them elsewhere.
pub fn require_literal(field: &str, secret: Option<&Secret>) -> ServiceResult<()> {
    match secret {
        None | Some(Secret::Literal(_)) => Ok(()),
        Some(_) => Err(ServiceError::Forbidden(format!(
            "{field}: only a literal value is accepted over the API (\"{field}\": \"…\"); \
             {{\"file\": …}} and {{\"env\": …}} name the server's own files and variables"
        ))),
    }
}

/// Whether `a` and `b` overlap: one is inside (or is) the other.
pub fn overlaps(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Checks a target spec given over the API: literal secrets, no key file
/// of the server's, allowed hosts, and no local repository overlapping the
/// server's own directories (`protected`).
pub fn check_api_target(
    spec: &TargetSpec,
    allow: &[String],
    protected: &[&Path],
) -> ServiceResult<()> {
    match &spec.kind {
        TargetKind::Local(l) => {
            if let Some(p) = protected.iter().find(|p| overlaps(&l.path, p)) {
                return Err(ServiceError::Forbidden(format!(
                    "spec.path: {} overlaps the server's own directory {}",
                    l.path.display(),
                    p.display()
                )));
            }
            Ok(())
        }
        TargetKind::S3(s) => {
            require_literal("spec.access_key", Some(&s.access_key))?;
            require_literal("spec.secret_key", Some(&s.secret_key))?;
            let host = url_host(&s.endpoint).ok_or_else(|| {
                ServiceError::Invalid(format!("spec.endpoint: no host in {:?}", s.endpoint))
            })?;
            check_host("spec.endpoint", host, allow)
        }
        TargetKind::Sftp(s) => {
            require_literal("spec.password", s.password.as_ref())?;
            require_literal("spec.passphrase", s.passphrase.as_ref())?;
            if s.private_key.is_some() {
                return Err(ServiceError::Forbidden(
                    "spec.private_key: a key file on the server cannot be named over the API; \
                     use a password, or declare the target in coffer.toml"
                        .into(),
                ));
            }
            check_host("spec.host", &s.host, allow)
        }
        TargetKind::Ftp(f) => {
            require_literal("spec.password", Some(&f.password))?;
            check_host("spec.host", &f.host, allow)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_urls() {
        assert_eq!(url_host("https://s3.example.com/b"), Some("s3.example.com"));
        assert_eq!(url_host("http://127.0.0.1:3900"), Some("127.0.0.1"));
        assert_eq!(url_host("http://k:s@[::1]:9000/x"), Some("::1"));
        assert_eq!(url_host("http://"), None);
    }

    #[test]
    fn metadata_and_link_local_addresses_need_listing() {
        for h in [
            "169.254.169.254",
            "fe80::1",
            "fd00:ec2::254",
            "100.100.100.200",
        ] {
            assert!(
                matches!(check_host("f", h, &[]), Err(ServiceError::Forbidden(_))),
                "{h}"
            );
        }
        check_host("f", "169.254.169.254", &["169.254.0.0/16".into()]).unwrap();
        check_host("f", "127.0.0.1", &[]).unwrap();
    }

    #[test]
    fn an_allow_list_admits_only_its_hosts_and_networks() {
        let allow = vec!["10.0.0.0/8".to_owned(), "localhost".to_owned()];
        check_host("f", "10.1.2.3", &allow).unwrap();
        check_host("f", "localhost", &allow).unwrap();
        let e = check_host("spec.host", "192.168.1.1", &allow).unwrap_err();
        assert!(e.to_string().contains("spec.host") && e.to_string().contains("target_allow"));
    }

    #[test]
    fn only_literal_secrets() {
        require_literal("password", Some(&Secret::Literal("x".into()))).unwrap();
        let e = require_literal("password", Some(&Secret::File("/etc/shadow".into())))
            .unwrap_err()
            .to_string();
        assert!(e.contains("password") && e.contains("literal"), "{e}");
        assert!(require_literal("p", Some(&Secret::Env("HOME".into()))).is_err());
    }
}
