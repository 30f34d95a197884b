//! The session service: a technician session from its authorization to its
//! last audit entry, with no HTTP in it. Entry points (`http.rs`: `jg`'s
//! upgraded connection and the console's WebSocket) hand it a byte stream
//! carrying the session's messages.
//!
//! ```text
//! authorize ─► (entry point answers, e.g. 101) ─► accept: read Open
//!   ─► open: event row ─► audit session-open ─► register (live, re-checked)
//!        ─► taps by kind (recording / transfer audit) ─► stream to the agent,
//!           Open ⇄ Accepted/Refused ─► relay (progress written every few s)
//!        ─► close: unregister, finish taps, event row end, audit session-close
//! ```

use std::time::Duration;

use jumpgate_net::session::{Answer, MsgStream, OpenError};
use jumpgate_proto::mux::reset_code;
use jumpgate_proto::session::{
    Direction, Refusal, RefusalCode, SessionKind, SessionMsg, SessionRequest,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::outcome::{self, Outcome};
use super::relay::{self, Counters, LastWord, RelayEnd};
use super::tap::{DesktopAudit, DesktopTap, RecordingTap, SessionTap, TransferTap};
use super::{Grant, NewEvent, StopHandle, end_event, insert_event_as, record_end, record_start};
use crate::agents::EndpointRecord;
use crate::identity::Credential;
use crate::ids::SessionId;
use crate::rbac::{self, Action, Decision, Denial, Resource, Subject, SubjectKind};
use crate::recordings::{EndWait, Ending};
use crate::state::AppState;
use crate::store::{AuditAction, AuditEvent, Store};

/// Time allowed for each side's opening message.
pub(crate) const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for the agent's answer to a desktop session: the person at
/// the endpoint may be asked first (their prompt is denied after 30 s).
pub(crate) const DESKTOP_OPEN_TIMEOUT: Duration = Duration::from_secs(45);

/// A session the subject may open: only [`SessionService::authorize`]
/// makes one.
#[derive(Debug)]
pub(crate) struct Ticket {
    subject: Subject,
    endpoint: EndpointRecord,
    kind: SessionKind,
    grant: Grant,
}

impl Ticket {
    pub(crate) fn subject(&self) -> &Subject {
        &self.subject
    }

    pub(crate) fn endpoint(&self) -> &EndpointRecord {
        &self.endpoint
    }

    pub(crate) fn kind(&self) -> SessionKind {
        self.kind
    }

    /// Makes it a sub-session of support session `id`, opened by the
    /// technician `user_id`: the customer's client is asked with
    /// [`ConsentMode::Assist`](jumpgate_proto::session::ConsentMode::Assist)
    /// (its window is the consent), and the session lives only as long as
    /// the customer allows.
    pub(crate) fn for_support(mut self, id: &str, user_id: &str) -> Self {
        self.grant.support = Some((id.to_owned(), user_id.to_owned()));
        self
    }
}

/// Why [`SessionService::authorize`] gave no ticket.
#[derive(Debug)]
pub(crate) enum NotAuthorized {
    /// Access control said no; the denied session row is written (the
    /// entry point audits the denial and answers).
    Denied(Denial),
    /// The denied session row could not be written.
    Db(sqlx::Error),
}

/// Technician sessions on this gateway.
#[derive(Clone, Debug)]
pub(crate) struct SessionService {
    st: AppState,
}

impl SessionService {
    pub(crate) fn new(st: AppState) -> Self {
        Self { st }
    }

    /// What a session opens by name: a live endpoint, else an agentless
    /// target (reached through its jump point; see [`crate::targets`]).
    /// Every entry point looks names up here, then calls
    /// [`Self::authorize`] with the record.
    ///
    /// # Errors
    /// The store failed.
    pub(crate) async fn lookup(&self, name: &str) -> Result<Option<EndpointRecord>, sqlx::Error> {
        crate::targets::resolve(&self.st.db, name).await
    }

    /// Decides whether `subject` may open a `kind` session on `endpoint`
    /// (`credential`: what it authenticated with, for the re-checks while
    /// the session lives).
    ///
    /// # Errors
    /// See [`NotAuthorized`].
    pub(crate) async fn authorize(
        &self,
        subject: &Subject,
        endpoint: &EndpointRecord,
        kind: SessionKind,
        credential: Credential,
    ) -> Result<Ticket, NotAuthorized> {
        let resource = Resource::OneEndpoint {
            group: &endpoint.group,
            id: endpoint.id.as_str(),
        };
        if let Decision::Forbid(why) = rbac::authorize(subject, Action::OpenSession(kind), resource)
        {
            record_denied(&self.st.db, subject, endpoint, kind, "")
                .await
                .map_err(NotAuthorized::Db)?;
            return Err(NotAuthorized::Denied(why));
        }
        // What the session is decided on again whenever access may change.
        let grant = Grant {
            credential,
            subject: subject.kind.clone(),
            subject_name: subject.name.clone(),
            endpoint_id: endpoint.id.clone(),
            endpoint_name: endpoint.name.clone(),
            kind,
            expires_at: None,
            support: None,
            target: endpoint.target.as_ref().map(|t| t.name.clone()),
            access_request: subject
                .approvals
                .covering(
                    &endpoint.group,
                    Some(endpoint.id.as_str()),
                    rbac::Permission::for_session(kind),
                )
                .map(|g| g.request.clone()),
        };
        Ok(Ticket {
            subject: subject.clone(),
            endpoint: endpoint.clone(),
            kind,
            grant,
        })
    }

    /// Runs an authorized session whose technician speaks on `client`: its
    /// first message must open a session of the ticket's kind. `None`: it
    /// did not (refused; no session was recorded).
    pub(crate) async fn accept<C>(&self, ticket: Ticket, client: C) -> Option<Outcome>
    where
        C: AsyncRead + AsyncWrite + Unpin,
    {
        let kind = ticket.kind;
        let mut client = MsgStream::new(client);
        let request = match tokio::time::timeout(OPEN_TIMEOUT, client.read_msg()).await {
            Ok(Ok(Some(SessionMsg::Open(r)))) if r.kind() == kind => r,
            other => {
                // The message's type only: its content may be keystrokes or file data.
                let got = match &other {
                    Ok(Ok(Some(m))) => m.name().to_owned(),
                    Ok(Ok(None)) => "end of stream".to_owned(),
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "nothing in time".to_owned(),
                };
                tracing::info!(%got, "technician did not open the session properly");
                let msg = format!("the first message must open a {kind} session");
                Technician::Framed(client)
                    .refuse(RefusalCode::InvalidRequest, msg)
                    .await;
                return None;
            }
        };
        Some(self.open(ticket, request, Technician::Framed(client)).await)
    }

    /// Runs an authorized session for `request` (of the ticket's kind) to
    /// its end, `client` being the technician's side: event row, audit,
    /// live registration, taps, the agent's stream, relay, close. The
    /// session's row and audit entries carry the returned outcome.
    pub(crate) async fn open<C>(
        &self,
        ticket: Ticket,
        request: SessionRequest,
        mut client: Technician<C>,
    ) -> Outcome
    where
        C: AsyncRead + AsyncWrite + Unpin,
    {
        let st = &self.st;
        let Ticket {
            subject: p,
            endpoint,
            kind,
            mut grant,
        } = ticket;
        if request.kind() != kind {
            let msg = format!("the first message must open a {kind} session");
            client.refuse(RefusalCode::InvalidRequest, msg).await;
            return Outcome::Refused(format!("not a {kind} session"));
        }
        // How the person at the endpoint is asked is the group's setting;
        // a customer in attended support answers in their own window.
        let consent = match request {
            SessionRequest::Desktop { .. } if grant.support.is_some() => {
                jumpgate_proto::session::ConsentMode::Assist
            }
            SessionRequest::Desktop { .. } => {
                crate::agents::groups::consent_of(&st.db, &endpoint.group)
                    .await
                    .unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "cannot read the group's consent mode; the person at the endpoint is asked");
                        jumpgate_proto::session::ConsentMode::Prompt
                    })
            }
            _ => jumpgate_proto::session::ConsentMode::Prompt,
        };
        let request = for_the_endpoint(request, &p, consent);
        let target = request.target();
        // Watching a screen and driving it are separate rights: the second
        // is decided once the request says which is asked.
        if let SessionRequest::Desktop { control: true, .. } = request {
            let resource = Resource::OneEndpoint {
                group: &endpoint.group,
                id: endpoint.id.as_str(),
            };
            if let Decision::Forbid(why) = rbac::authorize(&p, Action::ControlDesktop, resource) {
                // As for the open itself: a session-log row and a security
                // event (the HTTP route writes the latter for the open).
                if let Err(e) = record_denied(&st.db, &p, &endpoint, kind, &target).await {
                    tracing::error!(error = %e, "cannot record a denied desktop control");
                }
                let group = Some(endpoint.group.as_str());
                let action = Action::ControlDesktop;
                rbac::http::record_denial(&st.db, &p, action, &endpoint.name, group, why).await;
                client
                    .refuse(RefusalCode::PermissionDenied, why.to_string())
                    .await;
                return Outcome::Denied;
            }
        }
        // The event row and its `session-open` entry are durable, together,
        // before anything reaches the endpoint.
        let running = event(&p, &endpoint, kind, &target, outcome::RUNNING);
        let opened = AuditEvent::new(&p.name, AuditAction::SessionOpen(kind), &endpoint.name)
            .outcome(outcome::RUNNING)
            .detail(&target)
            .group(&endpoint.group);
        let id = SessionId::generate();
        // A recording's row is written in the same commit (one durable
        // write before the session goes on, not two).
        let recording = self.prepare_recording(&p, &endpoint, &request, &id);
        let prepared = recording.as_ref().ok().and_then(Option::as_ref);
        // The credential's expiry is read while the commit is flushed.
        let (recorded, expires_at) = tokio::join!(
            record_open(&st.db, &id, &running, opened, prepared),
            grant.credential.expires_at(&st.db)
        );
        match recorded {
            Ok(()) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot record the session and its audit entry; refusing the session");
                let msg = "the gateway could not record the session".to_owned();
                client.refuse(RefusalCode::Failed, msg).await;
                return Outcome::failed("the session could not be recorded");
            }
        };
        grant.expires_at = match expires_at {
            Ok(at) => at,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the credential's expiry; the periodic re-check covers it");
                None
            }
        };
        let stop = st.sessions.register(id.clone(), grant);
        let audit = DesktopAudit {
            db: st.db.clone(),
            actor: p.name.clone(),
            endpoint: endpoint.name.clone(),
            group: endpoint.group.clone(),
            session: id.to_string(),
        };
        let (mut taps, recording_end) = match self.taps(&request, recording, &stop, audit).await {
            Ok(t) => t,
            Err(e) => {
                st.sessions.remove(&id);
                tracing::error!(error = %e, "cannot start the session recording; refusing the session");
                let msg = "the gateway could not record the session".to_owned();
                client.refuse(RefusalCode::Failed, msg).await;
                let outcome = Outcome::failed("recording unavailable");
                let stored = outcome.to_string();
                // Its `session-open` entry is closed too.
                let closed =
                    AuditEvent::new(&p.name, AuditAction::SessionClose(kind), &endpoint.name)
                        .outcome(&stored)
                        .detail(format!("session={id} up=0 down=0"))
                        .group(&endpoint.group);
                record_close(&st.db, &id, (0, 0), &stored, closed, None).await;
                return outcome;
            }
        };
        // A terminal or desktop session can be watched while it lives.
        let mut inject = None;
        let mut screen_of = None;
        if matches!(
            kind,
            SessionKind::Shell | SessionKind::Exec | SessionKind::Desktop
        ) {
            let (group, name) = (&endpoint.group, &endpoint.name);
            let w = match kind {
                SessionKind::Desktop => super::watch::Watch::desktop(group, name, &p.name),
                _ => super::watch::Watch::new(group, name, &p.name),
            };
            inject = w.injector();
            st.sessions
                .watches
                .insert(id.clone(), std::sync::Arc::clone(&w));
            screen_of = w.support.clone().filter(|_| w.is_desktop());
            taps.push(Box::new(super::watch::WatchTap(w)));
        }
        // The support session's technicians see the customer's screen
        // shown (and can join it), live.
        if let Some(sid) = &screen_of {
            crate::support::session::publish(st, sid).await;
        }
        let counters = Counters::default();
        let relay = self.open_and_relay(
            &p.name, &endpoint, request, client, &stop, &counters, &taps, inject,
        );
        let (outcome, last_word) = self.with_progress(&id, &counters, relay).await;
        st.sessions.watches.remove(&id);
        st.sessions.remove(&id);
        if let Some(sid) = &screen_of {
            crate::support::session::publish(st, sid).await;
        }
        // Ends the recording (its writer seals the last chunk) and collects
        // the transfer's audit words.
        let tap_words: String = taps.into_iter().map(|t| t.finish()).collect();
        // The recording's last chunk is durable before its end is written,
        // with the session's (the recorder went with its tap just now).
        let recording_end = match recording_end {
            Some(wait) => wait.ended().await,
            None => None,
        };
        let up = counters.up.into_inner();
        let down = counters.down.into_inner();
        let dropped = match counters.dropped.into_inner() {
            0 => String::new(),
            n => format!(" dropped_input={n}"),
        };
        let dropped = match counters.dropped_down.into_inner() {
            0 => dropped,
            n => format!("{dropped} dropped_from_endpoint={n}"),
        };
        // The target (a command line, a path) stays out of the plain log: it
        // may hold secrets, and the encrypted audit log has it.
        tracing::info!(session = %id, %outcome, up, down, "session ended");
        let stored = outcome.to_string();
        let detail = format!("session={id} up={up} down={down}{dropped}{tap_words}");
        let closed = AuditEvent::new(&p.name, AuditAction::SessionClose(kind), &endpoint.name)
            .outcome(&stored)
            .detail(detail)
            .group(&endpoint.group);
        record_close(&st.db, &id, (up, down), &stored, closed, recording_end).await;
        // A target's password is rotated after use, once the session's end
        // is recorded (only when the session reached the target).
        if let Some(t) = endpoint.target.as_deref().filter(|t| t.rotate)
            && !matches!(outcome, Outcome::Denied | Outcome::Refused(_))
        {
            let (st2, t) = (st.clone(), t.clone());
            st.tasks.spawn(async move {
                crate::targets::rotate_after_use(&st2, &t).await;
            });
        }
        // Only now is the technician told that the session ended (its exit
        // status, or why it was closed): its end is recorded by then, and
        // the closing writes are not queued ahead of its next session.
        if let Some(last_word) = last_word {
            last_word.tell().await;
        }
        outcome
    }

    /// The recording a session gets, by kind (shell and exec), ready to
    /// be written with the session's row.
    fn prepare_recording(
        &self,
        p: &Subject,
        endpoint: &EndpointRecord,
        request: &SessionRequest,
        id: &SessionId,
    ) -> Result<Option<crate::recordings::Prepared>, crate::recordings::RecordingError> {
        use SessionRequest as R;
        let (width, height, term, command) = match request {
            R::Shell {
                term,
                cols,
                rows,
                command,
            } => (
                *cols,
                *rows,
                term.as_str(),
                command.clone().unwrap_or_default(),
            ),
            R::Exec { command } => (80, 24, "", command.join(" ")),
            R::Upload { .. } | R::Download { .. } | R::Forward { .. } => return Ok(None),
            // The screen size is known once the agent says it.
            R::Desktop { .. } => (0, 0, "", String::new()),
        };
        let meta = crate::recordings::Meta {
            session_id: id,
            username: &p.name,
            endpoint: &endpoint.name,
            endpoint_group: &endpoint.group,
            width,
            height,
            term,
            command: &command,
        };
        if let R::Desktop { .. } = request {
            return crate::recordings::Prepared::desktop(&self.st.keys, &meta).map(Some);
        }
        crate::recordings::Prepared::new(&self.st.keys, self.st.config.record_keystrokes, &meta)
            .map(Some)
    }

    /// The taps a session gets, by kind, and where to wait for its
    /// recording's end. A recording (its row committed with the session's)
    /// has its file before anything reaches the endpoint.
    async fn taps(
        &self,
        request: &SessionRequest,
        recording: Result<Option<crate::recordings::Prepared>, crate::recordings::RecordingError>,
        stop: &StopHandle,
        audit: DesktopAudit,
    ) -> Result<(Vec<Box<dyn SessionTap>>, Option<EndWait>), crate::recordings::RecordingError>
    {
        use SessionRequest as R;
        match request {
            R::Upload { .. } => {
                return Ok((vec![Box::new(TransferTap::new(Direction::Up))], None));
            }
            R::Download { .. } => {
                return Ok((vec![Box::new(TransferTap::new(Direction::Down))], None));
            }
            R::Forward { .. } => return Ok((Vec::new(), None)),
            R::Shell { .. } | R::Exec { .. } | R::Desktop { .. } => {}
        }
        let Some(prepared) = recording? else {
            return Ok((Vec::new(), None));
        };
        let st = &self.st;
        let mut recorder = prepared
            .begin(
                &st.db,
                crate::recordings::Files {
                    blobs: st.blobs.clone(),
                    data_dir: st.config.data_dir.clone(),
                },
                stop.clone(),
                &st.tasks,
            )
            .await?;
        let end = recorder.take_end();
        if let R::Desktop { .. } = request {
            return Ok((vec![Box::new(DesktopTap::new(recorder, audit))], end));
        }
        Ok((vec![Box::new(RecordingTap(recorder))], end))
    }

    /// Runs `relay`, writing the session's progress every few seconds while
    /// bytes move (in its own task: the relay never waits for the database),
    /// so that a crash loses at most those seconds of its duration and bytes.
    async fn with_progress<T>(
        &self,
        id: &SessionId,
        counters: &Counters,
        relay: impl std::future::Future<Output = T>,
    ) -> T {
        use std::sync::atomic::Ordering;
        let st = &self.st;
        tokio::pin!(relay);
        let mut tick = tokio::time::interval(super::PROGRESS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = (0, 0);
        loop {
            tokio::select! {
                outcome = &mut relay => return outcome,
                _ = tick.tick() => {
                    let now = (
                        counters.up.load(Ordering::Relaxed),
                        counters.down.load(Ordering::Relaxed),
                    );
                    if now != last {
                        last = now;
                        let (db, id) = (st.db.clone(), id.clone());
                        st.tasks.spawn(async move {
                            if let Err(e) = super::record_progress(&db, &id, now.0, now.1).await {
                                tracing::warn!(error = %e, session = %id, "cannot record session progress");
                            }
                        });
                    }
                }
            }
        }
    }

    /// Opens the agent's stream, relays the open exchange, then the session
    /// (with a desktop watch's injector merged in); what the technician is
    /// told last is handed back, for after the session's end is recorded.
    #[allow(clippy::too_many_arguments)]
    async fn open_and_relay<C>(
        &self,
        actor: &str,
        endpoint: &EndpointRecord,
        request: SessionRequest,
        client: Technician<C>,
        stop: &StopHandle,
        counters: &Counters,
        taps: &[Box<dyn SessionTap>],
        inject: Option<super::watch::Injector>,
    ) -> (Outcome, Option<LastWord<tokio::io::WriteHalf<C>>>)
    where
        C: AsyncRead + AsyncWrite + Unpin,
    {
        let mut client = client;
        let framing = relay_framing(&request);
        let stream = self
            .st
            .agents
            .locate(&endpoint.id)
            .local()
            .map(|h| h.open());
        let agent = match stream {
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                let msg = format!("cannot reach the endpoint: {e}");
                client.refuse(RefusalCode::Failed, msg).await;
                return (Outcome::failed(e.to_string()), None);
            }
            None => {
                let msg = "the endpoint went offline".to_owned();
                client.refuse(RefusalCode::Failed, msg).await;
                return (Outcome::failed("endpoint offline"), None);
            }
        };
        let mut agent = MsgStream::new(agent);
        let wait = match request {
            SessionRequest::Desktop { .. } => DESKTOP_OPEN_TIMEOUT,
            _ => OPEN_TIMEOUT,
        };
        // A target's session goes to its jump point with where to connect
        // and the credential, read from the vault for this connection only.
        let first = match endpoint.target.as_deref() {
            None => SessionMsg::Open(request),
            Some(t) => match crate::targets::address_for(&self.st, t, actor).await {
                Ok(address) => {
                    SessionMsg::OpenTarget(Box::new(jumpgate_proto::target::TargetOpen {
                        name: t.name.clone(),
                        address,
                        request,
                    }))
                }
                Err(e) => {
                    agent.get_mut().reset(reset_code::INTERNAL);
                    let why = e.to_string();
                    client.refuse(RefusalCode::Failed, why.clone()).await;
                    return (Outcome::failed(why), None);
                }
            },
        };
        let answer = tokio::time::timeout(wait, agent.open_with(first)).await;
        let accepted = match answer {
            Ok(Ok(Answer::Accepted(a))) => SessionMsg::Accepted(a),
            Ok(Ok(Answer::Refused(mut r))) => {
                // The endpoint's words: untrusted, cleaned before they are
                // stored or shown. Its code (e.g. a consent denial) reaches
                // the technician as it is.
                r.message =
                    crate::agents::reported::text(&r.message, crate::agents::reported::MESSAGE_MAX);
                if let Some(t) = endpoint.target.as_deref()
                    && r.message.contains(jumpgate_proto::target::HOST_KEY_CHANGED)
                {
                    crate::targets::host_key_refused(&self.st.db, t, actor, &r.message).await;
                }
                let outcome = Outcome::Refused(r.message.clone());
                client.refused(r).await;
                return (outcome, None);
            }
            Ok(Err(OpenError::Send(e))) => {
                let msg = format!("cannot reach the endpoint: {e}");
                client.refuse(RefusalCode::Failed, msg).await;
                return (Outcome::failed(e.to_string()), None);
            }
            other => {
                agent.get_mut().reset(reset_code::INTERNAL);
                let why = match other {
                    Err(_) => "the endpoint did not answer in time".to_owned(),
                    Ok(Err(OpenError::Read(e))) => format!("the endpoint failed: {e}"),
                    Ok(Err(OpenError::Unexpected(m))) => {
                        format!("the endpoint answered out of turn ({})", m.name())
                    }
                    Ok(Err(OpenError::Ended)) => {
                        "the endpoint answered out of turn (end of stream)".to_owned()
                    }
                    Ok(Ok(_) | Err(OpenError::Send(_))) => unreachable!("matched above"),
                };
                client.refuse(RefusalCode::Failed, why.clone()).await;
                return (Outcome::failed(why), None);
            }
        };
        if let Err(e) = client.accepted(&accepted).await {
            return (
                Outcome::Failed(Some(outcome::Side::Technician), e.to_string()),
                None,
            );
        }
        let (client, cbuf) = client.into_parts();
        let (mut agent, abuf) = agent.into_parts();
        let pending = relay::Pending {
            up: cbuf,
            down: abuf,
        };
        let reason = || stop.reason().to_owned();
        let (end, last_word) = relay::relay_with(
            client,
            &mut agent,
            pending,
            framing,
            &stop.token,
            reason,
            counters,
            taps,
            inject,
        )
        .await;
        let outcome = match end {
            RelayEnd::Completed => {
                // The endpoint's stream ends now, cleanly (its side is
                // done), while the technician's waits for the last word.
                if last_word.is_some() {
                    let _ = agent.shutdown().await;
                }
                Outcome::Ok
            }
            RelayEnd::Stopped => {
                agent.reset(reset_code::TERMINATED);
                Outcome::Terminated(stop.reason().to_owned())
            }
            RelayEnd::Failed(side, e) => Outcome::Failed(Some(side), e),
        };
        (outcome, last_word)
    }
}

/// The request as the agent gets it: what the technician may not decide is
/// the gateway's (who is asking; how the person at the endpoint is asked —
/// `consent`, the endpoint group's setting).
fn for_the_endpoint(
    request: SessionRequest,
    p: &Subject,
    consent: jumpgate_proto::session::ConsentMode,
) -> SessionRequest {
    match request {
        SessionRequest::Desktop {
            control,
            clipboard,
            monitor,
            codecs,
            ..
        } => SessionRequest::Desktop {
            control,
            clipboard,
            monitor,
            consent,
            technician: p.name.clone(),
            codecs,
        },
        other => other,
    }
}

/// How a session is relayed: a desktop session passes only the input it
/// was opened for (none when view-only, none while the person at the
/// endpoint holds control), and clipboard text only when it was asked for
/// — either way.
fn relay_framing(request: &SessionRequest) -> relay::Framing {
    use relay::Framing;
    match *request {
        SessionRequest::Forward { .. } => Framing::Raw,
        SessionRequest::Desktop {
            control, clipboard, ..
        } => Framing::Desktop { control, clipboard },
        _ => Framing::Messages,
    }
}

/// The session-log row of a refused session.
async fn record_denied(
    db: &Store,
    p: &Subject,
    endpoint: &EndpointRecord,
    kind: SessionKind,
    target: &str,
) -> Result<(), sqlx::Error> {
    let denied = Outcome::Denied.to_string();
    record_start(db, &event(p, endpoint, kind, target, &denied))
        .await
        .map(drop)
}

/// Writes a session's event row, its recording's row (shell and exec) and
/// its `session-open` entry, together: one commit.
async fn record_open(
    db: &Store,
    id: &SessionId,
    row: &NewEvent<'_>,
    opened: AuditEvent,
    recording: Option<&crate::recordings::Prepared>,
) -> Result<(), sqlx::Error> {
    let mut w = db.write().await?;
    insert_event_as(&mut w, id, row).await?;
    if let Some(r) = recording {
        r.insert(&mut w).await?;
    }
    w.audit(opened).await?;
    w.commit().await
}

/// Writes a session's end, its recording's end (when the recording handed
/// it over) and its `session-close` entry, together. The session has ended
/// whatever the store says: when that write fails, each is tried on its
/// own (and failures logged; the recording writes its own end), so none is
/// lost for the others.
async fn record_close(
    db: &Store,
    id: &SessionId,
    (up, down): (u64, u64),
    stored: &str,
    closed: AuditEvent,
    recording: Option<Ending>,
) {
    let together = async {
        let mut w = db.write().await?;
        end_event(&mut w, id, up, down, stored).await?;
        if let Some((ended, _)) = &recording {
            ended.write(&mut w).await?;
        }
        w.audit(closed.clone()).await?;
        w.commit().await
    }
    .await;
    if together.is_ok()
        && let Some((_, written)) = recording
    {
        let _ = written.send(());
    }
    if let Err(e) = together {
        tracing::error!(error = %e, session = %id, "cannot record the session's end with its audit entry; trying each alone");
        if let Err(e) = record_end(db, id, up, down, stored).await {
            tracing::error!(error = %e, session = %id, "cannot record session end");
        }
        db.audit_or_log(closed).await;
    }
}

/// The session event row of `p` opening a `kind` session on `e`.
fn event<'a>(
    p: &'a Subject,
    e: &'a EndpointRecord,
    kind: SessionKind,
    target: &'a str,
    outcome: &'a str,
) -> NewEvent<'a> {
    NewEvent {
        user_id: match &p.kind {
            SubjectKind::User(id) => id.as_str(),
            SubjectKind::ApiClient { client_id } => client_id,
        },
        username: &p.name,
        endpoint_id: Some(e.id.as_str()),
        endpoint_name: &e.name,
        endpoint_group: &e.group,
        kind: kind.as_str(),
        target,
        outcome,
        support_id: e.support_id(),
    }
}

/// The technician's side of a session, as [`SessionService::open`] speaks
/// to it.
pub(crate) enum Technician<C> {
    /// Session messages both ways (`jg`, the console's WebSocket, an SSH
    /// session channel's pump): the open is answered with `Accepted` or
    /// `Refused`.
    Framed(MsgStream<C>),
    /// A forward's raw bytes from the first byte (an SSH `direct-tcpip`
    /// channel, relayed without an in-memory pipe): nothing is written to
    /// it before the relay; a refusal (recorded and audited by then) ends
    /// the stream.
    Raw(C),
}

impl<C: AsyncRead + AsyncWrite + Unpin> Technician<C> {
    /// Refuses the open and ends the technician's side.
    async fn refuse(&mut self, code: RefusalCode, message: String) {
        self.refused(Refusal { code, message }).await;
    }

    /// Answers the open with `refusal` (a framed side is told it; a raw
    /// one has no words for it) and ends the technician's side.
    async fn refused(&mut self, refusal: Refusal) {
        match self {
            Self::Framed(client) => {
                let _ = client.write_msg(&SessionMsg::Refused(refusal)).await;
                let _ = client.get_mut().shutdown().await;
            }
            Self::Raw(io) => {
                tracing::info!(reason = %refusal.message, "session refused");
                let _ = io.shutdown().await;
            }
        }
    }

    /// Tells the technician the endpoint accepted (a raw side just starts).
    async fn accepted(&mut self, msg: &SessionMsg) -> Result<(), jumpgate_net::session::MsgError> {
        match self {
            Self::Framed(client) => client.write_msg(msg).await,
            Self::Raw(_) => Ok(()),
        }
    }

    /// The stream for the relay, and what the technician sent ahead.
    fn into_parts(self) -> (C, bytes::BytesMut) {
        match self {
            Self::Framed(client) => client.into_parts(),
            Self::Raw(io) => (io, bytes::BytesMut::new()),
        }
    }
}
