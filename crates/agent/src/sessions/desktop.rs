//! `desktop` sessions: the endpoint's X display to the technician, their
//! input back, with the person at the endpoint in charge.
//!
//! 1. The display: `--display` / `--xauthority`, else found from the
//!    logged-in session (`jumpgate_desktop::display`). None: `Refused
//!    {Unsupported}`.
//! 2. Consent (the session's `consent`, set by the gateway): `prompt` and
//!    `notify` start the UI child (`<this exe> agent consent-ui`, the line
//!    protocol of `jumpgate_consent::child`) on the display, as the
//!    display's owner when the agent runs as root. `prompt` asks first
//!    (denied, timed out, closed or a dead child: `Refused{ConsentDenied}`);
//!    both then show the indicator for the session's whole life. `none`
//!    shows nothing. Each session has a UI child of its own (so each
//!    technician has a bar of their own, and taking back control or ending
//!    acts on that session only).
//! 3. After `Accepted`: `ControlState`, `DesktopInfo`, then `Video`s. Three
//!    blocking threads do the X and libvpx work: capture → encode (driven
//!    by DAMAGE, paced by `FrameAck`s, captures at least
//!    `jumpgate_codec::min_spacing` of [`DesktopOptions::max_fps`]'s
//!    interval apart), input (XTEST),
//!    and, when the session allows it, the clipboard. The async loop here
//!    routes messages between them, the stream and the UI child.
//! 4. Input is applied only while the session has control and the state is
//!    `Allowed`: checked by the input thread on every event against a flag
//!    the loop clears the moment the user takes back control (then held
//!    keys and buttons are released).
//! 5. The display going away mid-session (the X server died, the user
//!    logged out: capture fails, or the UI child dies with it) ends the
//!    session cleanly with `ControlState{Ended, "the endpoint's display went
//!    away"}` ([`DISPLAY_GONE`]); whether it went away is checked by
//!    connecting to it again. That state is noted as a failure
//!    (`ControlNote::Failed`), so the gateway records the session as failed
//!    on the endpoint's side.
//! 6. The screen codec is the best of [`CODECS`] that the viewer offers
//!    (`jumpgate-1`, full-size pictures only, for a viewer that offers none:
//!    one from before the negotiation); a viewer offering none of them is
//!    refused. With `jumpgate-1` the encoder never codes a picture at a
//!    reduced size.
//! 7. A `Monitor` request for a monitor the endpoint does not have is
//!    answered with a `ControlState` noted `Refused` that says so; the
//!    session stays on what it shows.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use jumpgate_codec::{Config as CodecConfig, Encoder, Frame as CodecFrame, Rect as CodecRect};
use jumpgate_consent::child::{FromChild, ToChild};
use jumpgate_consent::{
    Decision, IndicatorConfig, IndicatorEvent, PromptRequest, Rights, SessionState, Technician,
};
use jumpgate_desktop::{
    Button, CaptureOptions, Capturer, Clipboard, DisplayOptions, DisplayTarget, Input, Rect,
    SelectionKind, TargetSource,
};
use jumpgate_proto::assist::Right as AssistRight;
use jumpgate_proto::desktop::{
    ControlNote, ControlState, Cursor, CursorShape, DesktopCommand, DesktopInfo, FrameAck,
    InputState, Key, MAX_CURSOR_SIDE, Monitor, Pointer, Video, Wheel, button, codec,
};
use jumpgate_proto::session::{Accepted, ConsentMode, RefusalCode, SessionKind, SessionMsg};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::wire::{self, MsgStream};
use super::{SessionContext, SessionError, SessionSummary};

/// The screen codecs this agent sends, best first (names of
/// [`jumpgate_proto::desktop::codec`]): `jumpgate_codec` packets, with
/// pictures at a reduced size under heavy motion or without.
pub const CODECS: [&str; 2] = [codec::REDUCED_SIZE, codec::FULL_SIZE];
/// How long the UI child gets to start and say it is ready.
const UI_READY: Duration = Duration::from_secs(15);
/// The consent prompt's own timeout (the child denies after it).
const PROMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// The agent's guard beyond the prompt's timeout (a hung child).
const PROMPT_GUARD: Duration = Duration::from_secs(5);
/// Unacknowledged packets beyond which encoding pauses.
const MAX_UNACKED_PACKETS: u64 = 240;
/// Unacknowledged bytes always allowed (a keyframe must fit).
const MIN_UNACKED_BYTES: u64 = 512 * 1024;
/// Longest wait inside the capture loop, so commands and the pointer's
/// position are looked at regularly.
const CAPTURE_TICK: Duration = Duration::from_millis(50);
/// Messages from the capture thread waiting for the stream.
const OUT_QUEUE: usize = 64;
/// Clipboard text limit, both ways.
const CLIPBOARD_LIMIT: usize = 1 << 20;
/// What the technician is told when the display went away mid-session (the
/// X server died, the user logged out).
pub const DISPLAY_GONE: &str = "the endpoint's display went away";
/// How long a check that the display still answers may take.
const DISPLAY_PROBE: Duration = Duration::from_secs(5);

/// Settings of desktop sessions (the agent's flags).
#[derive(Clone, Debug)]
pub struct DesktopOptions {
    /// `--display`: the X display to share; `None` finds the logged-in
    /// session's.
    pub display: Option<String>,
    /// `--xauthority`: the cookie file of that display.
    pub xauthority: Option<PathBuf>,
    /// The consent UI child: program and arguments. `None`: this
    /// executable with `agent consent-ui`.
    pub consent_ui: Option<(PathBuf, Vec<String>)>,
    /// Extra environment of the UI child (tests).
    pub consent_ui_env: Vec<(String, String)>,
    /// Where the technician connects from, as the prompt shows it.
    pub site: String,
    /// Nominal capture and encode rate: changes are captured as they come,
    /// at most every three quarters of its interval, and libvpx gets half
    /// its interval per frame.
    pub max_fps: u32,
}

impl Default for DesktopOptions {
    fn default() -> Self {
        Self {
            display: None,
            xauthority: None,
            consent_ui: None,
            consent_ui_env: Vec::new(),
            site: "Jumpgate".to_owned(),
            max_fps: 30,
        }
    }
}

/// Checks an X display name as given to `--display`: `[host]:N[.S]`.
///
/// # Errors
/// A message saying what is wrong with it.
pub fn check_display_name(name: &str) -> Result<(), String> {
    let Some((host, rest)) = name.rsplit_once(':') else {
        return Err(format!("{name:?} is not an X display name like :0 or :1.0"));
    };
    let (number, screen) = rest.split_once('.').unwrap_or((rest, "0"));
    let digits = |s: &str| !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(number) || !digits(screen) {
        return Err(format!("{name:?} is not an X display name like :0 or :1.0"));
    }
    if number
        .parse::<u16>()
        .map_or(true, |n| n > jumpgate_desktop::display::MAX_DISPLAY)
    {
        return Err(format!(
            "{name:?}: X display numbers go up to {}",
            jumpgate_desktop::display::MAX_DISPLAY
        ));
    }
    if host.len() > 255
        || host
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(format!("{name:?} has an invalid host part"));
    }
    Ok(())
}

/// The session's request, as the gateway passed it on.
pub(super) struct Request {
    pub(super) control: bool,
    pub(super) clipboard: bool,
    pub(super) monitor: Option<u32>,
    pub(super) consent: ConsentMode,
    pub(super) technician: String,
    /// The screen codecs the viewer decodes (`None`: a viewer from before
    /// the negotiation).
    pub(super) codecs: Option<Vec<String>>,
}

/// The codec of the session: the best both sides have, or the refusal.
fn choose_codec(offered: Option<&[String]>) -> Result<&'static str, String> {
    codec::choose(offered, &CODECS).ok_or_else(|| {
        let offered = offered.unwrap_or_default();
        let mut named: Vec<String> = offered
            .iter()
            .take(8)
            .map(|c| {
                c.chars()
                    .filter(|c| !jumpgate_proto::text::is_unsafe_char(*c))
                    .take(32)
                    .collect()
            })
            .collect();
        if offered.len() > named.len() {
            named.push("…".to_owned());
        }
        format!(
            "the viewer decodes none of this endpoint's screen codecs ({}); it offered: {}",
            CODECS.join(", "),
            if named.is_empty() {
                "none".to_owned()
            } else {
                named.join(", ")
            }
        )
    })
}

pub(super) async fn run<R, W>(
    mut rx: MsgStream<R>,
    mut tx: MsgStream<W>,
    req: Request,
    ctx: &SessionContext,
) -> Result<SessionSummary, SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let codec = match choose_codec(req.codecs.as_deref()) {
        Ok(c) => c,
        Err(message) => {
            return Err(
                super::refuse(&mut rx, &mut tx, ctx, RefusalCode::Unsupported, message).await,
            );
        }
    };
    let opts = ctx.desktop.clone();
    // Find and open the display (blocking X calls).
    let monitor = req.monitor;
    let clipboard_on = req.clipboard;
    let control = req.control;
    let opened =
        tokio::task::spawn_blocking(move || open_display(&opts, monitor, control, clipboard_on))
            .await
            .unwrap_or_else(|e| Err((RefusalCode::Failed, format!("opening the display: {e}"))));
    let display = match opened {
        Ok(d) => d,
        Err((code, message)) => {
            return Err(super::refuse(&mut rx, &mut tx, ctx, code, message).await);
        }
    };
    let (name, source) = (&display.target.display, &display.target.source);
    info!(display = %name, ?source, "desktop display");

    let technician = Technician {
        name: if req.technician.is_empty() {
            "a technician".to_owned()
        } else {
            req.technician.clone()
        },
        site: ctx.desktop.site.clone(),
    };
    let rights = Rights {
        view: true,
        control: req.control,
        clipboard: req.clipboard,
    };

    // Consent.
    let mut ui = None;
    let decision_message;
    match req.consent {
        // Only the customer client of attended support serves these; its
        // window is the consent (the customer's `view` right).
        ConsentMode::Assist => {
            let refusal = match &ctx.assist {
                None => Some((
                    RefusalCode::Unsupported,
                    "this endpoint is not an attended-support client".to_owned(),
                )),
                Some(g) if !g.allows(AssistRight::View) => {
                    Some(crate::assist::gate::not_allowed(AssistRight::View))
                }
                Some(_) => None,
            };
            if let Some((code, message)) = refusal {
                return Err(super::refuse(&mut rx, &mut tx, ctx, code, message).await);
            }
            decision_message = "shared by the customer";
        }
        ConsentMode::None => decision_message = "unattended: no consent asked",
        ConsentMode::Notify => {
            ui = Some(match Ui::spawn(&ctx.desktop, &display.target).await {
                Ok(ui) => ui,
                Err(e) => {
                    let message = format!("cannot show the session indicator: {e}");
                    return Err(
                        super::refuse(&mut rx, &mut tx, ctx, RefusalCode::Failed, message).await,
                    );
                }
            });
            decision_message = "the user was notified";
        }
        ConsentMode::Prompt => {
            let mut child = match Ui::spawn(&ctx.desktop, &display.target).await {
                Ok(ui) => ui,
                Err(e) => {
                    warn!("consent prompt: {e}");
                    let message = format!("the consent prompt could not be shown: {e}");
                    return Err(super::refuse(
                        &mut rx,
                        &mut tx,
                        ctx,
                        RefusalCode::ConsentDenied,
                        message,
                    )
                    .await);
                }
            };
            let request = PromptRequest {
                technician: technician.clone(),
                rights,
                timeout_ms: PROMPT_TIMEOUT.as_millis() as u64,
            };
            match first_prompt(&mut child, request, &mut rx).await {
                FirstPrompt::Allowed => {}
                FirstPrompt::Denied(message) => {
                    child.close().await;
                    // The prompt also goes when the display does: that is
                    // no one's denial.
                    let (code, message) = if display_gone(&display.target).await {
                        warn!("the display went away while asking for consent");
                        (RefusalCode::Failed, DISPLAY_GONE.to_owned())
                    } else {
                        info!(message, "consent denied");
                        (RefusalCode::ConsentDenied, message)
                    };
                    return Err(super::refuse(&mut rx, &mut tx, ctx, code, message).await);
                }
                FirstPrompt::TechnicianGone(result) => {
                    child.close().await;
                    return result.map(|()| SessionSummary::new(SessionKind::Desktop));
                }
            }
            ui = Some(child);
            decision_message = "allowed by the user";
        }
    }

    tx.write_msg(&SessionMsg::Accepted(Accepted::default()))
        .await?;
    let mut session = Live::new(req, display, ui, technician, codec, ctx);
    let result = session.run(&mut rx, &mut tx, decision_message).await;
    session.stop().await;
    match result {
        Ok(()) => {
            wire::finish(&mut rx, &mut tx, ctx.linger).await;
            info!(
                dropped_input = session.dropped.load(Ordering::Relaxed),
                "desktop session ended"
            );
            Ok(session.summary)
        }
        Err(e) => Err(e),
    }
}

/// What was opened on the display before asking anyone.
struct Opened {
    target: DisplayTarget,
    capturer: Capturer,
    input: Option<Input>,
    clipboard: Option<Clipboard>,
}

fn open_display(
    opts: &DesktopOptions,
    monitor: Option<u32>,
    control: bool,
    clipboard: bool,
) -> Result<Opened, (RefusalCode, String)> {
    let target = DisplayOptions {
        display: opts.display.clone(),
        xauthority: opts.xauthority.clone(),
    }
    .resolve()
    .map_err(|e| {
        debug!("no display: {e}");
        (
            RefusalCode::Unsupported,
            format!("no X display on this endpoint ({e})"),
        )
    })?;
    let failed = |what: &str| {
        let what = what.to_owned();
        move |e: jumpgate_desktop::Error| (RefusalCode::Failed, format!("{what}: {e}"))
    };
    let mut capturer = Capturer::new(&target, CaptureOptions::default())
        .map_err(failed("cannot capture the screen"))?;
    if let Some(id) = monitor {
        let name = capturer
            .monitors()
            .get(id as usize)
            .map(|m| m.name.clone())
            .ok_or((
                RefusalCode::InvalidRequest,
                format!("no monitor {id} on this endpoint"),
            ))?;
        capturer
            .select(jumpgate_desktop::Selection::Monitor(name))
            .map_err(failed("cannot select the monitor"))?;
    }
    let input = if control {
        Some(Input::new(&target).map_err(failed("cannot inject input"))?)
    } else {
        None
    };
    let clipboard = if clipboard {
        Some(
            Clipboard::new(&target, CLIPBOARD_LIMIT)
                .map_err(failed("cannot share the clipboard"))?,
        )
    } else {
        None
    };
    Ok(Opened {
        target,
        capturer,
        input,
        clipboard,
    })
}

enum FirstPrompt {
    Allowed,
    Denied(String),
    /// The technician left or the gateway closed the session while asking.
    TechnicianGone(Result<(), SessionError>),
}

const DENIED: &str = "the user at the endpoint denied the session";

async fn first_prompt<R: AsyncRead + Unpin>(
    ui: &mut Ui,
    request: PromptRequest,
    rx: &mut MsgStream<R>,
) -> FirstPrompt {
    let id = ui.next_id();
    if ui.send(&ToChild::Prompt { id, request }).await.is_err() {
        return FirstPrompt::Denied(format!("{DENIED} (the consent prompt could not be shown)"));
    }
    let guard = tokio::time::sleep(PROMPT_TIMEOUT + PROMPT_GUARD);
    tokio::pin!(guard);
    loop {
        tokio::select! {
            event = ui.recv() => match event {
                Some(FromChild::Decision { id: got, decision }) if got == id => {
                    return match decision {
                        Decision::Allowed => FirstPrompt::Allowed,
                        Decision::Denied => FirstPrompt::Denied(DENIED.to_owned()),
                        Decision::TimedOut => FirstPrompt::Denied(format!(
                            "the user at the endpoint did not answer within {} s",
                            PROMPT_TIMEOUT.as_secs()
                        )),
                    };
                }
                Some(FromChild::PromptFailed { id: got, message, .. }) if got == id => {
                    return FirstPrompt::Denied(format!("{DENIED} ({message})"));
                }
                Some(other) => debug!(?other, "UI child message while prompting"),
                None => {
                    return FirstPrompt::Denied(format!("{DENIED} (the consent prompt went away)"));
                }
            },
            () = &mut guard => {
                let _ = ui.send(&ToChild::CancelPrompt { id }).await;
                return FirstPrompt::Denied(format!(
                    "the user at the endpoint did not answer within {} s",
                    PROMPT_TIMEOUT.as_secs()
                ));
            }
            msg = rx.read_msg() => match msg {
                Ok(Some(SessionMsg::Closed { reason })) => {
                    let _ = ui.send(&ToChild::CancelPrompt { id }).await;
                    return FirstPrompt::TechnicianGone(Err(super::closed_by_gateway(reason)));
                }
                Ok(Some(other)) => debug!(got = other.name(), "ignored before the answer"),
                Ok(None) => {
                    let _ = ui.send(&ToChild::CancelPrompt { id }).await;
                    return FirstPrompt::TechnicianGone(Ok(()));
                }
                Err(e) => {
                    let _ = ui.send(&ToChild::CancelPrompt { id }).await;
                    return FirstPrompt::TechnicianGone(Err(e.into()));
                }
            },
        }
    }
}

/// The consent UI child process.
struct Ui {
    child: Child,
    stdin: Option<ChildStdin>,
    events: mpsc::Receiver<FromChild>,
    next: u64,
}

impl Ui {
    /// Starts the child on the display and waits for it to be ready.
    async fn spawn(opts: &DesktopOptions, target: &DisplayTarget) -> std::io::Result<Ui> {
        let (program, args) = match &opts.consent_ui {
            Some((p, a)) => (p.clone(), a.clone()),
            None => (
                std::env::current_exe()?,
                vec!["agent".to_owned(), "consent-ui".to_owned()],
            ),
        };
        let mut cmd = Command::new(&program);
        cmd.args(&args)
            .env("DISPLAY", &target.display)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        match &target.xauthority {
            Some(p) => cmd.env("XAUTHORITY", p),
            None => cmd.env_remove("XAUTHORITY"),
        };
        for (k, v) in &opts.consent_ui_env {
            cmd.env(k, v);
        }
        if let Some((uid, gid)) = display_owner(target) {
            debug!(uid, gid, "consent UI runs as the display's owner");
            cmd.uid(uid).gid(gid);
            if let Some(home) = home_of(uid) {
                cmd.env("HOME", home);
            }
        }
        let mut child = cmd.spawn()?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout of the UI child"))?;
        let (events_tx, events) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // Lines that are not the protocol's, or a protocol line
                // behind other output (a test harness's chatter), are
                // skipped or cut to the message.
                let text = line.find("{\"type\"").map_or(line.as_str(), |i| &line[i..]);
                match serde_json::from_str::<FromChild>(text.trim()) {
                    Ok(msg) => {
                        if events_tx.send(msg).await.is_err() {
                            return;
                        }
                    }
                    Err(_) => debug!(line, "not a UI child message"),
                }
            }
        });
        let mut ui = Ui {
            child,
            stdin,
            events,
            next: 0,
        };
        let ready = tokio::time::timeout(UI_READY, async {
            loop {
                match ui.events.recv().await {
                    Some(FromChild::Ready { .. }) => return Ok(()),
                    Some(_) => {}
                    None => return Err(std::io::Error::other("the consent UI exited at start")),
                }
            }
        })
        .await;
        match ready {
            Ok(Ok(())) => Ok(ui),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::other(
                "the consent UI did not start in time",
            )),
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    async fn send(&mut self, msg: &ToChild) -> std::io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::other("UI child closed"))?;
        let mut line = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
        line.push(b'\n');
        stdin.write_all(&line).await?;
        stdin.flush().await
    }

    /// The next message; `None` once the child is gone.
    async fn recv(&mut self) -> Option<FromChild> {
        self.events.recv().await
    }

    /// Ends the child: EOF on its stdin takes its windows down; killed if
    /// it does not exit soon.
    async fn close(&mut self) {
        drop(self.stdin.take());
        if tokio::time::timeout(Duration::from_secs(3), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Whom the UI child runs as: when the agent is root, the owner of the
/// display (its Xauthority file, else its socket, else the process it was
/// found from) unless that is root too.
fn display_owner(target: &DisplayTarget) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    if !rustix::process::geteuid().is_root() {
        return None;
    }
    let owner = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.uid(), m.gid()))
            .filter(|(uid, _)| *uid != 0)
    };
    let socket = target
        .display
        .strip_prefix(':')
        .and_then(|n| n.split('.').next())
        .map(|n| PathBuf::from(format!("/tmp/.X11-unix/X{n}")));
    let process = match target.source {
        TargetSource::Process { pid, .. } => Some(PathBuf::from(format!("/proc/{pid}"))),
        _ => None,
    };
    target
        .xauthority
        .as_deref()
        .and_then(owner)
        .or_else(|| socket.as_deref().and_then(owner))
        .or_else(|| process.as_deref().and_then(owner))
}

/// The home directory of `uid` from the password database.
fn home_of(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[2].parse::<u32>().ok()? == uid).then(|| f[5].to_owned())
    })
}

/// Messages the capture thread produces, in order.
enum Produced {
    Msg(SessionMsg),
    Failed(String),
}

enum CaptureCmd {
    Ack(u32),
    Refresh,
    Monitor(Option<u32>),
}

enum InputCmd {
    Pointer(Pointer),
    Wheel(Wheel),
    Key(Key),
    /// Release everything held (InputReset, take back control).
    Release,
}

/// A session after `Accepted`.
struct Live<'c> {
    req: Request,
    ctx: &'c SessionContext,
    technician: Technician,
    /// The display, to check that it is still there.
    target: DisplayTarget,
    opened: Option<(Capturer, Option<Input>, Option<Clipboard>)>,
    ui: Option<Ui>,
    state: InputState,
    /// Technician input is applied (state is Allowed).
    allowed: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    capture: Option<std_mpsc::Sender<CaptureCmd>>,
    input: Option<std_mpsc::Sender<InputCmd>>,
    clip_set: Option<std_mpsc::Sender<String>>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    summary: SessionSummary,
    /// The prompt asking for control again, if one is up.
    asking: Option<u64>,
    /// The screen codec chosen for the viewer.
    codec: &'static str,
    /// The last `DesktopInfo` sent (the monitors a request may name).
    shown: Option<DesktopInfo>,
    /// Attended support: the customer's rights decide (see [`AssistLive`]).
    assist: Option<AssistLive>,
    /// The captured area (root coordinates), shared with the input thread.
    area: Arc<Mutex<Option<Rect>>>,
}

/// A desktop session of the attended-support client: `view` keeps it
/// alive, `control` (no ask pending) lets input through, `clipboard` lets
/// the clipboard through; the assist window never gets technician input.
struct AssistLive {
    grants: crate::assist::AssistGrants,
    watch: tokio::sync::watch::Receiver<crate::assist::GrantState>,
    clipboard: bool,
}

impl<'c> Live<'c> {
    fn new(
        req: Request,
        opened: Opened,
        ui: Option<Ui>,
        technician: Technician,
        codec: &'static str,
        ctx: &'c SessionContext,
    ) -> Self {
        let assist = (req.consent == ConsentMode::Assist)
            .then(|| ctx.assist.clone())
            .flatten()
            .map(|grants| {
                let watch = grants.subscribe();
                let clipboard = grants.allows(AssistRight::Clipboard);
                AssistLive {
                    grants,
                    watch,
                    clipboard,
                }
            });
        let state = match &assist {
            _ if !req.control => InputState::ViewOnly,
            Some(a) if !a.grants.state().input_allowed() => InputState::TakenBack,
            _ => InputState::Allowed,
        };
        Self {
            assist,
            area: Arc::default(),
            allowed: Arc::new(AtomicBool::new(state == InputState::Allowed)),
            req,
            ctx,
            technician,
            target: opened.target,
            opened: Some((opened.capturer, opened.input, opened.clipboard)),
            ui,
            state,
            dropped: Arc::default(),
            capture: None,
            input: None,
            clip_set: None,
            stop: Arc::default(),
            threads: Vec::new(),
            summary: SessionSummary::new(SessionKind::Desktop),
            asking: None,
            codec,
            shown: None,
        }
    }

    fn indicator_state(&self) -> SessionState {
        match self.state {
            InputState::Allowed => SessionState::Controlling,
            InputState::TakenBack => SessionState::UserHasControl,
            _ => SessionState::Viewing,
        }
    }

    async fn run<R, W>(
        &mut self,
        rx: &mut MsgStream<R>,
        tx: &mut MsgStream<W>,
        decision: &str,
    ) -> Result<(), SessionError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let message = if self.req.control {
            decision.to_owned()
        } else {
            format!("view only; {decision}")
        };
        tx.write_msg(&SessionMsg::ControlState(ControlState::new(
            self.state, message,
        )))
        .await?;
        let config = IndicatorConfig::new(self.technician.clone(), self.indicator_state());
        if let Some(ui) = &mut self.ui
            && let Err(e) = ui.send(&ToChild::ShowIndicator { config }).await
        {
            return self
                .end(tx, &format!("the session indicator failed: {e}"), true)
                .await;
        }
        let (mut produced, mut clip_down) = self.start_threads()?;
        loop {
            tokio::select! {
                out = produced.recv() => match out {
                    Some(Produced::Msg(msg)) => {
                        self.sending(&msg);
                        tx.queue(&msg);
                        // Whatever else is ready goes in the same write.
                        while tx.queued() < 256 * 1024 {
                            match produced.try_recv() {
                                Ok(Produced::Msg(msg)) => {
                                    self.sending(&msg);
                                    tx.queue(&msg);
                                }
                                Ok(Produced::Failed(e)) => {
                                    tx.flush().await?;
                                    return self.capture_failed(tx, e).await;
                                }
                                Err(_) => break,
                            }
                        }
                        tx.flush().await?;
                    }
                    Some(Produced::Failed(e)) => return self.capture_failed(tx, e).await,
                    None => return self.capture_failed(tx, "capture stopped".into()).await,
                },
                text = recv_opt(&mut clip_down) => {
                    if let Some(text) = text.filter(|_| self.clipboard_ok()) {
                        self.summary.bytes_out += text.len() as u64;
                        tx.write_msg(&SessionMsg::Clipboard(text)).await?;
                    }
                },
                () = assist_changed(&mut self.assist) => {
                    if let Some(end) = self.on_grants(tx).await? {
                        return self.end(tx, &end, false).await;
                    }
                },
                event = ui_recv(&mut self.ui) => {
                    if let Some((end, failed)) = self.on_ui(event, tx).await? {
                        return self.end(tx, &end, failed).await;
                    }
                },
                msg = rx.read_msg() => match msg {
                    Ok(Some(msg)) => {
                        if self.on_technician(msg, tx).await? {
                            return Ok(());
                        }
                    }
                    Ok(None) => return Ok(()),
                    Err(e) => return Err(e.into()),
                },
            }
        }
    }

    /// Notes what goes to the technician from the capture thread.
    fn sending(&mut self, msg: &SessionMsg) {
        match msg {
            SessionMsg::Video(v) => self.summary.bytes_out += v.data.len() as u64,
            SessionMsg::DesktopInfo(i) => self.shown = Some(i.clone()),
            _ => {}
        }
    }

    /// A monitor the endpoint does not have (by the monitors last shown to
    /// the technician): the words saying so, and what is still shown.
    fn unknown_monitor(&self, id: u32) -> Option<String> {
        let shown = self.shown.as_ref()?;
        if shown.monitors.iter().any(|m| m.id == id) {
            return None;
        }
        let still = match shown
            .monitor
            .and_then(|m| shown.monitors.iter().find(|x| x.id == m))
        {
            Some(m) => format!("monitor {} ({})", m.id, m.name),
            None => "all monitors".to_owned(),
        };
        let ids: Vec<String> = shown.monitors.iter().map(|m| m.id.to_string()).collect();
        let has = if ids.is_empty() {
            "none".to_owned()
        } else {
            ids.join(", ")
        };
        Some(format!(
            "there is no monitor {id} on this endpoint (its monitors: {has}); still showing {still}"
        ))
    }

    /// A message from the technician; `true` ends the session.
    async fn on_technician<W: AsyncWrite + Unpin>(
        &mut self,
        msg: SessionMsg,
        tx: &mut MsgStream<W>,
    ) -> Result<bool, SessionError> {
        match msg {
            SessionMsg::Pointer(p) => self.input(InputCmd::Pointer(p), 5),
            SessionMsg::Wheel(w) => self.input(InputCmd::Wheel(w), 4),
            SessionMsg::Key(k) => self.input(InputCmd::Key(k), 5),
            SessionMsg::InputReset => self.input(InputCmd::Release, 0),
            SessionMsg::Clipboard(text) => {
                if self.allowed.load(Ordering::SeqCst)
                    && self.clipboard_ok()
                    && let Some(c) = &self.clip_set
                {
                    self.summary.bytes_in += text.len() as u64;
                    let _ = c.send(text);
                } else {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            SessionMsg::FrameAck(FrameAck { seq }) => self.capture(CaptureCmd::Ack(seq)),
            SessionMsg::Ping(n) => tx.write_msg(&SessionMsg::Pong(n)).await?,
            SessionMsg::DesktopCommand(DesktopCommand::Refresh) => {
                self.capture(CaptureCmd::Refresh);
            }
            SessionMsg::DesktopCommand(DesktopCommand::Monitor { monitor }) => {
                if let Some(message) = monitor.and_then(|id| self.unknown_monitor(id)) {
                    debug!(message, "monitor request refused");
                    tx.write_msg(&SessionMsg::ControlState(ControlState {
                        input: self.state,
                        message,
                        note: Some(ControlNote::Refused),
                    }))
                    .await?;
                } else {
                    self.capture(CaptureCmd::Monitor(monitor));
                }
            }
            SessionMsg::DesktopCommand(DesktopCommand::RequestControl) => {
                self.request_control().await;
            }
            SessionMsg::Closed { reason } => return Err(super::closed_by_gateway(reason)),
            other => {
                return Err(SessionError::Unexpected {
                    got: other.name(),
                    during: "during a desktop session",
                });
            }
        }
        Ok(false)
    }

    fn input(&mut self, cmd: InputCmd, bytes: u64) {
        let release = matches!(cmd, InputCmd::Release);
        if !release && (!self.allowed.load(Ordering::SeqCst) || self.on_assist_window(&cmd)) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.summary.bytes_in += bytes;
        if let Some(i) = &self.input {
            let _ = i.send(cmd);
        } else if !release {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn capture(&self, cmd: CaptureCmd) {
        if let Some(c) = &self.capture {
            let _ = c.send(cmd);
        }
    }

    /// Whether the clipboard may cross (attended support: the customer's
    /// `clipboard` right).
    fn clipboard_ok(&self) -> bool {
        self.assist.as_ref().is_none_or(|a| a.clipboard)
    }

    /// Whether `cmd` would reach the customer's assist window (a pointer
    /// event over it, a key while it has the focus): never applied.
    fn on_assist_window(&self, cmd: &InputCmd) -> bool {
        let Some(a) = &self.assist else { return false };
        let w = a.grants.window();
        match cmd {
            InputCmd::Pointer(p) => {
                let (ox, oy) = self
                    .area
                    .lock()
                    .ok()
                    .and_then(|a| *a)
                    .map_or((0, 0), |r| (r.x, r.y));
                w.covers(ox + i32::from(p.x), oy + i32::from(p.y))
            }
            InputCmd::Key(_) => w.focused,
            _ => false,
        }
    }

    /// The customer's rights changed: `Some(message)` ends the session
    /// (`view` revoked).
    async fn on_grants<W: AsyncWrite + Unpin>(
        &mut self,
        tx: &mut MsgStream<W>,
    ) -> Result<Option<String>, SessionError> {
        let Some(a) = &mut self.assist else {
            return Ok(None);
        };
        let g = *a.watch.borrow_and_update();
        if !g.rights.contains(AssistRight::View) {
            return Ok(Some("the customer stopped sharing the screen".to_owned()));
        }
        a.clipboard = g.rights.contains(AssistRight::Clipboard);
        if !self.req.control {
            return Ok(None);
        }
        let want = g.input_allowed();
        if want == self.allowed.load(Ordering::SeqCst) {
            return Ok(None);
        }
        self.allowed.store(want, Ordering::SeqCst);
        if want {
            self.set_state(InputState::Allowed, "the customer allowed control", tx)
                .await?;
        } else {
            if let Some(i) = &self.input {
                let _ = i.send(InputCmd::Release);
            }
            let message = if g.asking {
                "control paused while the customer answers a request"
            } else {
                "the customer took back control"
            };
            self.set_state(InputState::TakenBack, message, tx).await?;
        }
        Ok(None)
    }

    /// The technician asks for control again: prompt the user.
    async fn request_control(&mut self) {
        if !self.req.control || self.state != InputState::TakenBack || self.asking.is_some() {
            return;
        }
        let technician = self.technician.clone();
        let Some(ui) = &mut self.ui else { return };
        let id = ui.next_id();
        let request = PromptRequest {
            technician,
            rights: Rights {
                view: true,
                control: true,
                clipboard: self.req.clipboard,
            },
            timeout_ms: PROMPT_TIMEOUT.as_millis() as u64,
        };
        if ui.send(&ToChild::Prompt { id, request }).await.is_ok() {
            self.asking = Some(id);
        }
    }

    /// An event of the UI child; `Some((message, failed))` ends the
    /// session.
    async fn on_ui<W: AsyncWrite + Unpin>(
        &mut self,
        event: Option<FromChild>,
        tx: &mut MsgStream<W>,
    ) -> Result<Option<(String, bool)>, SessionError> {
        let Some(event) = event else {
            return Ok(Some(ui_gone(&self.target).await));
        };
        match event {
            FromChild::Indicator(IndicatorEvent::TakeBackControl { trigger }) => {
                if self.state == InputState::Allowed {
                    // Dropped at once: the input thread checks the flag on
                    // every event, then releases what is held.
                    self.allowed.store(false, Ordering::SeqCst);
                    if let Some(i) = &self.input {
                        let _ = i.send(InputCmd::Release);
                    }
                    info!(?trigger, "the user took back control");
                    self.set_state(InputState::TakenBack, "the user took back control", tx)
                        .await?;
                }
            }
            FromChild::Indicator(IndicatorEvent::EndSession) => {
                return Ok(Some(("the user ended the session".to_owned(), false)));
            }
            FromChild::Indicator(IndicatorEvent::Lost { error }) => {
                warn!(error, "the session indicator was lost");
                return Ok(Some(ui_gone(&self.target).await));
            }
            FromChild::IndicatorFailed { message } => {
                warn!(message, "the session indicator could not be shown");
                return Ok(Some((
                    format!("the session indicator could not be shown: {message}"),
                    true,
                )));
            }
            FromChild::Decision { id, decision } if Some(id) == self.asking => {
                self.asking = None;
                if decision == Decision::Allowed {
                    self.allowed.store(true, Ordering::SeqCst);
                    self.set_state(InputState::Allowed, "the user gave control back", tx)
                        .await?;
                } else {
                    let m = "the user refused to give control back";
                    self.set_state(InputState::TakenBack, m, tx).await?;
                }
            }
            FromChild::PromptFailed { id, .. } if Some(id) == self.asking => {
                self.asking = None;
                let m = "the user refused to give control back";
                self.set_state(InputState::TakenBack, m, tx).await?;
            }
            other => debug!(?other, "UI child message"),
        }
        Ok(None)
    }

    async fn set_state<W: AsyncWrite + Unpin>(
        &mut self,
        state: InputState,
        message: &str,
        tx: &mut MsgStream<W>,
    ) -> Result<(), SessionError> {
        self.state = state;
        let shown = self.indicator_state();
        if let Some(ui) = &mut self.ui {
            let _ = ui.send(&ToChild::SetState { state: shown }).await;
        }
        tx.write_msg(&SessionMsg::ControlState(ControlState::new(state, message)))
            .await?;
        Ok(())
    }

    /// Capturing failed: the display went away, or capture itself broke.
    /// Either way the technician is told why and the session ends.
    async fn capture_failed<W: AsyncWrite + Unpin>(
        &mut self,
        tx: &mut MsgStream<W>,
        error: String,
    ) -> Result<(), SessionError> {
        let message = if display_gone(&self.target).await {
            warn!(error, "the display went away");
            DISPLAY_GONE.to_owned()
        } else {
            warn!(error, "desktop capture failed");
            format!("capturing the screen failed: {error}")
        };
        self.end(tx, &message, true).await
    }

    /// The user ended the session (or its UI died), or something failed
    /// here (`failed`: the display went away): say so, then end.
    async fn end<W: AsyncWrite + Unpin>(
        &mut self,
        tx: &mut MsgStream<W>,
        message: &str,
        failed: bool,
    ) -> Result<(), SessionError> {
        self.allowed.store(false, Ordering::SeqCst);
        if let Some(i) = &self.input {
            let _ = i.send(InputCmd::Release);
        }
        info!(message, "desktop session ended at the endpoint");
        self.state = InputState::Ended;
        tx.write_msg(&SessionMsg::ControlState(ControlState {
            input: InputState::Ended,
            message: message.to_owned(),
            note: failed.then_some(ControlNote::Failed),
        }))
        .await?;
        Ok(())
    }

    /// Stops the threads (input released) and the UI child.
    async fn stop(&mut self) {
        self.allowed.store(false, Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
        self.capture = None;
        self.input = None;
        self.clip_set = None;
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        if let Some(ui) = &mut self.ui {
            ui.close().await;
        }
    }

    #[allow(clippy::type_complexity)]
    fn start_threads(
        &mut self,
    ) -> Result<(mpsc::Receiver<Produced>, Option<mpsc::Receiver<String>>), SessionError> {
        let (capturer, input, clipboard) = self.opened.take().expect("opened once");
        let area = Arc::clone(&self.area);
        let (out_tx, out_rx) = mpsc::channel(OUT_QUEUE);
        let (cap_tx, cap_rx) = std_mpsc::channel();
        if let Some(monitor) = self.req.monitor {
            // The monitor asked for at the start (selected when the display
            // was opened) is the capture thread's first command, so its
            // first `DesktopInfo` names it and input lands in its
            // coordinates.
            let _ = cap_tx.send(CaptureCmd::Monitor(Some(monitor)));
        }
        let max_fps = self.ctx.desktop.max_fps.clamp(1, 60);
        let capture_area = area.clone();
        let stop = self.stop.clone();
        let codec = self.codec;
        self.threads.push(spawn("jg-desktop-capture", move || {
            capture_loop(
                capturer,
                &cap_rx,
                &out_tx,
                &capture_area,
                &stop,
                max_fps,
                codec,
            );
        })?);
        self.capture = Some(cap_tx);
        if let Some(input) = input {
            let (in_tx, in_rx) = std_mpsc::channel();
            let allowed = self.allowed.clone();
            let dropped = self.dropped.clone();
            self.threads.push(spawn("jg-desktop-input", move || {
                input_loop(input, &in_rx, &allowed, &dropped, &area);
            })?);
            self.input = Some(in_tx);
        }
        let mut clip_down = None;
        if let Some(clipboard) = clipboard {
            let (set_tx, set_rx) = std_mpsc::channel();
            let (down_tx, down_rx) = mpsc::channel(4);
            let stop = self.stop.clone();
            self.threads.push(spawn("jg-desktop-clipboard", move || {
                clipboard_loop(&clipboard, &set_rx, &down_tx, &stop);
            })?);
            self.clip_set = Some(set_tx);
            clip_down = Some(down_rx);
        }
        Ok((out_rx, clip_down))
    }
}

/// The UI child died or lost its windows: the user ended the session,
/// unless the display itself went away (which takes the child along: a
/// failure).
async fn ui_gone(target: &DisplayTarget) -> (String, bool) {
    if display_gone(target).await {
        (DISPLAY_GONE.to_owned(), true)
    } else {
        ("the user ended the session".to_owned(), false)
    }
}

/// Whether the display no longer accepts a connection (a server that does
/// not answer within [`DISPLAY_PROBE`] counts as gone).
fn display_gone(target: &DisplayTarget) -> impl Future<Output = bool> + Send + 'static {
    let target = target.clone();
    async move {
        let probe = tokio::task::spawn_blocking(move || target.connect().is_err());
        !matches!(
            tokio::time::timeout(DISPLAY_PROBE, probe).await,
            Ok(Ok(false))
        )
    }
}

async fn recv_opt(rx: &mut Option<mpsc::Receiver<String>>) -> Option<String> {
    match rx {
        Some(r) => {
            let got = r.recv().await;
            if got.is_none() {
                // The clipboard thread stopped: no more changes.
                *rx = None;
            }
            got
        }
        None => std::future::pending().await,
    }
}

/// Completes when the customer's rights change; never outside attended
/// support (nor once the grants are gone, which `AssistLive` prevents).
async fn assist_changed(assist: &mut Option<AssistLive>) {
    let changed = match assist {
        Some(a) => a.watch.changed().await.is_ok(),
        None => false,
    };
    if !changed {
        std::future::pending::<()>().await;
    }
}

async fn ui_recv(ui: &mut Option<Ui>) -> Option<FromChild> {
    match ui {
        Some(ui) => ui.recv().await,
        None => std::future::pending().await,
    }
}

fn spawn(
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, SessionError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .map_err(SessionError::local("starting a desktop thread"))
}

/// The encoder's settings for a session at `max_fps` with `codec`.
fn encoder_config(max_fps: u32, codec: &str) -> CodecConfig {
    let mut config = CodecConfig {
        max_fps,
        // Half the frame interval for libvpx; the rest is capture,
        // comparison and the other processes of the machine.
        video_budget: Duration::from_micros(500_000 / u64::from(max_fps.max(1))),
        ..CodecConfig::default()
    };
    if codec != codec::REDUCED_SIZE {
        // The viewer draws full-size pictures only.
        config.max_downscale = 0;
    }
    config
}

/// Whether an encode that did `stats` starts [`jumpgate_codec::min_spacing`]
/// before the next capture: one that sent changes (a video frame or
/// lossless tiles of a change) does. A refinement alone does not: made
/// between two frames of a moving source (its still parts, made exact),
/// it would push the capture of the next frame back by most of an
/// interval, past the frame after it.
fn spaces_next_capture(stats: &jumpgate_codec::EncodeStats) -> bool {
    stats.video_frames > 0 || stats.lossless_tiles > 0
}

/// Capture → encode → `Video`, paced by acknowledgements.
fn capture_loop(
    mut capturer: Capturer,
    cmds: &std_mpsc::Receiver<CaptureCmd>,
    out: &mpsc::Sender<Produced>,
    area: &Mutex<Option<Rect>>,
    stop: &AtomicBool,
    max_fps: u32,
    codec: &'static str,
) {
    let mut cap = CaptureState {
        codec,
        encoder: Encoder::new(encoder_config(max_fps, codec)),
        seq: 0,
        sent: 0,
        acked: 0,
        acked_seq: 0,
        inflight: VecDeque::new(),
        info: None,
        selected: None,
        cursor_serial: None,
        cursor_pos: None,
        last_pointer: Instant::now(),
        retry: false,
    };
    if let Err(e) = cap.run(&mut capturer, cmds, out, area, stop, max_fps) {
        let _ = out.blocking_send(Produced::Failed(e));
    }
}

struct CaptureState {
    /// The session's codec name (in `DesktopInfo`).
    codec: &'static str,
    encoder: Encoder,
    seq: u32,
    /// Cumulative packet bytes produced / acknowledged.
    sent: u64,
    acked: u64,
    acked_seq: u32,
    /// (seq, cumulative bytes up to and including it)
    inflight: VecDeque<(u32, u64)>,
    info: Option<DesktopInfo>,
    selected: Option<u32>,
    cursor_serial: Option<u32>,
    cursor_pos: Option<(i32, i32)>,
    last_pointer: Instant,
    /// The encoder held changes back: encode again soon without new damage.
    retry: bool,
}

/// The thread's receiver is gone: the session ended.
struct Gone;

impl CaptureState {
    fn run(
        &mut self,
        capturer: &mut Capturer,
        cmds: &std_mpsc::Receiver<CaptureCmd>,
        out: &mpsc::Sender<Produced>,
        area: &Mutex<Option<Rect>>,
        stop: &AtomicBool,
        max_fps: u32,
    ) -> Result<(), String> {
        let interval = Duration::from_micros(1_000_000 / u64::from(max_fps));
        let min_spacing = jumpgate_codec::min_spacing(interval);
        let mut last_encode: Option<Instant> = None;
        // The last encode produced nothing (refinement held back).
        let mut idle_encode = false;
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            // Commands first (acks open the window).
            loop {
                match cmds.try_recv() {
                    Ok(cmd) => self.command(cmd, capturer).map_err(|e| e.to_string())?,
                    Err(std_mpsc::TryRecvError::Empty) => break,
                    Err(std_mpsc::TryRecvError::Disconnected) => return Ok(()),
                }
            }
            if self.too_much_unacked() {
                // Damage keeps queueing on the X connection meanwhile.
                match cmds.recv_timeout(Duration::from_millis(20)) {
                    Ok(cmd) => self.command(cmd, capturer).map_err(|e| e.to_string())?,
                    Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
                }
                continue;
            }
            let now = Instant::now();
            // Driven by damage: a change is captured as soon as
            // `min_spacing` has passed since the last capture that sent
            // something, not on a fixed grid. The spacing is a quarter
            // below the frame interval, so a source painting at about the
            // frame rate is captured once per frame even when its frames
            // come a little late and then early (jitter), instead of one
            // being overwritten before the grid reaches it.
            if let Some(t) = last_encode
                && now < t + min_spacing
            {
                match cmds.recv_timeout(t + min_spacing - now) {
                    Ok(cmd) => self.command(cmd, capturer).map_err(|e| e.to_string())?,
                    Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
                }
                continue;
            }
            // Held-back changes and due refinement are retried at the frame
            // rate (not in a busy loop while the link is full).
            let mut wait = CAPTURE_TICK;
            if self.retry {
                wait = wait.min(interval);
            }
            if let Some(due) = self.encoder.refine_due() {
                let floor = if idle_encode {
                    interval
                } else {
                    Duration::ZERO
                };
                wait = wait.min(due.saturating_duration_since(now).max(floor));
            }
            let update = capturer.next_update(wait).map_err(|e| e.to_string())?;
            let (full, rects, cursor_changed) = match update {
                Some(u) => (
                    u.full,
                    u.rects
                        .iter()
                        .filter(|r| r.x >= 0 && r.y >= 0 && r.width > 0 && r.height > 0)
                        .map(|r| CodecRect::new(r.x as u32, r.y as u32, r.width, r.height))
                        .collect::<Vec<_>>(),
                    u.cursor_changed,
                ),
                None => (false, Vec::new(), false),
            };
            if full && self.send_info(capturer, area, out).is_err() {
                return Ok(());
            }
            let refine = self
                .encoder
                .refine_due()
                .is_some_and(|t| t <= Instant::now());
            if full || !rects.is_empty() || refine || self.retry {
                let f = capturer.frame();
                let frame = CodecFrame::new(f.width, f.height, f.stride, &f.data)
                    .map_err(|e| e.to_string())?;
                let now = Instant::now();
                let dirty = if full { None } else { Some(rects.as_slice()) };
                let (packets, stats) = self
                    .encoder
                    .encode_with_stats(&frame, dirty, now)
                    .map_err(|e| e.to_string())?;
                self.retry = stats.deferred;
                idle_encode = packets.is_empty();
                if spaces_next_capture(&stats) {
                    last_encode = Some(now);
                }
                for p in packets {
                    self.seq = self.seq.wrapping_add(1);
                    self.sent += p.len() as u64;
                    self.inflight.push_back((self.seq, self.sent));
                    let msg = SessionMsg::Video(Video {
                        seq: self.seq,
                        data: Bytes::from(p.to_bytes()),
                    });
                    if out.blocking_send(Produced::Msg(msg)).is_err() {
                        return Ok(());
                    }
                }
            }
            if cursor_changed && self.send_shape(capturer, out).is_err() {
                return Ok(());
            }
            if (cursor_changed || self.last_pointer.elapsed() >= interval)
                && self.send_pointer(capturer, out).is_err()
            {
                return Ok(());
            }
        }
    }

    fn command(
        &mut self,
        cmd: CaptureCmd,
        capturer: &mut Capturer,
    ) -> jumpgate_desktop::Result<()> {
        match cmd {
            CaptureCmd::Ack(seq) => {
                let mut cumulative = None;
                while let Some(&(s, c)) = self.inflight.front() {
                    // Sequence numbers only grow within a session (2^32
                    // packets are beyond any session's length).
                    if s > seq {
                        break;
                    }
                    cumulative = Some(c);
                    self.inflight.pop_front();
                }
                if let Some(c) = cumulative {
                    self.acked = c;
                    self.acked_seq = seq;
                    self.encoder.on_acked(Instant::now(), c);
                }
            }
            CaptureCmd::Refresh => {
                self.encoder.force_keyframe();
                // Encode without waiting for a change (an idle screen has
                // none coming).
                self.retry = true;
            }
            CaptureCmd::Monitor(monitor) => {
                let selection = match monitor {
                    None => jumpgate_desktop::Selection::All,
                    Some(id) => match capturer.monitors().get(id as usize) {
                        Some(m) => jumpgate_desktop::Selection::Monitor(m.name.clone()),
                        None => {
                            debug!(id, "no such monitor");
                            return Ok(());
                        }
                    },
                };
                capturer.select(selection)?;
                self.selected = monitor;
                // The next update is a full frame: a new DesktopInfo.
                self.info = None;
            }
        }
        Ok(())
    }

    fn too_much_unacked(&self) -> bool {
        let packets = u64::from(self.seq.wrapping_sub(self.acked_seq));
        let bytes = self.sent - self.acked;
        // One second at the current video target.
        let second = u64::from(self.encoder.target_kbps()) * 1000 / 8;
        packets > MAX_UNACKED_PACKETS || bytes > second.max(MIN_UNACKED_BYTES)
    }

    fn send_info(
        &mut self,
        capturer: &Capturer,
        area: &Mutex<Option<Rect>>,
        out: &mpsc::Sender<Produced>,
    ) -> Result<(), Gone> {
        let region = capturer.region();
        let monitors: Vec<Monitor> = capturer
            .monitors()
            .iter()
            .enumerate()
            .map(|(i, m)| Monitor {
                id: i as u32,
                name: m.name.clone(),
                x: m.rect.x,
                y: m.rect.y,
                width: m.rect.width,
                height: m.rect.height,
                primary: m.primary,
            })
            .collect();
        // A monitor that went away leaves capture on the whole screen.
        let (sw, sh) = capturer.screen_size();
        let whole = region.x == 0 && region.y == 0 && (region.width, region.height) == (sw, sh);
        let selected = self.selected.filter(|_| !whole || monitors.len() == 1);
        let info = DesktopInfo {
            width: region.width,
            height: region.height,
            monitors,
            monitor: selected,
            codec: self.codec.to_owned(),
        };
        if let Ok(mut a) = area.lock() {
            *a = selected.map(|_| region);
        }
        if self.info.as_ref() != Some(&info) {
            debug!(width = info.width, height = info.height, "desktop info");
            self.info = Some(info.clone());
            // A new stream starts with the next packets.
            self.encoder.force_keyframe();
            out.blocking_send(Produced::Msg(SessionMsg::DesktopInfo(info)))
                .map_err(|_| Gone)?;
        }
        Ok(())
    }

    fn send_shape(
        &mut self,
        capturer: &Capturer,
        out: &mpsc::Sender<Produced>,
    ) -> Result<(), Gone> {
        let Ok(c) = capturer.cursor() else {
            return Ok(());
        };
        if self.cursor_serial == Some(c.serial) {
            return Ok(());
        }
        self.cursor_serial = Some(c.serial);
        let w = c.width.min(u32::from(MAX_CURSOR_SIDE));
        let h = c.height.min(u32::from(MAX_CURSOR_SIDE));
        let mut rgba = Vec::with_capacity((w * h * 4) as usize);
        for y in 0..h {
            for x in 0..w {
                let p = c
                    .pixels
                    .get((y * c.width + x) as usize)
                    .copied()
                    .unwrap_or(0);
                let a = p >> 24;
                let un =
                    |v: u32| -> u8 { (v * 255).checked_div(a).map_or(0, |u| u.min(255) as u8) };
                rgba.extend_from_slice(&[
                    un((p >> 16) & 0xff),
                    un((p >> 8) & 0xff),
                    un(p & 0xff),
                    a as u8,
                ]);
            }
        }
        let shape = CursorShape {
            id: c.serial,
            width: w as u16,
            height: h as u16,
            hot_x: c.xhot.min(w.saturating_sub(1)) as u16,
            hot_y: c.yhot.min(h.saturating_sub(1)) as u16,
            rgba: Bytes::from(rgba),
        };
        out.blocking_send(Produced::Msg(SessionMsg::CursorShape(shape)))
            .map_err(|_| Gone)?;
        self.cursor_pos = None;
        Ok(())
    }

    fn send_pointer(
        &mut self,
        capturer: &Capturer,
        out: &mpsc::Sender<Produced>,
    ) -> Result<(), Gone> {
        self.last_pointer = Instant::now();
        let Ok((x, y)) = capturer.pointer() else {
            return Ok(());
        };
        if self.cursor_pos == Some((x, y)) {
            return Ok(());
        }
        self.cursor_pos = Some((x, y));
        let cursor = Cursor {
            x,
            y,
            shape: self.cursor_serial.unwrap_or(0),
        };
        out.blocking_send(Produced::Msg(SessionMsg::Cursor(cursor)))
            .map_err(|_| Gone)
    }
}

/// Applies technician input while it is allowed.
fn input_loop(
    mut input: Input,
    cmds: &std_mpsc::Receiver<InputCmd>,
    allowed: &AtomicBool,
    dropped: &AtomicU64,
    area: &Mutex<Option<Rect>>,
) {
    let mut held: u8 = 0;
    let mut current_area = None;
    let mut warned = false;
    while let Ok(cmd) = cmds.recv() {
        let result = match cmd {
            InputCmd::Release => {
                held = 0;
                input.release_all()
            }
            _ if !allowed.load(Ordering::SeqCst) => {
                dropped.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            InputCmd::Pointer(p) => {
                let a = area.lock().ok().and_then(|a| *a);
                if a != current_area {
                    current_area = a;
                    input.set_area(a);
                }
                apply_pointer(&mut input, p, &mut held)
            }
            InputCmd::Wheel(w) => input.scroll(i32::from(w.dx), i32::from(w.dy)),
            InputCmd::Key(k) => input.key(k.keysym, k.down),
        };
        if let Err(e) = result
            && !std::mem::replace(&mut warned, true)
        {
            warn!("desktop input: {e}");
        }
    }
    // The session is over: nothing stays pressed.
    let _ = input.release_all();
}

fn apply_pointer(input: &mut Input, p: Pointer, held: &mut u8) -> jumpgate_desktop::Result<()> {
    input.move_to(i32::from(p.x), i32::from(p.y))?;
    let changed = *held ^ p.buttons;
    for (bit, b) in [
        (button::LEFT, Button::Left),
        (button::MIDDLE, Button::Middle),
        (button::RIGHT, Button::Right),
        (button::BACK, Button::Back),
        (button::FORWARD, Button::Forward),
    ] {
        if changed & bit != 0 {
            input.button(b, p.buttons & bit != 0)?;
        }
    }
    *held = p.buttons;
    Ok(())
}

/// The clipboard both ways: technician text set, endpoint changes read and
/// sent down.
fn clipboard_loop(
    clipboard: &Clipboard,
    set: &std_mpsc::Receiver<String>,
    down: &mpsc::Sender<String>,
    stop: &AtomicBool,
) {
    let mut last: Option<String> = None;
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        loop {
            match set.try_recv() {
                Ok(text) => {
                    if let Err(e) = clipboard.set(SelectionKind::Clipboard, &text) {
                        warn!("setting the clipboard: {e}");
                    }
                    last = Some(text);
                }
                Err(std_mpsc::TryRecvError::Empty) => break,
                Err(std_mpsc::TryRecvError::Disconnected) => return,
            }
        }
        match clipboard.next_change(Duration::from_millis(100)) {
            Ok(Some(change)) if change.selection == SelectionKind::Clipboard => {
                match clipboard.get(SelectionKind::Clipboard, Duration::from_secs(2)) {
                    Ok(Some(text)) if last.as_ref() != Some(&text) => {
                        last = Some(text.clone());
                        if down.blocking_send(text).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => debug!("reading the clipboard: {e}"),
                }
            }
            Ok(_) => {}
            Err(e) => {
                warn!("clipboard: {e}");
                return;
            }
        }
    }
}

/// The body of `jumpgate agent consent-ui`: the consent UI child on
/// stdin/stdout (see `jumpgate_consent::child`).
///
/// # Errors
/// Reading stdin failed or a line was too long.
pub fn run_consent_ui() -> std::io::Result<()> {
    let stdin = std::io::stdin().lock();
    jumpgate_consent::child::run_child(stdin, std::io::stdout())
}

#[cfg(test)]
mod tests {
    use super::{CODECS, check_display_name, choose_codec, encoder_config, spaces_next_capture};
    use jumpgate_codec::EncodeStats;
    use jumpgate_proto::desktop::codec;

    /// A refinement made between two frames of a moving picture does not
    /// hold the next frame's capture back; a change sent does.
    #[test]
    fn only_a_change_sent_spaces_the_next_capture() {
        let video = EncodeStats {
            changed_tiles: 2040,
            video_frames: 1,
            refined_tiles: 2,
            ..EncodeStats::default()
        };
        let typed = EncodeStats {
            changed_tiles: 1,
            lossless_tiles: 1,
            ..EncodeStats::default()
        };
        let refined = EncodeStats {
            refined_tiles: 2,
            ..EncodeStats::default()
        };
        let held = EncodeStats {
            changed_tiles: 2040,
            deferred: true,
            ..EncodeStats::default()
        };
        assert!(spaces_next_capture(&video));
        assert!(spaces_next_capture(&typed));
        assert!(!spaces_next_capture(&refined));
        assert!(!spaces_next_capture(&held));
    }

    /// A viewer that draws full-size pictures only never gets a reduced
    /// one: the encoder may not scale down. One that offers no list is
    /// such a viewer; one that offers nothing known is refused, by name.
    #[test]
    fn the_codec_decides_whether_pictures_may_be_reduced() {
        assert_eq!(encoder_config(30, codec::FULL_SIZE).max_downscale, 0);
        assert!(encoder_config(30, codec::REDUCED_SIZE).max_downscale > 0);
        let all: Vec<String> = CODECS.iter().map(|c| (*c).to_owned()).collect();
        assert_eq!(choose_codec(Some(&all)), Ok(codec::REDUCED_SIZE));
        assert_eq!(choose_codec(None), Ok(codec::FULL_SIZE));
        let odd = ["vp8".to_owned(), "jumpgate-9\u{1b}[31m".to_owned()];
        let refusal = choose_codec(Some(&odd)).unwrap_err();
        assert_eq!(
            refusal,
            "the viewer decodes none of this endpoint's screen codecs (jumpgate-2, jumpgate-1); it offered: vp8, jumpgate-9[31m"
        );
        assert!(
            choose_codec(Some(&[]))
                .unwrap_err()
                .ends_with("it offered: none")
        );
    }

    #[test]
    fn display_names_are_checked() {
        for ok in [":0", ":1.0", "localhost:10", "unix:3.1", ":59535"] {
            assert!(check_display_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "0", ":", ":x", ":1.", ":1.y", "a b:0", ":123456", ":59536", ":65535",
        ] {
            assert!(check_display_name(bad).is_err(), "{bad}");
        }
    }
}
