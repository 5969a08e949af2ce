//! TLS against a real server: a sandbox-style cluster with `ssl = on` and a
//! certificate from a CA this test makes. verify-full with that CA connects; a
//! wrong CA or a wrong host name is refused with a message saying which.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use supamigrate::cluster::{Cluster, ClusterSpec, ServerTls};
use supamigrate::connect::{probe, ConnInfo};
use supamigrate::ErrorKind;

pub(crate) struct Ca {
    pub(crate) cert: rcgen::Certificate,
    pub(crate) key: KeyPair,
}

pub(crate) fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// Stops the cluster when the test ends, however it ends.
pub(crate) struct Running(pub(crate) Cluster);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.stop();
    }
}

/// Creates and starts a cluster in a fresh temporary directory.
pub(crate) fn start_cluster(tls: Option<ServerTls>) -> (tempfile::TempDir, Running) {
    let dir = tempfile::Builder::new()
        .prefix("supamigrate-tls-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut cluster = Cluster::init(&ClusterSpec {
        dir: dir.path().join("cluster"),
        superuser: "admin".into(),
        settings: vec![],
        tls,
        bin_dir: None,
    })
    .unwrap();
    cluster.start().unwrap();
    (dir, Running(cluster))
}

pub(crate) fn url(c: &Cluster, host: &str, mode: &str, ca: &Path) -> ConnInfo {
    let info = c.superuser_conninfo("postgres");
    ConnInfo::parse(&format!(
        "host={host} port={} user={} password={} dbname=postgres sslmode={mode} sslrootcert={}",
        info.port,
        info.user,
        info.password.as_ref().unwrap().expose(),
        ca.display()
    ))
    .unwrap()
}

/// A server certificate for `localhost`, issued by `authority`.
pub(crate) fn localhost_tls(authority: &Ca) -> ServerTls {
    let server_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let server_cert = params
        .signed_by(&server_key, &authority.cert, &authority.key)
        .unwrap();
    ServerTls {
        cert_pem: server_cert.pem(),
        key_pem: server_key.serialize_pem(),
    }
}

#[tokio::test]
async fn verify_full_accepts_the_right_ca_and_refuses_wrong_ones() {
    let good = ca("supamigrate test CA");
    let other = ca("some other CA");
    let (dir, cluster) = start_cluster(Some(localhost_tls(&good)));
    let good_pem = dir.path().join("good-ca.pem");
    let other_pem = dir.path().join("other-ca.pem");
    std::fs::write(&good_pem, good.cert.pem()).unwrap();
    std::fs::write(&other_pem, other.cert.pem()).unwrap();
    let c = &cluster.0;

    // The right CA and host name: connected, encrypted.
    let p = probe(&url(c, "localhost", "verify-full", &good_pem))
        .await
        .expect("verify-full connects");
    assert!(p.tls, "the connection is encrypted");

    // A CA that did not issue the server's certificate.
    let e = probe(&url(c, "localhost", "verify-full", &other_pem))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Tls);
    assert!(
        e.to_string().contains("not issued by a CA in sslrootcert"),
        "{e}"
    );
    assert!(e.to_string().contains("other-ca.pem"), "{e}");
    assert!(e.hint().unwrap().contains("sslrootcert"));
    assert!(
        !e.to_string().contains(c.superuser_password().expose()),
        "no password in {e}"
    );

    // The right CA, but a host name the certificate does not name.
    let e = probe(&url(c, "127.0.0.1", "verify-full", &good_pem))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Tls);
    assert!(
        e.to_string().contains("not valid for host \"127.0.0.1\""),
        "{e}"
    );
    assert!(e.hint().unwrap().contains("verify-ca"));

    // verify-ca checks the chain only; the wrong CA is still refused there.
    assert!(
        probe(&url(c, "127.0.0.1", "verify-ca", &good_pem))
            .await
            .unwrap()
            .tls
    );
    let e = probe(&url(c, "127.0.0.1", "verify-ca", &other_pem))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Tls);

    // require and prefer encrypt without checking; disable does not encrypt.
    assert!(
        probe(&url(c, "127.0.0.1", "require", &other_pem))
            .await
            .unwrap()
            .tls
    );
    assert!(
        probe(&url(c, "127.0.0.1", "prefer", &other_pem))
            .await
            .unwrap()
            .tls
    );
    assert!(
        !probe(&url(c, "127.0.0.1", "disable", &other_pem))
            .await
            .unwrap()
            .tls
    );

    // A CA file that is not there is bad input, said plainly.
    let e = probe(&url(
        c,
        "localhost",
        "verify-full",
        &dir.path().join("missing.pem"),
    ))
    .await
    .unwrap_err();
    assert!(e.to_string().contains("missing.pem"), "{e}");
}

#[tokio::test]
async fn require_against_a_server_without_tls_is_refused_clearly() {
    let (_dir, cluster) = start_cluster(None);
    let mut info = cluster.0.superuser_conninfo("postgres");
    info.sslmode = supamigrate::connect::SslMode::Require;
    let e = probe(&info).await.unwrap_err();
    assert!(
        e.hint().unwrap().contains("does not offer TLS"),
        "{e}: {:?}",
        e.hint()
    );
}
