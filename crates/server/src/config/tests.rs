use super::*;

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_valid_fixture_loads() {
    let files = fixtures("valid");
    assert!(files.len() >= 2, "fixtures missing: {files:?}");
    for f in files {
        Config::load(Some(&f), RawConfig::default())
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
}

#[test]
fn every_invalid_fixture_is_refused_naming_the_key() {
    let files = fixtures("invalid");
    assert!(files.len() >= 4, "fixtures missing: {files:?}");
    for f in files {
        // Each invalid fixture names the key it gets wrong in its first line:
        // `# expect: <text the error must contain>`.
        let text = std::fs::read_to_string(&f).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks an `# expect:` line", f.display()));
        let err = Config::load(Some(&f), RawConfig::default()).expect_err(&f.display().to_string());
        assert!(
            err.to_string().contains(expect),
            "{}: `{err}` lacks `{expect}`",
            f.display()
        );
    }
}

#[test]
fn flags_win_over_the_file() {
    let file = fixtures("valid")
        .into_iter()
        .find(|f| f.ends_with("full.toml"))
        .unwrap();
    let flags = RawConfig {
        listen: Some("127.0.0.1:9999".into()),
        ..RawConfig::default()
    };
    let cfg = Config::load(Some(&file), flags).unwrap();
    assert_eq!(cfg.listen, "127.0.0.1:9999".parse().unwrap());
    assert_eq!(cfg.hostname, "support.example.com");
    assert_eq!(cfg.agent_heartbeat, Duration::from_secs(15));
    assert_eq!(cfg.endpoint_offline_after, None, "off");
    assert_eq!(cfg.audit_verify_every, Some(Duration::from_secs(6 * 3600)));
    assert_eq!(
        cfg.support_retention,
        Some(Duration::from_secs(180 * 86_400))
    );
    assert_eq!(
        cfg.webhook_delivery_retention,
        Duration::from_secs(14 * 86_400)
    );
    assert_eq!(
        cfg.listen_address_file.as_deref(),
        Some(Path::new("/run/jumpgate/listen-address"))
    );
}

#[test]
fn defaults_need_only_a_data_dir() {
    let cfg = Config::validate(RawConfig {
        data_dir: Some("/tmp/x".into()),
        ..RawConfig::default()
    })
    .unwrap();
    assert_eq!(cfg.listen, "0.0.0.0:443".parse().unwrap());
    assert_eq!(cfg.tls.site, TlsSource::Generated);
    assert_eq!(cfg.tls.portal, None);
    assert_eq!(cfg.hostname, "localhost");
    assert_eq!(cfg.endpoint_offline_after, Some(Duration::from_secs(900)));
    assert_eq!(cfg.audit_verify_every, Some(Duration::from_secs(3600)));
    assert_eq!(
        cfg.webhook_delivery_retention,
        Duration::from_secs(7 * 86_400)
    );
    let err = Config::validate(RawConfig::default()).unwrap_err();
    assert!(err.to_string().contains("data_dir"));
}

#[test]
fn redirect_port_must_differ_unless_both_are_ephemeral() {
    let raw = |l: &str, r: &str| RawConfig {
        data_dir: Some("/tmp/x".into()),
        listen: Some(l.into()),
        redirect_listen: Some(r.into()),
        ..RawConfig::default()
    };
    let err = Config::validate(raw("0.0.0.0:443", "0.0.0.0:443")).unwrap_err();
    assert!(err.to_string().contains("redirect_listen"));
    // Port 0 twice is two ports picked at run time, not a clash.
    let c = Config::validate(raw("127.0.0.1:0", "127.0.0.1:0")).unwrap();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    assert_eq!((c.listen, c.redirect_listen), (any, Some(any)));
}

#[test]
fn the_ssh_port_is_off_by_default_validated_and_apart_from_the_others() {
    let raw = |ssh: Option<&str>| RawConfig {
        data_dir: Some("/tmp/x".into()),
        listen: Some("0.0.0.0:443".into()),
        redirect_listen: Some("0.0.0.0:80".into()),
        ssh: RawSsh {
            listen: ssh.map(str::to_owned),
            certificate_lifetime: None,
        },
        ..RawConfig::default()
    };
    assert_eq!(Config::validate(raw(None)).unwrap().ssh_listen, None);
    let c = Config::validate(raw(Some("0.0.0.0:22"))).unwrap();
    assert_eq!(c.ssh_listen, Some("0.0.0.0:22".parse().unwrap()));
    for bad in ["22", "0.0.0.0:443", "0.0.0.0:80"] {
        let err = Config::validate(raw(Some(bad))).unwrap_err().to_string();
        assert!(err.contains("ssh.listen"), "{bad}: {err}");
    }
    // The certificates' lifetime: 12 h unless set, within 1m..=7d.
    assert_eq!(
        Config::validate(raw(None)).unwrap().ssh_cert_lifetime,
        std::time::Duration::from_secs(12 * 3600)
    );
    let life = |v: &str| {
        let mut r = raw(None);
        r.ssh.certificate_lifetime = Some(v.to_owned());
        Config::validate(r)
    };
    assert_eq!(
        life("30m").unwrap().ssh_cert_lifetime,
        std::time::Duration::from_secs(1800)
    );
    for bad in ["10s", "8d", "soon"] {
        let err = life(bad).unwrap_err().to_string();
        assert!(err.contains("ssh.certificate_lifetime"), "{bad}: {err}");
    }
    // In a file, an unknown key of the section is named.
    let err = toml::from_str::<RawConfig>("[ssh]\nlisten = \"0.0.0.0:22\"\nport = 22\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("port"), "{err}");
}

#[test]
fn public_url_is_an_origin_and_loopback_sites_accept_their_aliases() {
    let raw = |url: Option<&str>, host: Option<&str>| RawConfig {
        data_dir: Some("/x".into()),
        public_url: url.map(str::to_owned),
        hostname: host.map(str::to_owned),
        ..RawConfig::default()
    };
    let c = Config::validate(raw(None, None)).unwrap();
    assert_eq!(
        c.origins(8443),
        [
            "https://localhost:8443",
            "https://127.0.0.1:8443",
            "https://[::1]:8443"
        ]
    );
    let c = Config::validate(raw(None, Some("support.example.com"))).unwrap();
    assert_eq!(c.origins(443), ["https://support.example.com"]);
    let c = Config::validate(raw(
        Some("https://Support.example.com:443/"),
        Some("gw.internal"),
    ))
    .unwrap();
    assert_eq!(c.origins(8443), ["https://support.example.com"]);
    let c = Config::validate(raw(Some("https://[2001:db8::1]:9443"), None)).unwrap();
    assert_eq!(c.origins(1), ["https://[2001:db8::1]:9443"]);
    for bad in [
        "http://support.example.com",
        "https://support.example.com/console",
        "https://user@support.example.com",
        "https://support.example.com?x=1",
        "https://bad_host",
        "support.example.com",
        "https://host:0",
    ] {
        let err = Config::validate(raw(Some(bad), None)).expect_err(bad);
        assert!(err.to_string().contains("`public_url`"), "{bad}: {err}");
    }
}

#[test]
fn connection_limits_default_from_max_connections_and_are_validated() {
    let raw = |total: Option<usize>, unauth: Option<usize>, per: Option<usize>| RawConfig {
        data_dir: Some("/x".into()),
        limits: RawLimits {
            max_connections: total,
            max_unauthenticated: unauth,
            max_unauthenticated_per_address: per,
            ..RawLimits::default()
        },
        ..RawConfig::default()
    };
    let c = Config::validate(raw(Some(40), None, None)).unwrap();
    assert_eq!(c.limits.max_unauthenticated, 20);
    assert_eq!(c.limits.max_unauthenticated_per_address, 20);
    let c = Config::validate(raw(None, None, None)).unwrap();
    assert_eq!(c.limits.max_unauthenticated, 1024);
    assert_eq!(c.limits.max_unauthenticated_per_address, 64);
    assert_eq!(c.limits.request_body_timeout, Duration::from_secs(60));
    assert_eq!(c.limits.idle_timeout, Duration::from_secs(60));
    let err = Config::validate(raw(Some(40), Some(10), Some(11))).unwrap_err();
    assert!(
        err.to_string().contains("max_unauthenticated_per_address"),
        "{err}"
    );
    assert!(Config::validate(raw(Some(40), Some(0), None)).is_err());
}

#[test]
fn blobs_default_to_local_and_urls_name_the_bucket_and_prefix() {
    let raw = |blobs: RawBlobs| RawConfig {
        data_dir: Some("/x".into()),
        blobs,
        ..RawConfig::default()
    };
    let cfg = Config::validate(raw(RawBlobs::default())).unwrap();
    assert_eq!(cfg.blobs, BlobsConfig::Local);
    let cfg = Config::validate(raw(RawBlobs {
        url: Some("s3://recordings/site-a/".into()),
        endpoint: Some("http://127.0.0.1:9000/".into()),
        ..RawBlobs::default()
    }))
    .unwrap();
    assert_eq!(
        cfg.blobs,
        BlobsConfig::S3 {
            bucket: "recordings".into(),
            prefix: "site-a".into(),
            endpoint: Some("http://127.0.0.1:9000".into()),
            region: "us-east-1".into(),
            access_key_id: None,
            secret_key_file: None,
            session_token_file: None,
        }
    );
    assert_eq!(cfg.blobs.describe(), "s3://recordings/site-a");
    let cfg = Config::validate(raw(RawBlobs {
        url: Some("az://recordings".into()),
        ..RawBlobs::default()
    }))
    .unwrap();
    assert_eq!(cfg.blobs.describe(), "az://recordings");
    // S3-only settings are refused for Azure, naming the key.
    let err = Config::validate(raw(RawBlobs {
        url: Some("az://recordings".into()),
        region: Some("eu-west-1".into()),
        ..RawBlobs::default()
    }))
    .unwrap_err();
    assert!(err.to_string().contains("`blobs.region`"), "{err}");
}

#[test]
fn the_portal_host_name_its_certificate_and_its_origin() {
    let raw = |host: Option<&str>, cert: Option<&str>, key: Option<&str>| RawConfig {
        data_dir: Some("/x".into()),
        hostname: Some("gw.example.com".into()),
        support: RawSupport {
            portal_hostname: host.map(str::to_owned),
            portal_tls_cert: cert.map(PathBuf::from),
            portal_tls_key: key.map(PathBuf::from),
            assist_binary: None,
        },
        ..RawConfig::default()
    };
    let c = Config::validate(raw(Some("Support.Example.com."), None, None)).unwrap();
    assert_eq!(c.portal_hostname(), Some("support.example.com"));
    assert_eq!(c.tls.portal.as_ref().unwrap().files, None);
    assert_eq!(
        c.portal_origin(8443).as_deref(),
        Some("https://support.example.com:8443")
    );
    assert_eq!(
        c.portal_origin(443).as_deref(),
        Some("https://support.example.com")
    );
    let c = Config::validate(raw(
        Some("support.example.com"),
        Some("c.pem"),
        Some("k.pem"),
    ))
    .unwrap();
    assert_eq!(
        c.tls.portal.unwrap().files,
        Some((PathBuf::from("c.pem"), PathBuf::from("k.pem")))
    );
    // Behind port forwarding: the external port of public_url.
    let mut r = raw(Some("support.example.com"), None, None);
    r.public_url = Some("https://gw.example.com:9443".into());
    let c = Config::validate(r).unwrap();
    assert_eq!(
        c.portal_origin(8443).as_deref(),
        Some("https://support.example.com:9443")
    );
    // No portal host name: no portal origin.
    let c = Config::validate(raw(None, None, None)).unwrap();
    assert_eq!((c.portal_hostname(), c.portal_origin(443)), (None, None));

    for (bad, key) in [
        (
            raw(Some("gw.example.com"), None, None),
            "support.portal_hostname",
        ),
        (raw(Some("bad_host"), None, None), "support.portal_hostname"),
        (raw(Some("10.0.0.1"), None, None), "support.portal_hostname"),
        (
            raw(Some("s.example.com"), Some("c.pem"), None),
            "support.portal_tls_key",
        ),
        (
            raw(Some("s.example.com"), None, Some("k.pem")),
            "support.portal_tls_cert",
        ),
        (
            raw(None, Some("c.pem"), Some("k.pem")),
            "support.portal_tls_cert",
        ),
    ] {
        let err = Config::validate(bad).unwrap_err().to_string();
        assert!(err.contains(key), "{err} lacks {key}");
    }
    // Flags win over the file, as for every other setting.
    let file = RawConfig {
        support: RawSupport {
            portal_hostname: Some("a.example.com".into()),
            ..RawSupport::default()
        },
        ..RawConfig::default()
    };
    let merged = file.merged_with(raw(Some("b.example.com"), None, None));
    assert_eq!(
        merged.support.portal_hostname.as_deref(),
        Some("b.example.com")
    );
    let toml: RawConfig =
        toml::from_str("[support]\nportal_hostname = \"help.example.com\"\n").unwrap();
    assert_eq!(
        toml.support.portal_hostname.as_deref(),
        Some("help.example.com")
    );
}

#[test]
fn the_assist_binary_must_be_a_file() {
    let raw = |p: &str| RawConfig {
        data_dir: Some("/x".into()),
        support: RawSupport {
            assist_binary: Some(PathBuf::from(p)),
            ..RawSupport::default()
        },
        ..RawConfig::default()
    };
    let err = Config::validate(raw("/nonexistent/jumpgate-assist"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("support.assist_binary"), "{err}");
    let exe = std::env::current_exe().unwrap();
    let c = Config::validate(raw(exe.to_str().unwrap())).unwrap();
    assert_eq!(c.assist_binary.as_deref(), Some(exe.as_path()));
}
