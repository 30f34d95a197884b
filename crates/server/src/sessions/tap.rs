//! Taps: what the gateway keeps of a framed session as it crosses the
//! relay. The relay knows only [`SessionTap`]; which taps a session gets is
//! decided by its kind when it opens (`open.rs`):
//!
//! | kind               | tap |
//! |--------------------|-----|
//! | `shell`, `exec`    | [`RecordingTap`]: the asciicast recording |
//! | `upload`, `download` | [`TransferTap`]: size and SHA-256 of the file that crossed, for the audit log |
//! | `forward`          | none (raw bytes) |
//! | `desktop`          | [`DesktopTap`]: the screen recording (JSON lines), and audit entries for control changes and clipboard transfers |
//!
//! A tap sees only what the side it listens to may legitimately send (the
//! relay's `Scanner` filters by direction), so one side cannot write into
//! the other's part of the record.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use base64::Engine as _;
use jumpgate_proto::desktop::{ControlState, InputState};
use jumpgate_proto::session::{Direction, FileEnd, FileResult, SessionMsg};

use crate::recordings::Recorder;
use crate::store::{AuditAction, AuditEvent, Store};

/// What a tap's handlers return: taps may wait (a recorder applies
/// back-pressure to the session).
pub(crate) type TapFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Watches one framed session's messages as they pass the gateway.
pub(crate) trait SessionTap: Send + Sync {
    /// A message from the technician (`Stdin`, `Resize`, `FileEnd`).
    fn on_up<'a>(&'a self, msg: &'a SessionMsg) -> TapFuture<'a>;
    /// A message from the endpoint (`Stdout`, `Stderr`, `Exit`, `FileEnd`,
    /// `FileResult`).
    fn on_down<'a>(&'a self, msg: &'a SessionMsg) -> TapFuture<'a>;
    /// A piece of `FileData` payload coming `from` one side, as it passes
    /// (never buffered whole).
    fn on_file_data(&self, _from: Direction, _bytes: &[u8]) {}
    /// Whether [`Self::on_up`] needs the technician's keystrokes
    /// (`Stdin`): when no tap does, the relay does not collect them.
    fn wants_stdin(&self) -> bool {
        false
    }
    /// The session is over. Returns words for the `session-close` audit
    /// entry's detail (each starting with a space), or nothing.
    fn finish(self: Box<Self>) -> String;
}

fn nothing<'a>() -> TapFuture<'a> {
    Box::pin(std::future::ready(()))
}

/// The recording of a shell or exec session. Dropping it (at
/// [`SessionTap::finish`]) ends the recording: its writer seals the last
/// chunk.
#[derive(Debug)]
pub(crate) struct RecordingTap(pub(crate) Recorder);

impl SessionTap for RecordingTap {
    fn on_up<'a>(&'a self, msg: &'a SessionMsg) -> TapFuture<'a> {
        match msg {
            SessionMsg::Stdin(d) => Box::pin(self.0.input(d.clone())),
            SessionMsg::Resize { cols, rows } => Box::pin(self.0.resize(*cols, *rows)),
            _ => nothing(),
        }
    }

    fn wants_stdin(&self) -> bool {
        self.0.records_input()
    }

    fn on_down<'a>(&'a self, msg: &'a SessionMsg) -> TapFuture<'a> {
        match msg {
            SessionMsg::Stdout(d) => Box::pin(self.0.output(d.clone(), false)),
            SessionMsg::Stderr(d) => Box::pin(self.0.output(d.clone(), true)),
            _ => nothing(),
        }
    }

    fn finish(self: Box<Self>) -> String {
        String::new()
    }
}

/// Who a desktop session's audit entries are about.
#[derive(Debug)]
pub(crate) struct DesktopAudit {
    pub(crate) db: Store,
    /// The technician (the entries' actor).
    pub(crate) actor: String,
    pub(crate) endpoint: String,
    pub(crate) group: String,
    pub(crate) session: String,
}

/// What a desktop session's tap counted, for its `session-close` words.
#[derive(Debug, Default)]
struct DesktopCounts {
    /// `Video` payload bytes (codec packets) from the endpoint.
    video_bytes: u64,
    /// Clipboard transfers, either way.
    clipboard: u64,
    /// The first `DesktopInfo` was seen (its size is the recording's).
    sized: bool,
}

/// The recording and audit of a desktop session. The screen (`DesktopInfo`,
/// `Video`, `Cursor`, `CursorShape`) and control changes go into the
/// recording as JSON lines (see `recordings`); every `ControlState` from
/// the agent is a `desktop-control` entry and every clipboard transfer a
/// `desktop-clipboard` entry (its size, never its text). Dropping it (at
/// [`SessionTap::finish`]) ends the recording.
#[derive(Debug)]
pub(crate) struct DesktopTap {
    recorder: Recorder,
    audit: DesktopAudit,
    counts: Mutex<DesktopCounts>,
}

impl DesktopTap {
    pub(crate) fn new(recorder: Recorder, audit: DesktopAudit) -> Self {
        Self {
            recorder,
            audit,
            counts: Mutex::new(DesktopCounts::default()),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, DesktopCounts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An audit entry about this session (written before the relay goes
    /// on, so the entries keep the session's order; they are rare).
    async fn audit(&self, action: AuditAction, detail: String) {
        let a = &self.audit;
        let event = AuditEvent::new(&a.actor, action, &a.endpoint)
            .detail(format!("session={} {detail}", a.session))
            .group(&a.group);
        a.db.audit_or_log(event).await;
    }

    async fn clipboard(&self, from: &str, text: &str) {
        self.counts().clipboard += 1;
        let bytes = text.len();
        let line = serde_json::json!({ "from": from, "bytes": bytes }).to_string();
        self.recorder.desktop_event("b", line).await;
        self.audit(
            AuditAction::DesktopClipboard,
            format!("from={from} bytes={bytes}"),
        )
        .await;
    }

    async fn control(&self, state: &ControlState) {
        // The endpoint's words: untrusted, cleaned before they are stored.
        let message =
            crate::agents::reported::text(&state.message, crate::agents::reported::MESSAGE_MAX);
        let cleaned = ControlState {
            input: state.input,
            message: message.clone(),
            note: state.note,
        };
        let line = serde_json::to_string(&cleaned).unwrap_or_default();
        self.recorder.desktop_event("x", line).await;
        let input = match state.input {
            InputState::Allowed => "allowed",
            InputState::ViewOnly => "view-only",
            InputState::TakenBack => "taken-back",
            InputState::Ended => "ended",
        };
        self.audit(
            AuditAction::DesktopControl,
            format!("input={input} message={message}"),
        )
        .await;
    }

    async fn down(&self, msg: &SessionMsg) {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        match msg {
            SessionMsg::DesktopInfo(i) => {
                let first = !std::mem::replace(&mut self.counts().sized, true);
                if first {
                    self.recorder.desktop_size(i.width, i.height).await;
                }
                let line = serde_json::to_string(i).unwrap_or_default();
                self.recorder.desktop_event("i", line).await;
            }
            SessionMsg::Video(v) => {
                self.counts().video_bytes += v.data.len() as u64;
                let line = serde_json::Value::String(b64(&v.data)).to_string();
                self.recorder.desktop_event("v", line).await;
            }
            SessionMsg::Cursor(c) => {
                let line = format!("[{}, {}, {}]", c.x, c.y, c.shape);
                self.recorder.desktop_event("c", line).await;
            }
            SessionMsg::CursorShape(s) => {
                let line = serde_json::json!({
                    "id": s.id,
                    "width": s.width,
                    "height": s.height,
                    "hot_x": s.hot_x,
                    "hot_y": s.hot_y,
                    "rgba": b64(&s.rgba),
                })
                .to_string();
                self.recorder.desktop_event("s", line).await;
            }
            SessionMsg::ControlState(c) => self.control(c).await,
            SessionMsg::Clipboard(t) => self.clipboard("endpoint", t).await,
            _ => {}
        }
    }
}

impl SessionTap for DesktopTap {
    fn on_up<'a>(&'a self, msg: &'a SessionMsg) -> TapFuture<'a> {
        match msg {
            // Only what the session allows gets here (the relay dropped
            // the rest).
            SessionMsg::Clipboard(t) => Box::pin(self.clipboard("technician", t)),
            _ => nothing(),
        }
    }

    fn on_down<'a>(&'a self, msg: &'a SessionMsg) -> TapFuture<'a> {
        Box::pin(self.down(msg))
    }

    fn finish(self: Box<Self>) -> String {
        let c = self.counts.into_inner().unwrap_or_else(|e| e.into_inner());
        format!(" video_bytes={} clipboard={}", c.video_bytes, c.clipboard)
    }
}

/// A file transfer as seen by the gateway.
#[derive(Debug, Default)]
struct Transfer {
    /// The running hash and size of the file data so far.
    hash: Option<jumpgate_net::digest::Sha256>,
    bytes: u64,
    /// Size and SHA-256 (lowercase hex) of the file data that crossed the
    /// gateway, computed by the gateway itself: final at the sender's
    /// `FileEnd`.
    crossed: Option<(u64, String)>,
    /// What the sender said it sent (its first `FileEnd`).
    claimed: Option<FileEnd>,
    /// The receiver's verdict on an upload (its first `FileResult`).
    result: Option<FileResult>,
}

/// The transfer auditor of an upload or a download: hashes the file data
/// from the sending side as it passes, and keeps the sender's claim and
/// the receiver's verdict. Only the sender's data and `FileEnd` count:
/// the receiving side cannot pre-empt or change the digest.
#[derive(Debug)]
pub(crate) struct TransferTap {
    /// The side the file comes from (`Up`: an upload).
    from: Direction,
    state: Mutex<Transfer>,
}

impl TransferTap {
    pub(crate) fn new(from: Direction) -> Self {
        Self {
            from,
            state: Mutex::new(Transfer::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Transfer> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn see(&self, direction: Direction, msg: &SessionMsg) {
        match msg {
            SessionMsg::FileEnd(e) if direction == self.from => {
                // The data before it is the file: its hash is final.
                let mut t = self.state();
                let hex = t.hash.take().unwrap_or_default().hex();
                let size = t.bytes;
                t.crossed.get_or_insert((size, hex));
                t.claimed.get_or_insert_with(|| e.clone());
            }
            // Only the endpoint's verdict reaches here (the scanner keeps
            // `FileResult` downwards only).
            SessionMsg::FileResult(r) => {
                self.state().result.get_or_insert_with(|| r.clone());
            }
            _ => {}
        }
    }
}

impl SessionTap for TransferTap {
    fn on_up<'a>(&'a self, msg: &'a SessionMsg) -> TapFuture<'a> {
        self.see(Direction::Up, msg);
        nothing()
    }

    fn on_down<'a>(&'a self, msg: &'a SessionMsg) -> TapFuture<'a> {
        self.see(Direction::Down, msg);
        nothing()
    }

    fn on_file_data(&self, from: Direction, bytes: &[u8]) {
        if from == self.from {
            let mut t = self.state();
            t.hash.get_or_insert_with(Default::default).update(bytes);
            t.bytes += bytes.len() as u64;
        }
    }

    /// The audit words for a file transfer: the size and SHA-256 the
    /// gateway computed over the data that crossed it, whether the sender's
    /// own claim matches, and (uploads) whether the endpoint confirmed the
    /// same digest.
    fn finish(self: Box<Self>) -> String {
        let t = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        if let Some((size, sha)) = &t.crossed {
            out.push_str(&format!(" size={size} sha256={sha}"));
            if let Some(c) = &t.claimed
                && (c.sha256 != *sha || c.size != *size)
            {
                out.push_str(&format!(
                    " sender_claimed_size={} sender_claimed_sha256={} mismatch",
                    c.size,
                    // The sender may be the endpoint: its claim is untrusted text.
                    crate::agents::reported::text(&c.sha256, 64)
                ));
            }
            if let Some(r) = &t.result {
                let confirmed = r.ok && (r.sha256.is_empty() || r.sha256 == *sha);
                out.push_str(if confirmed {
                    " verified=yes"
                } else {
                    " verified=no"
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jumpgate_net::digest::sha256_hex;

    fn end(size: u64, sha256: String) -> SessionMsg {
        SessionMsg::FileEnd(FileEnd { size, sha256 })
    }

    fn verdict(ok: bool, sha256: String) -> SessionMsg {
        SessionMsg::FileResult(FileResult {
            ok,
            sha256,
            message: String::new(),
        })
    }

    #[tokio::test]
    async fn an_upload_is_hashed_from_the_technicians_data_and_confirmed_by_the_endpoint() {
        let tap = TransferTap::new(Direction::Up);
        tap.on_file_data(Direction::Up, &[9u8; 40_000]);
        tap.on_file_data(Direction::Up, &[9u8; 30_000]);
        let sha = sha256_hex(&[9u8; 70_000]);
        tap.on_up(&end(70_000, sha.clone())).await;
        tap.on_down(&verdict(true, sha.clone())).await;
        assert_eq!(
            Box::new(tap).finish(),
            format!(" size=70000 sha256={sha} verified=yes")
        );
    }

    #[tokio::test]
    async fn a_false_claim_is_named_and_the_receiver_cannot_set_the_digest() {
        let tap = TransferTap::new(Direction::Down);
        // The technician (receiver of a download) tries to end the file
        // first, with data of its own.
        tap.on_file_data(Direction::Up, b"forged");
        tap.on_up(&end(6, sha256_hex(b"forged"))).await;
        tap.on_file_data(Direction::Down, b"real data");
        tap.on_down(&end(9, "00".repeat(32))).await;
        let detail = Box::new(tap).finish();
        assert_eq!(
            detail,
            format!(
                " size=9 sha256={} sender_claimed_size=9 sender_claimed_sha256={} mismatch",
                sha256_hex(b"real data"),
                "00".repeat(32)
            )
        );
    }

    #[tokio::test]
    async fn a_session_without_a_file_has_no_transfer_words() {
        let tap = TransferTap::new(Direction::Up);
        tap.on_down(&verdict(false, String::new())).await;
        assert_eq!(Box::new(tap).finish(), "");
    }
}
