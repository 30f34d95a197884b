//! The test plays the agent at the other end of a `tokio::io::duplex`.

use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::PermissionsExt;

use bytes::Bytes;
use jumpgate_proto::session::{Accepted, FileResult, Refusal, RefusalCode};
use tokio::io::DuplexStream;

use super::*;
use crate::errors::Refused;

/// Plays the agent's side: one message out.
async fn send(io: &mut DuplexStream, msg: &SessionMsg) -> std::io::Result<()> {
    io.write_all(&msg.to_bytes()).await
}

fn sha_hex(data: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(data);
    h.hex()
}

fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

async fn next(io: &mut DuplexStream, buf: &mut BytesMut) -> SessionMsg {
    let mut s = MsgStream::with_buffer(io, std::mem::take(buf));
    let msg = recv(&mut s).await.unwrap().expect("stream ended");
    *buf = s.into_parts().1;
    msg
}

fn local_file(dir: &Path, data: &[u8], mode: u32) -> PathBuf {
    let p = dir.join("local.bin");
    std::fs::write(&p, data).unwrap();
    std::fs::set_permissions(&p, Permissions::from_mode(mode)).unwrap();
    p
}

/// Agent side of an upload: accepts, collects the data, answers with
/// `answer(received, file_end)`.
async fn agent_upload(
    mut io: DuplexStream,
    answer: impl FnOnce(&[u8], &FileEnd) -> FileResult,
) -> (SessionRequest, Vec<u8>) {
    let mut buf = BytesMut::new();
    let SessionMsg::Open(req) = next(&mut io, &mut buf).await else {
        panic!("expected Open");
    };
    send(&mut io, &SessionMsg::Accepted(Accepted::default()))
        .await
        .unwrap();
    let mut got = Vec::new();
    loop {
        match next(&mut io, &mut buf).await {
            SessionMsg::FileData(d) => {
                assert!(d.len() <= CHUNK);
                got.extend_from_slice(&d);
            }
            SessionMsg::FileEnd(end) => {
                let result = answer(&got, &end);
                send(&mut io, &SessionMsg::FileResult(result))
                    .await
                    .unwrap();
                return (req, got);
            }
            other => panic!("unexpected {}", other.name()),
        }
    }
}

#[tokio::test]
async fn upload_streams_the_file_and_checks_the_hash() {
    let dir = tempfile::tempdir().unwrap();
    let data = content(3 * CHUNK + 123);
    let path = local_file(dir.path(), &data, 0o640);
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let agent = tokio::spawn(agent_upload(theirs, |got, end| {
        assert_eq!(end.size, got.len() as u64);
        assert_eq!(end.sha256, sha_hex(got));
        FileResult {
            ok: true,
            sha256: sha_hex(got),
            message: String::new(),
        }
    }));
    let src = LocalFile::open(&path).await.unwrap();
    let out = upload(ours, src, "/srv/dst", &ProgressBar::hidden())
        .await
        .unwrap();
    let (req, got) = agent.await.unwrap();
    assert_eq!(got, data);
    assert_eq!(
        out,
        Outcome {
            bytes: data.len() as u64,
            sha256: sha_hex(&data)
        }
    );
    assert_eq!(
        req,
        SessionRequest::Upload {
            path: "/srv/dst".into(),
            mode: 0o640,
            size: data.len() as u64,
            file_name: Some("local.bin".into()),
        }
    );
}

#[tokio::test]
async fn upload_fails_when_the_agent_hash_differs_or_it_says_no() {
    let dir = tempfile::tempdir().unwrap();
    let path = local_file(dir.path(), b"hello", 0o600);

    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(agent_upload(theirs, |_, _| FileResult {
        ok: true,
        sha256: "00".repeat(32),
        message: String::new(),
    }));
    let src = LocalFile::open(&path).await.unwrap();
    let err = upload(ours, src, "/x", &ProgressBar::hidden())
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("hash mismatch"), "{err:#}");

    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(agent_upload(theirs, |_, _| FileResult {
        ok: false,
        sha256: String::new(),
        message: "read-only file system".into(),
    }));
    let src = LocalFile::open(&path).await.unwrap();
    let err = upload(ours, src, "/x", &ProgressBar::hidden())
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("read-only file system"),
        "{err:#}"
    );
}

#[tokio::test]
async fn upload_reports_an_agent_giving_up_midway() {
    let dir = tempfile::tempdir().unwrap();
    let path = local_file(dir.path(), &content(64 * CHUNK), 0o600);
    let (ours, mut theirs) = tokio::io::duplex(16 * 1024);
    tokio::spawn(async move {
        let mut buf = BytesMut::new();
        next(&mut theirs, &mut buf).await;
        send(&mut theirs, &SessionMsg::Accepted(Accepted::default()))
            .await
            .unwrap();
        next(&mut theirs, &mut buf).await;
        let verdict = FileResult {
            ok: false,
            sha256: String::new(),
            message: "no space left on device".into(),
        };
        send(&mut theirs, &SessionMsg::FileResult(verdict))
            .await
            .unwrap();
        // Stop reading but keep the stream open, as a slow agent would.
        std::future::pending::<()>().await;
    });
    let src = LocalFile::open(&path).await.unwrap();
    let err = upload(ours, src, "/x", &ProgressBar::hidden())
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("no space left on device"),
        "{err:#}"
    );
}

#[tokio::test]
async fn upload_refused_carries_the_agent_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = local_file(dir.path(), b"x", 0o600);
    let (ours, mut theirs) = tokio::io::duplex(1024);
    tokio::spawn(async move {
        let mut buf = BytesMut::new();
        next(&mut theirs, &mut buf).await;
        let refusal = Refusal {
            code: RefusalCode::PermissionDenied,
            message: "permission denied".into(),
        };
        send(&mut theirs, &SessionMsg::Refused(refusal))
            .await
            .unwrap();
    });
    let src = LocalFile::open(&path).await.unwrap();
    let err = upload(ours, src, "/root/x", &ProgressBar::hidden())
        .await
        .unwrap_err();
    assert_eq!(
        err.downcast_ref::<Refused>().unwrap().0.message,
        "permission denied"
    );
}

#[tokio::test]
async fn missing_or_directory_sources_are_rejected_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = LocalFile::open(&missing).await.unwrap_err();
    assert!(format!("{err:#}").contains("nope"), "{err:#}");
    let err = LocalFile::open(dir.path()).await.unwrap_err();
    assert!(format!("{err:#}").contains("is a directory"), "{err:#}");
}

/// Agent side of a download: sends `data` in chunks and `end`.
async fn agent_download(
    mut io: DuplexStream,
    data: Vec<u8>,
    end: Option<FileEnd>,
) -> SessionRequest {
    let mut buf = BytesMut::new();
    let SessionMsg::Open(req) = next(&mut io, &mut buf).await else {
        panic!("expected Open");
    };
    let accepted = Accepted {
        size: Some(data.len() as u64),
        mode: Some(0o640),
    };
    send(&mut io, &SessionMsg::Accepted(accepted))
        .await
        .unwrap();
    for chunk in data.chunks(CHUNK) {
        send(
            &mut io,
            &SessionMsg::FileData(Bytes::copy_from_slice(chunk)),
        )
        .await
        .unwrap();
    }
    if let Some(end) = end {
        send(&mut io, &SessionMsg::FileEnd(end)).await.unwrap();
    }
    req
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn download_writes_a_verified_file_with_the_remote_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = content(5 * CHUNK + 7);
    let end = FileEnd {
        size: data.len() as u64,
        sha256: sha_hex(&data),
    };
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let agent = tokio::spawn(agent_download(theirs, data.clone(), Some(end)));
    let dest = download_target(dir.path(), "/var/log/app.log").unwrap();
    let out = download(ours, "/var/log/app.log", &dest, &ProgressBar::hidden())
        .await
        .unwrap();
    assert_eq!(
        agent.await.unwrap(),
        SessionRequest::Download {
            path: "/var/log/app.log".into()
        }
    );
    assert_eq!(out.sha256, sha_hex(&data));
    assert_eq!(out.bytes, data.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    assert_eq!(dir_entries(dir.path()), vec!["app.log".to_owned()]);
}

#[tokio::test]
async fn failed_downloads_leave_no_file_behind() {
    let data = content(2 * CHUNK);
    let bad_hash = FileEnd {
        size: data.len() as u64,
        sha256: "00".repeat(32),
    };
    let bad_size = FileEnd {
        size: 1,
        sha256: sha_hex(&data),
    };
    for (end, expected) in [
        (Some(bad_hash), "hash mismatch"),
        (Some(bad_size), "size mismatch"),
        (None, "connection to the gateway was lost"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.bin");
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let agent = tokio::spawn(agent_download(theirs, data.clone(), end));
        let err = download(ours, "/data", &dest, &ProgressBar::hidden())
            .await
            .unwrap_err();
        agent.await.unwrap();
        assert!(format!("{err:#}").contains(expected), "{err:#}");
        assert!(
            dir_entries(dir.path()).is_empty(),
            "{:?}",
            dir_entries(dir.path())
        );
    }
}

#[tokio::test]
async fn download_refused_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (ours, mut theirs) = tokio::io::duplex(1024);
    tokio::spawn(async move {
        let mut buf = BytesMut::new();
        next(&mut theirs, &mut buf).await;
        let refusal = Refusal {
            code: RefusalCode::NotFound,
            message: "no such file".into(),
        };
        send(&mut theirs, &SessionMsg::Refused(refusal))
            .await
            .unwrap();
    });
    let dest = dir.path().join("x");
    let err = download(ours, "/missing", &dest, &ProgressBar::hidden())
        .await
        .unwrap_err();
    assert_eq!(
        err.downcast_ref::<Refused>().unwrap().0.message,
        "no such file"
    );
    assert!(dir_entries(dir.path()).is_empty());
}

#[test]
fn download_target_resolves_directories() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(download_target(d, "/etc/hosts").unwrap(), d.join("hosts"));
    assert_eq!(
        download_target(&d.join("new"), "/etc/hosts").unwrap(),
        d.join("new")
    );
    assert!(download_target(d, "/etc/").is_err());
    let missing_dir = format!("{}/missing/", d.display());
    assert!(download_target(Path::new(&missing_dir), "/etc/hosts").is_err());
}

#[test]
fn download_target_never_replaces_a_device() {
    let err = download_target(Path::new("/dev/null"), "/etc/hosts").unwrap_err();
    assert!(format!("{err:#}").contains("not a regular file"), "{err:#}");
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
}
