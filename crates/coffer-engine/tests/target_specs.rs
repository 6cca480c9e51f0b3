//! `[[targets]]` from coffer.toml, opened and validated against the real
//! servers: the spec → storage mapping for every kind, secrets included.

use coffer_model::target::parse_targets;
use coffer_targets::OpenTarget;
use coffer_targets::validate::ValidateOptions;
use coffer_testkit::service_setting;

#[test]
fn every_kind_of_target_opens_from_its_spec_and_validates() {
    let (Some(s3), Some(bucket), Some(ftp_port), Some(sftp_port), Some(ca), Some(host_key_file)) = (
        service_setting("COFFER_TEST_S3_ENDPOINT"),
        service_setting("COFFER_TEST_S3_BUCKET"),
        service_setting("COFFER_TEST_FTP_PORT"),
        service_setting("COFFER_TEST_SFTP_PORT"),
        service_setting("COFFER_TEST_FTPS_CA"),
        service_setting("COFFER_TEST_SFTP_HOST_KEY_PUB"),
    ) else {
        return;
    };
    let host_key = std::fs::read_to_string(host_key_file).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
        [[targets]]
        name = "disk"
        kind = "local"
        path = {local:?}

        [[targets]]
        name = "offsite"
        kind = "s3"
        endpoint = "{s3}"
        region = "garage"
        bucket = "{bucket}"
        prefix = "specs"
        access_key = {{ env = "COFFER_TEST_S3_ACCESS_KEY" }}
        secret_key = {{ env = "COFFER_TEST_S3_SECRET_KEY" }}

        [[targets]]
        name = "nas"
        kind = "sftp"
        host = "127.0.0.1"
        port = {sftp_port}
        user = "coffer_test"
        password = {{ env = "COFFER_TEST_SFTP_PASSWORD" }}
        host_key = "{host_key}"
        directory = "/home/coffer_test/specs"

        [[targets]]
        name = "palette"
        kind = "ftp"
        host = "127.0.0.1"
        port = {ftp_port}
        user = "coffer_test"
        password = {{ env = "COFFER_TEST_FTP_PASSWORD" }}
        directory = "/specs"
        tls = "explicit"
        ca_file = {ca:?}
        "#,
        local = tmp.path().join("repo"),
        host_key = host_key.trim(),
    );
    let specs = parse_targets(&toml).expect("valid targets");
    assert_eq!(specs.len(), 4);
    for spec in &specs {
        let target = OpenTarget::open(spec).unwrap_or_else(|e| panic!("{}: {e}", spec.name));
        let report = target.validate(ValidateOptions::default());
        assert!(report.ok, "{}: {report:#?}", spec.name);
    }
}
