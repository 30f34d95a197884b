//! The customer client's control loop: attended-support messages of the
//! gateway (stream 0) on one side, the customer's window on the other, and
//! the grants broker in between. It outlives connections: a reconnect
//! picks up with the same grants.

use std::collections::VecDeque;
use std::time::Duration;

use jumpgate_consent::assist_child::{ChatKind, FromAssistUi, Switch, ToAssistUi};
use jumpgate_proto::assist::{
    ASK_TIMEOUT_SECS, AssistMsg, CHAT_PER_SECOND, ChatFrom, MAX_CHAT_BYTES, Participant,
    ParticipantRole, Right, SupportState,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::grants::{AssistGrants, WindowGuard};
use super::pin::{self, PinState};
use super::ui::UiLink;

/// Asks waiting at once; more are denied at once.
const MAX_PENDING_ASKS: usize = 8;
/// How long the rating screen waits for the customer.
const RATING_WAIT: Duration = Duration::from_secs(600);

/// How a stretch of [`Desk::serve`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// The connection to the gateway is gone (reconnect).
    Lost,
    /// The session is over and the window closed.
    Finished,
    /// The client is told to stop.
    Shutdown,
}

#[derive(Debug, Clone)]
struct PendingAsk {
    id: u64,
    right: Right,
    deadline: Instant,
}

/// The control loop's state.
#[derive(Debug)]
pub struct Desk {
    grants: AssistGrants,
    asks: Vec<PendingAsk>,
    participants: Vec<Participant>,
    state: SupportState,
    queue: String,
    chat_sent: VecDeque<Instant>,
    ask_timeout: Duration,
    /// The offer of permanent access (pin as unattended).
    pin: PinState,
    pin_timeout: Duration,
}

impl Desk {
    pub fn new(grants: AssistGrants) -> Self {
        Self {
            grants,
            asks: Vec::new(),
            participants: Vec::new(),
            state: SupportState::Waiting,
            queue: String::new(),
            chat_sent: VecDeque::new(),
            ask_timeout: Duration::from_secs(u64::from(ASK_TIMEOUT_SECS)),
            pin: PinState::default(),
            pin_timeout: pin::PIN_TIMEOUT,
        }
    }

    /// The offer of permanent access is denied after `t` instead of
    /// [`pin::PIN_TIMEOUT`] (tests).
    pub fn with_pin_timeout(mut self, t: Duration) -> Self {
        self.pin_timeout = t;
        self
    }

    /// Technician input waits while the customer answers anything (an
    /// ask, or the offer of permanent access and its password).
    fn update_asking(&self) {
        self.grants
            .set_asking(!self.asks.is_empty() || self.pin.active());
    }

    /// Asks time out after `t` instead of [`ASK_TIMEOUT_SECS`] (tests).
    pub fn with_ask_timeout(mut self, t: Duration) -> Self {
        self.ask_timeout = t;
        self
    }

    pub fn grants(&self) -> &AssistGrants {
        &self.grants
    }

    /// The switches as the window shows them.
    pub fn switches(&self) -> ToAssistUi {
        let rights = self.grants.rights();
        ToAssistUi::Switches {
            list: Right::ALL
                .iter()
                .map(|r| Switch {
                    right: r.as_str().to_owned(),
                    label: r.label().to_owned(),
                    on: rights.contains(*r),
                })
                .collect(),
        }
    }

    fn owner(&self) -> Option<&str> {
        self.participants
            .iter()
            .find(|p| p.role == ParticipantRole::Owner)
            .map(|p| p.name.as_str())
    }

    fn status(&self) -> ToAssistUi {
        let text = match self.state {
            SupportState::Waiting if self.queue.is_empty() => "Waiting for a technician".to_owned(),
            SupportState::Waiting => format!("Waiting for a technician ({})", self.queue),
            SupportState::Active => match self.owner() {
                Some(name) => format!("Connected with {name}"),
                None => "Connected".to_owned(),
            },
            SupportState::Ended => "The session has ended".to_owned(),
        };
        ToAssistUi::Status {
            text,
            connected: self.state == SupportState::Active,
        }
    }

    /// Serves one connection: `from_gateway` ends when it is lost; `send`
    /// puts a message on stream 0.
    pub async fn serve(
        &mut self,
        from_gateway: &mut mpsc::Receiver<AssistMsg>,
        send: &(dyn Fn(AssistMsg) + Send + Sync),
        ui: &mut UiLink,
        shutdown: &CancellationToken,
    ) -> Step {
        // The gateway mirrors what this client enforces (after a
        // reconnect, too).
        send(AssistMsg::Granted {
            rights: self.grants.rights(),
        });
        // An offer withdrawn while the connection was away.
        if let Some(m) = self.pin.unsent.take() {
            send(m);
        }
        ui.show(self.switches()).await;
        loop {
            let next_deadline = self
                .asks
                .iter()
                .map(|a| a.deadline)
                .chain(self.pin.deadline())
                .min();
            tokio::select! {
                () = shutdown.cancelled() => {
                    send(AssistMsg::EndSession);
                    self.end_locally();
                    return Step::Shutdown;
                }
                () = sleep_until(next_deadline) => self.expire(send, ui).await,
                outcome = self.pin.finished() => {
                    let ok = matches!(outcome, AssistMsg::PinResult { ok: true, .. });
                    send(outcome);
                    ui.show(ToAssistUi::PinDone { ok }).await;
                    self.update_asking();
                }
                msg = from_gateway.recv() => match msg {
                    None => {
                        self.connection_lost(ui).await;
                        return Step::Lost;
                    }
                    Some(AssistMsg::End { reason }) => {
                        info!(reason, "the gateway ended the support session");
                        return self.finish(&reason, true, Some(send), ui).await;
                    }
                    Some(msg) => {
                        self.on_gateway(msg, send, ui).await;
                        if let Some(m) = self.pin.unsent.take() {
                            send(m);
                        }
                    }
                },
                event = ui.rx.recv() => match event {
                    None => {
                        // The window is gone (closed, killed): the end.
                        info!("the window closed: ending the session");
                        send(AssistMsg::EndSession);
                        self.end_locally();
                        return Step::Finished;
                    }
                    Some(FromAssistUi::End) => {
                        info!("the customer ended the session");
                        send(AssistMsg::EndSession);
                        return self
                            .finish("You ended the session.", true, Some(send), ui)
                            .await;
                    }
                    Some(event) => self.on_ui(event, Some(send), ui).await,
                },
            }
        }
    }

    async fn on_gateway(
        &mut self,
        msg: AssistMsg,
        send: &(dyn Fn(AssistMsg) + Send + Sync),
        ui: &mut UiLink,
    ) {
        match msg {
            AssistMsg::Status {
                state,
                queue,
                position,
            } => {
                self.state = state;
                self.queue = match position {
                    Some(p) => format!("{queue}, position {p}"),
                    None => queue,
                };
                ui.show(self.status()).await;
            }
            AssistMsg::Participants { list } => {
                self.participants = list;
                let shown = self
                    .participants
                    .iter()
                    .map(|p| {
                        let role = match p.role {
                            ParticipantRole::Owner => "technician",
                            other => other.as_str(),
                        };
                        format!("{} ({role})", p.name)
                    })
                    .collect();
                ui.show(ToAssistUi::Participants { list: shown }).await;
                ui.show(self.status()).await;
            }
            AssistMsg::Chat(line) => {
                let kind = match line.from_kind {
                    ChatFrom::Customer => ChatKind::Customer,
                    ChatFrom::Technician => ChatKind::Technician,
                    ChatFrom::System => ChatKind::System,
                };
                ui.show(ToAssistUi::Chat {
                    from: line.from,
                    text: line.text,
                    kind,
                })
                .await;
            }
            AssistMsg::Ask {
                id,
                right,
                technician,
            } => {
                if self.grants.allows(right) {
                    // Nothing to ask: it is already allowed.
                    send(AssistMsg::Answer { id, allowed: true });
                    send(AssistMsg::Granted {
                        rights: self.grants.rights(),
                    });
                    return;
                }
                if self.asks.len() >= MAX_PENDING_ASKS || self.asks.iter().any(|a| a.id == id) {
                    send(AssistMsg::Answer { id, allowed: false });
                    return;
                }
                info!(id, %right, technician, "the technician asks for a right");
                self.asks.push(PendingAsk {
                    id,
                    right,
                    deadline: Instant::now() + self.ask_timeout,
                });
                self.update_asking();
                ui.show(ToAssistUi::Ask {
                    id,
                    right: right.as_str().to_owned(),
                    label: right.label().to_owned(),
                    technician,
                    timeout_ms: self.ask_timeout.as_millis() as u64,
                })
                .await;
            }
            AssistMsg::Reset { reason } => {
                info!(reason, "rights reset by the gateway");
                self.grants.reset();
                self.cancel_asks(ui, "the session went to someone else")
                    .await;
                ui.show(ToAssistUi::Chat {
                    from: String::new(),
                    text: reason,
                    kind: ChatKind::System,
                })
                .await;
                ui.show(self.switches()).await;
                send(AssistMsg::Granted {
                    rights: self.grants.rights(),
                });
            }
            AssistMsg::PinOffer {
                group,
                technician,
                server,
                fingerprint,
                token,
            } => {
                let offer = pin::Offer {
                    group,
                    technician,
                    server,
                    fingerprint,
                    token,
                };
                match self.pin.offer(offer, self.pin_timeout) {
                    Ok(show) => {
                        self.update_asking();
                        ui.show(show).await;
                    }
                    Err(refusal) => send(refusal),
                }
            }
            other => debug!(?other, "not a message for the client"),
        }
    }

    async fn on_ui(
        &mut self,
        event: FromAssistUi,
        send: Option<&(dyn Fn(AssistMsg) + Send + Sync)>,
        ui: &mut UiLink,
    ) {
        match event {
            FromAssistUi::Geometry {
                x,
                y,
                w,
                h,
                focused,
            } => self.grants.set_window(WindowGuard {
                x,
                y,
                w,
                h,
                focused,
            }),
            FromAssistUi::Chat { text } => {
                let Some(send) = send else {
                    return;
                };
                if text.len() > MAX_CHAT_BYTES || !self.chat_allowed() {
                    ui.show(ToAssistUi::Chat {
                        from: String::new(),
                        text: "Message not sent (too long or too many at once).".to_owned(),
                        kind: ChatKind::System,
                    })
                    .await;
                    return;
                }
                send(AssistMsg::SendChat { text });
            }
            FromAssistUi::Answer { id, allowed } => {
                let Some(i) = self.asks.iter().position(|a| a.id == id) else {
                    return;
                };
                let ask = self.asks.remove(i);
                if allowed {
                    self.grants.grant(ask.right);
                }
                self.update_asking();
                info!(id, right = %ask.right, allowed, "the customer answered");
                if let Some(send) = send {
                    send(AssistMsg::Answer { id, allowed });
                    send(AssistMsg::Granted {
                        rights: self.grants.rights(),
                    });
                }
                ui.show(ToAssistUi::AskDone { id }).await;
                ui.show(self.switches()).await;
            }
            FromAssistUi::PinAnswer { allowed } => {
                let denied = self.pin.answer(allowed);
                if let Some(msg) = denied {
                    if let Some(send) = send {
                        send(msg);
                    }
                    ui.show(ToAssistUi::PinDone { ok: false }).await;
                }
                self.update_asking();
            }
            FromAssistUi::Revoke { right } => {
                let Ok(right) = right.parse::<Right>() else {
                    return;
                };
                info!(%right, "the customer revoked a right");
                self.grants.revoke(right);
                if let Some(send) = send {
                    send(AssistMsg::Revoke { right });
                    send(AssistMsg::Granted {
                        rights: self.grants.rights(),
                    });
                }
                ui.show(self.switches()).await;
            }
            other => debug!(?other, "window event"),
        }
    }

    /// Chat rate limit: [`CHAT_PER_SECOND`] lines in any second.
    fn chat_allowed(&mut self) -> bool {
        let now = Instant::now();
        while self
            .chat_sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            self.chat_sent.pop_front();
        }
        if self.chat_sent.len() >= CHAT_PER_SECOND as usize {
            return false;
        }
        self.chat_sent.push_back(now);
        true
    }

    async fn expire(&mut self, send: &(dyn Fn(AssistMsg) + Send + Sync), ui: &mut UiLink) {
        let now = Instant::now();
        let (over, left): (Vec<_>, Vec<_>) = self.asks.drain(..).partition(|a| a.deadline <= now);
        self.asks = left;
        for ask in over {
            info!(id = ask.id, right = %ask.right, "no answer in time: denied");
            send(AssistMsg::Answer {
                id: ask.id,
                allowed: false,
            });
            ui.show(ToAssistUi::AskDone { id: ask.id }).await;
        }
        if let Some(denied) = self.pin.expire(now) {
            send(denied);
            ui.show(ToAssistUi::PinDone { ok: false }).await;
        }
        self.update_asking();
    }

    async fn cancel_asks(&mut self, ui: &mut UiLink, why: &str) {
        for ask in std::mem::take(&mut self.asks) {
            ui.show(ToAssistUi::AskDone { id: ask.id }).await;
        }
        if self.pin.withdraw(why) {
            ui.show(ToAssistUi::PinDone { ok: false }).await;
        }
        self.update_asking();
    }

    async fn connection_lost(&mut self, ui: &mut UiLink) {
        self.cancel_asks(ui, "the connection was lost").await;
        ui.show(ToAssistUi::Status {
            text: "Connection lost, reconnecting…".to_owned(),
            connected: false,
        })
        .await;
    }

    /// Everything off: what a technician could do stops now.
    fn end_locally(&mut self) {
        self.asks.clear();
        self.pin.withdraw("the session ended");
        self.update_asking();
        self.grants.reset();
    }

    /// The session is over: rights off, the end screen (with the rating,
    /// `rating`), the rating sent while the connection lasts; returns once
    /// the window is closed.
    pub async fn finish(
        &mut self,
        reason: &str,
        rating: bool,
        send: Option<&(dyn Fn(AssistMsg) + Send + Sync)>,
        ui: &mut UiLink,
    ) -> Step {
        self.end_locally();
        self.state = SupportState::Ended;
        ui.show(self.switches()).await;
        ui.show(ToAssistUi::Ended {
            reason: reason.to_owned(),
            rating,
        })
        .await;
        let wait = tokio::time::sleep(RATING_WAIT);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                () = &mut wait => return Step::Finished,
                event = ui.rx.recv() => match event {
                    None | Some(FromAssistUi::Closed) => return Step::Finished,
                    Some(FromAssistUi::Rating { stars, comment }) => {
                        let msg = AssistMsg::Rating { stars, comment };
                        if let Some(send) = send
                            && msg.check().is_ok()
                        {
                            send(msg);
                        }
                    }
                    Some(other) => debug!(?other, "window event after the end"),
                },
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
