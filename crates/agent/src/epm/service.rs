//! The elevation service: a Unix socket (mode 0666: any local user may
//! ask; the policy decides) served by the agent running as root. Per
//! connection: the caller's uid/gid/pid from `SO_PEERCRED`, the request
//! and its three fds, the decision, what the rule asks for (a reason, a
//! technician's approval, an offline code), then the program, its signals
//! and its exit code. Every decision is journalled (fsynced) before it is
//! acted on.

use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jumpgate_epm::engine::{Caller, Program};
use jumpgate_epm::policy::{Action, Proof};
use jumpgate_proto::epm::{EpmEventKind, Outcome};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::Epm;
use super::run::{self, LocalUser, RunError};
use super::wire::{self, AgentMsg, ClientMsg, Elevate, Reader, WireError};

/// Wrong offline codes allowed per request.
const CODE_ATTEMPTS: u32 = 5;
/// Requests served at once.
const CONCURRENT: usize = 64;
/// Longest reason kept.
const MAX_REASON: usize = 1024;
/// Longest argument list kept in an event (bytes, all arguments).
const MAX_ARGS_IN_EVENT: usize = 8 * 1024;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("elevation socket {path}: {cause}")]
    Io {
        path: String,
        #[source]
        cause: std::io::Error,
    },
    #[error("elevation socket {0}: another agent serves it")]
    InUse(String),
}

/// Binds the socket (creating its directory, mode 0755): a stale socket
/// is replaced, a live one (another agent) is left alone.
///
/// # Errors
/// See [`ServiceError`].
pub fn bind(path: &Path) -> Result<UnixListener, ServiceError> {
    let err = |cause| ServiceError::Io {
        path: path.display().to_string(),
        cause,
    };
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(err)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(err)?;
    }
    let listener = match UnixListener::bind(path) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ServiceError::InUse(path.display().to_string()));
            }
            std::fs::remove_file(path).map_err(err)?;
            UnixListener::bind(path).map_err(err)?
        }
        Err(e) => return Err(err(e)),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(err)?;
    Ok(listener)
}

/// Serves `listener` until `shutdown`.
pub async fn serve(epm: Arc<Epm>, listener: UnixListener, shutdown: CancellationToken) {
    let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENT));
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "elevation socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!("elevation socket: too many requests at once; one refused");
            continue;
        };
        let epm = Arc::clone(&epm);
        tokio::spawn(async move {
            if let Err(e) = handle(epm, stream).await {
                tracing::info!(error = %e, "elevation request ended early");
            }
            drop(slot);
        });
    }
}

/// What is reported about the request, filled as it goes.
#[derive(Clone, Debug, Default)]
struct Report {
    user: String,
    uid: u32,
    program: String,
    sha256: String,
    args: Vec<String>,
    action: String,
    rule: String,
    reason: String,
}

impl Report {
    /// The end of a program whose `decision` (allowed) was recorded.
    fn exited(&self, exit_code: i32) -> EpmEventKind {
        EpmEventKind::Exited {
            user: self.user.clone(),
            uid: self.uid,
            program: self.program.clone(),
            rule: self.rule.clone(),
            exit_code,
        }
    }

    fn decision(&self, outcome: Outcome, detail: String, exit_code: Option<i32>) -> EpmEventKind {
        EpmEventKind::Decision {
            user: self.user.clone(),
            uid: self.uid,
            program: self.program.clone(),
            sha256: self.sha256.clone(),
            args: self.args.clone(),
            action: self.action.clone(),
            rule: self.rule.clone(),
            outcome,
            reason: self.reason.clone(),
            detail,
            exit_code,
        }
    }
}

/// Arguments for an event: all of them up to a total size, then a marker.
fn event_args(args: &[String]) -> Vec<String> {
    let mut total = 0;
    let mut out = Vec::new();
    for a in args {
        total += a.len();
        if total > MAX_ARGS_IN_EVENT {
            out.push(format!("… ({} more arguments)", args.len() - out.len()));
            break;
        }
        out.push(a.clone());
    }
    out
}

fn clean_reason(r: &str) -> String {
    r.chars()
        .filter(|c| !jumpgate_proto::text::is_unsafe_char(*c))
        .take(MAX_REASON)
        .collect::<String>()
        .trim()
        .to_owned()
}

struct Conn {
    epm: Arc<Epm>,
    reader: Reader<tokio::net::unix::OwnedReadHalf>,
    writer: OwnedWriteHalf,
    report: Report,
}

impl Conn {
    async fn send(&mut self, msg: AgentMsg) -> Result<(), WireError> {
        wire::send_async(&mut self.writer, &msg).await
    }

    /// Journals a refusal and tells the caller.
    async fn refuse(&mut self, message: String) -> Result<(), WireError> {
        let event = self.report.decision(Outcome::Denied, message.clone(), None);
        if let Err(e) = self.epm.record(event).await {
            tracing::error!(error = %e, "EPM: journalling a refusal failed");
        }
        let rule = self.report.rule.clone();
        self.send(AgentMsg::Refused { rule, message }).await
    }

    /// Asks for a reason unless one was given; `None` when none came.
    async fn reason(&mut self, given: Option<String>) -> Result<Option<String>, WireError> {
        if let Some(r) = given.map(|r| clean_reason(&r)).filter(|r| !r.is_empty()) {
            return Ok(Some(r));
        }
        let rule = self.report.rule.clone();
        self.send(AgentMsg::NeedReason { rule }).await?;
        loop {
            match self.reader.next().await? {
                Some(ClientMsg::Reason { text }) => {
                    let r = clean_reason(&text);
                    return Ok((!r.is_empty()).then_some(r));
                }
                Some(ClientMsg::Signal { .. }) | None => return Ok(None),
                Some(_) => {}
            }
        }
    }

    /// The offline-code exchange; whether the caller typed the response.
    async fn code(&mut self) -> Result<Result<(), String>, WireError> {
        let Some(secret) = self.epm.code_secret() else {
            return Ok(Err(
                "this endpoint has no offline-code secret yet (it has not reached the gateway)"
                    .into(),
            ));
        };
        let Ok(challenge) = jumpgate_epm::code::new_challenge() else {
            return Ok(Err("no random challenge could be made".into()));
        };
        for attempt in 0..CODE_ATTEMPTS {
            self.send(AgentMsg::NeedCode {
                challenge: challenge.clone(),
                attempts_left: CODE_ATTEMPTS - attempt,
            })
            .await?;
            let typed = loop {
                match self.reader.next().await? {
                    Some(ClientMsg::Code { response }) => break response,
                    Some(ClientMsg::Signal { .. }) | None => {
                        return Ok(Err("the caller gave up".into()));
                    }
                    Some(_) => {}
                }
            };
            if jumpgate_epm::code::check(&secret, &challenge, &typed) {
                return Ok(Ok(()));
            }
            if attempt + 1 < CODE_ATTEMPTS {
                self.send(AgentMsg::Notice {
                    message: "that is not the response to this challenge".into(),
                })
                .await?;
            }
        }
        Ok(Err(format!("{CODE_ATTEMPTS} wrong responses")))
    }

    /// Asks a technician; `Ok(Ok(by))` when approved.
    async fn approval(&mut self, timeout: Duration) -> Result<Result<String, String>, WireError> {
        let request = new_request_id();
        let rx = self.epm.wait_for_decision(&request);
        let event = EpmEventKind::ApprovalRequested {
            request: request.clone(),
            user: self.report.user.clone(),
            uid: self.report.uid,
            program: self.report.program.clone(),
            sha256: self.report.sha256.clone(),
            args: self.report.args.clone(),
            rule: self.report.rule.clone(),
            reason: self.report.reason.clone(),
            timeout_secs: timeout.as_secs(),
        };
        if let Err(e) = self.epm.record(event).await {
            self.epm.forget_request(&request);
            return Ok(Err(format!("the request could not be recorded: {e}")));
        }
        self.send(AgentMsg::NeedApproval {
            request: request.clone(),
            timeout_secs: timeout.as_secs(),
        })
        .await?;
        let answer = tokio::select! {
            d = tokio::time::timeout(timeout, rx) => match d {
                Ok(Ok(d)) if d.approved => Ok(d.by),
                Ok(Ok(d)) => Err(format!("denied by {}{}", d.by,
                    if d.comment.is_empty() { String::new() } else { format!(": {}", clean_reason(&d.comment)) })),
                Ok(Err(_)) => Err("the request was dropped".into()),
                Err(_) => Err(format!("no technician answered within {}s", timeout.as_secs())),
            },
            () = caller_left(&mut self.reader) => Err("the caller gave up".into()),
        };
        self.epm.forget_request(&request);
        Ok(answer)
    }
}

/// Completes when the caller hangs up or sends a signal (while waiting).
async fn caller_left<R: tokio::io::AsyncRead + Unpin>(reader: &mut Reader<R>) {
    loop {
        match reader.next().await {
            Ok(Some(ClientMsg::Signal { .. }) | None) | Err(_) => return,
            Ok(Some(_)) => {}
        }
    }
}

fn new_request_id() -> String {
    let mut raw = [0u8; 12];
    let _ = aws_lc_rs::rand::fill(&mut raw);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    format!("er_{hex}")
}

/// One request, start to end.
async fn handle(epm: Arc<Epm>, stream: UnixStream) -> Result<(), WireError> {
    let cred = rustix::net::sockopt::socket_peercred(&stream).map_err(std::io::Error::from)?;
    let (uid, gid) = (cred.uid.as_raw(), cred.gid.as_raw());
    let (first, fds, leftover) = wire::recv_first(&stream).await?;
    let ClientMsg::Elevate(req) = first else {
        return Err(WireError::Invalid(
            "the first message must be the request".into(),
        ));
    };
    let (r, w) = stream.into_split();
    let caller = run::local_user(&epm.opts.etc, uid, gid);
    let mut conn = Conn {
        epm: Arc::clone(&epm),
        reader: Reader::new(r, leftover),
        writer: w,
        report: Report {
            user: caller.name.clone(),
            uid,
            ..Report::default()
        },
    };
    let span = tracing::info_span!("elevate", user = %caller.name, uid, pid = cred.pid.as_raw_nonzero().get());
    let _enter = span.enter();
    drop(_enter);
    let fds: [OwnedFd; 3] = match fds.try_into() {
        Ok(f) => f,
        Err(_) => return Err(WireError::NoFds),
    };
    match req.admin_minutes {
        Some(minutes) => admin_session(conn, req, minutes, caller, fds).await,
        None => elevate(&mut conn, req, caller, fds).await,
    }
}

async fn elevate(
    conn: &mut Conn,
    req: Elevate,
    caller: LocalUser,
    fds: [OwnedFd; 3],
) -> Result<(), WireError> {
    let Some(name) = req.argv.first().cloned() else {
        return conn
            .send(AgentMsg::Refused {
                rule: String::new(),
                message: "no command given".into(),
            })
            .await;
    };
    conn.report.args = event_args(&req.argv[1..]);
    conn.report.program = name.clone();
    let Some(active) = conn.epm.active() else {
        return conn
            .refuse("no EPM policy is in force on this endpoint yet".into())
            .await;
    };
    let opened = match run::resolve(&name, &req.path, &req.cwd).and_then(|p| run::open(&p)) {
        Ok(o) => o,
        Err(e) => return conn.refuse(e.to_string()).await,
    };
    conn.report.program = opened.path.display().to_string();
    conn.report.sha256 = opened.sha256.clone();
    let decision = active.engine.decide(
        &Caller {
            user: caller.name.clone(),
            groups: caller.groups.clone(),
        },
        &Program {
            path: conn.report.program.clone(),
            sha256: Some(opened.sha256.clone()),
            args: req.argv[1..].to_vec(),
        },
    );
    conn.report.action = decision.action.as_str().to_owned();
    conn.report.rule = decision.rule.clone().unwrap_or_default();
    if let Some(r) = &req.reason {
        conn.report.reason = clean_reason(r);
    }
    tracing::info!(program = %conn.report.program, action = %conn.report.action, rule = %conn.report.rule, "elevation decided");
    let as_root = match decision.action {
        Action::Block => {
            let message = format!(
                "{} is not allowed: {}",
                conn.report.program,
                decision.explain()
            );
            return conn.refuse(message).await;
        }
        Action::AuditOnly => false,
        Action::Elevate => true,
        Action::ElevateWithReason => match conn.reason(req.reason.clone()).await? {
            Some(r) => {
                conn.report.reason = r;
                true
            }
            None => {
                return conn
                    .refuse(format!("{} needs a reason", decision.explain()))
                    .await;
            }
        },
        Action::ElevateWithApproval => match conn.approval(decision.approval_timeout).await? {
            Ok(by) => {
                tracing::info!(%by, "elevation approved");
                true
            }
            Err(why) => return conn.refuse(format!("{}: {why}", decision.explain())).await,
        },
        Action::ElevateWithCode => match conn.code().await? {
            Ok(()) => true,
            Err(why) => return conn.refuse(format!("{}: {why}", decision.explain())).await,
        },
    };
    if as_root && opened.writable_by_others {
        return conn
            .refuse(RunError::Writable(conn.report.program.clone()).to_string())
            .await;
    }
    let argv0 = name;
    let spec = run::Spec {
        program: &opened,
        argv0,
        args: req.argv[1..].to_vec(),
        cwd: req.cwd.clone(),
        caller: &caller,
        as_root,
        term: req.term.clone(),
        lang: req.lang.clone(),
        fds,
    };
    run_reported(conn, spec, None, None).await
}

/// Journals the decision, runs the program, passes signals on, reports
/// its end. `limit`: an admin session's time box.
async fn run_reported(
    conn: &mut Conn,
    spec: run::Spec<'_>,
    limit: Option<Duration>,
    end: Option<EpmEventKind>,
) -> Result<(), WireError> {
    // On disk before it happens.
    if let Err(e) = conn
        .epm
        .record(conn.report.decision(Outcome::Allowed, String::new(), None))
        .await
    {
        tracing::error!(error = %e, "EPM: journalling failed; not running it");
        let rule = conn.report.rule.clone();
        return conn
            .send(AgentMsg::Refused {
                rule,
                message: "the decision could not be recorded on this endpoint; not run".into(),
            })
            .await;
    }
    let mut child = match run::spawn(spec) {
        Ok(c) => c,
        Err(e) => {
            let message = e.to_string();
            let event = conn.report.decision(Outcome::Failed, message.clone(), None);
            let _ = conn.epm.record(event).await;
            if let Some(end) = end {
                let _ = conn.epm.record(end).await;
            }
            let rule = conn.report.rule.clone();
            return conn.send(AgentMsg::Refused { rule, message }).await;
        }
    };
    let pgid = child.id().unwrap_or(0);
    let action = conn.report.action.clone();
    let rule = conn.report.rule.clone();
    conn.send(AgentMsg::Started { action, rule }).await?;
    let deadline = async {
        match limit {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let mut caller_gone = false;
    let mut timed_out = false;
    let status = loop {
        tokio::select! {
            s = child.wait() => break s,
            m = conn.reader.next(), if !caller_gone => match m {
                Ok(Some(ClientMsg::Signal { signal })) if matches!(signal, 1 | 2 | 3 | 15) => {
                    run::signal_group(pgid, signal);
                }
                Ok(Some(_)) => {}
                // The caller is gone: the program goes too (as a terminal
                // hang-up would end it).
                Ok(None) | Err(_) => {
                    caller_gone = true;
                    run::signal_group(pgid, 1);
                }
            },
            () = &mut deadline, if !timed_out => {
                timed_out = true;
                let _ = conn.send(AgentMsg::Notice { message: "the admin session's time is up".into() }).await;
                run::signal_group(pgid, 1);
                let pg = pgid;
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    run::signal_group(pg, 9);
                });
            }
        }
    };
    let code = match status {
        Ok(s) => run::exit_code(s),
        Err(_) => 1,
    };
    let event = conn.report.exited(code);
    if let Err(e) = conn.epm.record(event).await {
        tracing::warn!(error = %e, "EPM: journalling the end failed");
    }
    if let Some(end) = end
        && let Err(e) = conn.epm.record(end).await
    {
        tracing::warn!(error = %e, "EPM: journalling the session's end failed");
    }
    if caller_gone {
        return Ok(());
    }
    conn.send(AgentMsg::Exited { code }).await
}

async fn admin_session(
    mut conn: Conn,
    req: Elevate,
    minutes: u32,
    caller: LocalUser,
    fds: [OwnedFd; 3],
) -> Result<(), WireError> {
    conn.report.program = "(admin session)".into();
    conn.report.action = "admin-session".into();
    let Some(active) = conn.epm.active() else {
        return conn
            .refuse("no EPM policy is in force on this endpoint yet".into())
            .await;
    };
    let who = Caller {
        user: caller.name.clone(),
        groups: caller.groups.clone(),
    };
    let Some(grant) = active.engine.admin_session(&who) else {
        return conn
            .refuse("no admin-session rule of the policy applies to you".into())
            .await;
    };
    conn.report.rule = grant.rule.clone();
    let minutes = minutes.clamp(1, grant.max_minutes.max(1));
    if let Some(r) = &req.reason {
        conn.report.reason = clean_reason(r);
    }
    let proof = match grant.needs {
        Proof::Reason => conn
            .reason(req.reason.clone())
            .await?
            .map(|r| {
                conn.report.reason = r;
            })
            .ok_or_else(|| "a reason is needed".to_owned()),
        Proof::Approval => conn
            .approval(jumpgate_epm::policy::DEFAULT_APPROVAL_TIMEOUT)
            .await?
            .map(|_| ()),
        Proof::Code => conn.code().await?,
    };
    if let Err(why) = proof {
        return conn
            .refuse(format!("admin session `{}`: {why}", grant.rule))
            .await;
    }
    let root = run::local_user(&conn.epm.opts.etc, 0, 0);
    let shell = std::path::PathBuf::from(&root.shell);
    let opened = match run::open(&shell) {
        Ok(o) => o,
        Err(e) => return conn.refuse(e.to_string()).await,
    };
    conn.report.program = opened.path.display().to_string();
    conn.report.sha256 = opened.sha256.clone();
    let start = EpmEventKind::AdminSession {
        user: caller.name.clone(),
        uid: caller.uid,
        minutes,
        reason: conn.report.reason.clone(),
        rule: grant.rule.clone(),
        ended: false,
    };
    if let Err(e) = conn.epm.record(start).await {
        return conn
            .send(AgentMsg::Refused {
                rule: grant.rule.clone(),
                message: format!("the session could not be recorded: {e}"),
            })
            .await;
    }
    let _ = conn
        .send(AgentMsg::Notice {
            message: format!(
                "admin session for {minutes} minutes (rule `{}`)",
                grant.rule
            ),
        })
        .await;
    let spec = run::Spec {
        program: &opened,
        argv0: opened.path.display().to_string(),
        args: Vec::new(),
        cwd: req.cwd.clone(),
        caller: &caller,
        as_root: true,
        term: req.term.clone(),
        lang: req.lang.clone(),
        fds,
    };
    let end = EpmEventKind::AdminSession {
        user: caller.name.clone(),
        uid: caller.uid,
        minutes,
        reason: conn.report.reason.clone(),
        rule: grant.rule.clone(),
        ended: true,
    };
    let limit = Duration::from_secs(u64::from(minutes) * 60);
    run_reported(&mut conn, spec, Some(limit), Some(end)).await
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use jumpgate_epm::bundle::{self, BundleContent, SigningKey};
    use jumpgate_epm::policy::Policy;
    use jumpgate_proto::epm::ApprovalDecision;

    use super::*;
    use crate::epm::EpmOptions;

    /// An EPM with `yaml` in force and its service on a socket.
    async fn service(yaml: &str) -> (Arc<Epm>, std::path::PathBuf, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let (key, _) = SigningKey::generate("pk_t").unwrap();
        let bytes = bundle::seal(
            &BundleContent {
                version: 1,
                published_at: "2026-12-02T05:00:00Z".into(),
                published_by: "t".into(),
                policy: Policy::from_yaml(yaml).unwrap(),
            },
            &key,
        );
        let store = crate::epm::store::Store::open(&dir.path().join("epm")).unwrap();
        store
            .accept(
                1,
                &bytes,
                &crate::epm::store::Trust {
                    keys: vec![key.trusted()],
                    groups: vec![],
                },
            )
            .unwrap();
        let epm = Epm::open(
            dir.path(),
            EpmOptions {
                socket: None,
                ..EpmOptions::default()
            },
        )
        .unwrap();
        let socket = dir.path().join("elevate.sock");
        let listener = bind(&socket).unwrap();
        tokio::spawn(serve(Arc::clone(&epm), listener, CancellationToken::new()));
        (epm, socket, dir)
    }

    /// Connects and sends a request with `/dev/null` as its fds.
    fn request(socket: &Path, argv: &[&str]) -> std::os::unix::net::UnixStream {
        let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
        let null = std::fs::File::open("/dev/null").unwrap();
        wire::send_with_fds(
            &mut s,
            &ClientMsg::Elevate(Elevate {
                argv: argv.iter().map(|a| (*a).to_owned()).collect(),
                cwd: "/".into(),
                path: "/usr/bin:/bin".into(),
                reason: Some("deploy".into()),
                ..Elevate::default()
            }),
            &[null.as_fd(), null.as_fd(), null.as_fd()],
        )
        .unwrap();
        s
    }

    fn next(s: &mut std::os::unix::net::UnixStream) -> AgentMsg {
        loop {
            match wire::recv::<_, AgentMsg>(s).unwrap().unwrap() {
                AgentMsg::Started { .. } | AgentMsg::Notice { .. } => {}
                m => return m,
            }
        }
    }

    #[tokio::test]
    async fn approvals_wait_for_the_technicians_answer() {
        let (epm, socket, _dir) = service(
            "default: block\napplications:\n  - { name: true, path: /usr/bin/true }\nrules:\n  - { name: ask, applications: [true], action: elevate-with-approval, approval_timeout: 1m }\n",
        )
        .await;
        for approved in [true, false] {
            let sock = socket.clone();
            let client = tokio::task::spawn_blocking(move || {
                let mut s = request(&sock, &["true"]);
                let AgentMsg::NeedApproval { request: id, .. } = next(&mut s) else {
                    panic!("no approval asked");
                };
                (id, s)
            });
            let (id, mut s) = client.await.unwrap();
            assert!(id.starts_with("er_"));
            // The request is journalled before anyone is asked.
            assert!(epm.pending_events().iter().any(|e| matches!(
                &e.kind,
                EpmEventKind::ApprovalRequested { request, rule, reason, .. }
                    if *request == id && rule == "ask" && reason == "deploy"
            )));
            assert!(epm.handle_decision(ApprovalDecision {
                request: id.clone(),
                approved,
                by: "tech".into(),
                comment: "ok".into(),
            }));
            let end = tokio::task::spawn_blocking(move || next(&mut s))
                .await
                .unwrap();
            if approved {
                assert_eq!(end, AgentMsg::Exited { code: 0 });
            } else {
                let AgentMsg::Refused { rule, message } = end else {
                    panic!("{end:?}");
                };
                assert_eq!(rule, "ask");
                assert!(message.contains("denied by tech"), "{message}");
            }
            // Answered once: a second answer finds nothing waiting.
            assert!(!epm.handle_decision(ApprovalDecision {
                request: id,
                approved: true,
                by: "tech".into(),
                comment: String::new(),
            }));
        }
    }

    #[test]
    fn events_keep_a_bounded_argument_list_and_reasons_are_cleaned() {
        let args: Vec<String> = (0..100).map(|_| "a".repeat(200)).collect();
        let kept = event_args(&args);
        assert!(kept.len() < 50);
        assert!(kept.last().unwrap().contains("more arguments"));
        assert_eq!(
            clean_reason("  fix\x1b[2J the printer \n"),
            "fix[2J the printer"
        );
        assert!(new_request_id().starts_with("er_"));
    }
}
