use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use aws_lc_rs::digest;
use bytes::Bytes;
use jumpgate_proto::session::{
    CHUNK, FileEnd, FileResult, RefusalCode, SessionKind, SessionMsg, SessionRequest,
};

use super::{Served, Tech, ended, pattern};
use crate::sessions::SessionError;
use jumpgate_net::digest::hex;

fn sha256(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn upload(path: &Path, mode: u32, size: usize, file_name: Option<&str>) -> SessionRequest {
    SessionRequest::Upload {
        path: path.to_str().unwrap().to_owned(),
        mode,
        size: size as u64,
        file_name: file_name.map(str::to_owned),
    }
}

/// Names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

async fn send_file(tech: &mut Tech, data: &[u8]) {
    for chunk in data.chunks(CHUNK) {
        tech.send(&SessionMsg::FileData(Bytes::copy_from_slice(chunk)))
            .await;
    }
}

async fn file_result(tech: &mut Tech) -> FileResult {
    match tech.recv().await {
        Some(SessionMsg::FileResult(r)) => r,
        other => panic!("expected FileResult, got {other:?}"),
    }
}

/// Runs a whole upload of `data`, announcing `end`.
async fn run_upload(req: SessionRequest, data: &[u8], end: FileEnd) -> (FileResult, Tech, Served) {
    let (mut tech, served) = Tech::open(req).await;
    tech.accepted().await;
    send_file(&mut tech, data).await;
    tech.send(&SessionMsg::FileEnd(end)).await;
    (file_result(&mut tech).await, tech, served)
}

#[tokio::test]
async fn upload_writes_content_and_mode_after_verifying_the_hash() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("tool.bin");
    std::fs::write(&dest, b"old content").unwrap();
    let data = pattern(3 * CHUNK + 123);
    let end = FileEnd {
        size: data.len() as u64,
        sha256: sha256(&data),
    };
    let req = upload(&dest, 0o750, data.len(), None);
    let (result, tech, served) = run_upload(req, &data, end).await;
    assert!(result.ok, "{result:?}");
    assert_eq!(result.sha256, sha256(&data));
    assert!(std::fs::read(&dest).unwrap() == data, "content differs");
    let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o750);
    assert_eq!(entries(dir.path()), ["tool.bin"], "no temporary file left");
    let summary = ended(tech, served).await.unwrap();
    assert_eq!(summary.kind, SessionKind::Upload);
    assert_eq!(summary.bytes_in, data.len() as u64);
}

#[tokio::test]
async fn upload_into_a_directory_uses_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = b"#!/bin/sh\necho hi\n".to_vec();
    let end = FileEnd {
        size: data.len() as u64,
        sha256: sha256(&data),
    };
    let req = upload(dir.path(), 0o644, data.len(), Some("hi.sh"));
    let (result, tech, served) = run_upload(req, &data, end).await;
    assert!(result.ok, "{result:?}");
    assert_eq!(std::fs::read(dir.path().join("hi.sh")).unwrap(), data);
    assert_eq!(entries(dir.path()), ["hi.sh"]);
    ended(tech, served).await.unwrap();
}

#[tokio::test]
async fn upload_with_a_wrong_hash_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("x.bin");
    let data = pattern(CHUNK + 1);
    let end = FileEnd {
        size: data.len() as u64,
        sha256: sha256(b"something else"),
    };
    let (result, tech, served) =
        run_upload(upload(&dest, 0o644, data.len(), None), &data, end).await;
    assert!(!result.ok);
    assert!(result.message.contains("SHA-256"), "{}", result.message);
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
    let err = ended(tech, served).await.unwrap_err();
    assert!(matches!(err, SessionError::Upload(_)), "{err:?}");
}

#[tokio::test]
async fn upload_with_a_wrong_size_leaves_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("x.txt");
    std::fs::write(&dest, b"old").unwrap();
    let data = b"new content".to_vec();
    let end = FileEnd {
        size: data.len() as u64 + 1,
        sha256: sha256(&data),
    };
    let (result, tech, served) =
        run_upload(upload(&dest, 0o644, data.len(), None), &data, end).await;
    assert!(!result.ok);
    assert!(result.message.contains("size"), "{}", result.message);
    assert_eq!(std::fs::read(&dest).unwrap(), b"old");
    assert_eq!(entries(dir.path()), ["x.txt"]);
    ended(tech, served).await.unwrap_err();
}

#[tokio::test]
async fn upload_to_a_missing_directory_is_refused_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("missing").join("x");
    let (mut tech, served) = Tech::open(upload(&dest, 0o644, 1, None)).await;
    assert_eq!(tech.refused().await.code, RefusalCode::NotFound);
    let err = ended(tech, served).await.unwrap_err();
    assert!(matches!(err, SessionError::Refused(_)), "{err:?}");
    assert!(entries(dir.path()).is_empty());
}

#[tokio::test]
async fn upload_requests_that_make_no_sense_are_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        upload(Path::new("relative/x"), 0o644, 1, None),
        upload(dir.path(), 0o644, 1, None),
        upload(dir.path(), 0o644, 1, Some("../escape")),
        upload(dir.path(), 0o644, 1, Some("..")),
    ];
    for req in cases {
        let (mut tech, served) = Tech::open(req.clone()).await;
        let refusal = tech.refused().await;
        assert_eq!(
            refusal.code,
            RefusalCode::InvalidRequest,
            "{req:?}: {refusal:?}"
        );
        ended(tech, served).await.unwrap_err();
    }
    assert!(entries(dir.path()).is_empty());
}

#[tokio::test]
async fn upload_cut_off_midway_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("big.bin");
    let data = pattern(4 * CHUNK);
    let (mut tech, served) = Tech::open(upload(&dest, 0o644, data.len(), None)).await;
    tech.accepted().await;
    send_file(&mut tech, &data[..2 * CHUNK]).await;
    // The data goes to a temporary file, never to the destination.
    let names = entries(dir.path());
    assert!(
        names.len() == 1 && names[0].starts_with(".big.bin.jgpart-"),
        "{names:?}"
    );
    let err = ended(tech, served).await.unwrap_err();
    assert!(matches!(err, SessionError::Truncated(_)), "{err:?}");
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

#[tokio::test]
async fn download_sends_content_mode_and_hash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.csv");
    let data = pattern(2 * CHUNK + 77);
    std::fs::write(&path, &data).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o604)).unwrap();
    let req = SessionRequest::Download {
        path: path.to_str().unwrap().to_owned(),
    };
    let (mut tech, served) = Tech::open(req).await;
    let accepted = tech.accepted().await;
    assert_eq!(accepted.size, Some(data.len() as u64));
    assert_eq!(accepted.mode, Some(0o604));
    let mut got = Vec::new();
    let end = loop {
        match tech.recv().await {
            Some(SessionMsg::FileData(b)) => {
                assert!(b.len() <= CHUNK);
                got.extend_from_slice(&b);
            }
            Some(SessionMsg::FileEnd(end)) => break end,
            other => panic!("expected file data, got {other:?}"),
        }
    };
    assert!(got == data, "content differs");
    assert_eq!(end.size, data.len() as u64);
    assert_eq!(end.sha256, sha256(&data));
    assert_eq!(tech.recv().await, None, "the agent finishes its side");
    let summary = ended(tech, served).await.unwrap();
    assert_eq!(summary.bytes_out, data.len() as u64);
}

#[tokio::test]
async fn download_of_an_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty");
    std::fs::write(&path, b"").unwrap();
    let req = SessionRequest::Download {
        path: path.to_str().unwrap().to_owned(),
    };
    let (mut tech, served) = Tech::open(req).await;
    assert_eq!(tech.accepted().await.size, Some(0));
    let end = FileEnd {
        size: 0,
        sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
    };
    assert_eq!(tech.recv().await, Some(SessionMsg::FileEnd(end)));
    ended(tech, served).await.unwrap();
}

#[tokio::test]
async fn download_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.unwrap().success());
    let missing = dir.path().join("missing");
    let cases = [
        (
            missing.to_str().unwrap(),
            RefusalCode::NotFound,
            "No such file",
        ),
        (
            dir.path().to_str().unwrap(),
            RefusalCode::InvalidRequest,
            "is a directory",
        ),
        (
            fifo.to_str().unwrap(),
            RefusalCode::InvalidRequest,
            "not a regular file",
        ),
        ("etc/passwd", RefusalCode::InvalidRequest, "absolute"),
    ];
    for (path, code, text) in cases {
        let req = SessionRequest::Download { path: path.into() };
        let (mut tech, served) = Tech::open(req).await;
        let refusal = tech.refused().await;
        assert_eq!(refusal.code, code, "{path}: {refusal:?}");
        assert!(refusal.message.contains(text), "{path}: {refusal:?}");
        ended(tech, served).await.unwrap_err();
    }
}
