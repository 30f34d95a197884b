//! The control loop in memory: the gateway's side and the window's side
//! are channels, the grants broker is the real one.

use std::time::Duration;

use jumpgate_consent::assist_child::{FromAssistUi, ToAssistUi};
use jumpgate_proto::assist::{AssistMsg, Right, Rights};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use super::desk::{Desk, Step};
use super::grants::AssistGrants;
use super::ui::UiLink;

const STEP: Duration = Duration::from_secs(20);

struct Harness {
    gateway: mpsc::Sender<AssistMsg>,
    sent: mpsc::UnboundedReceiver<AssistMsg>,
    shown: mpsc::Receiver<ToAssistUi>,
    window: Option<mpsc::Sender<FromAssistUi>>,
    grants: AssistGrants,
    served: tokio::task::JoinHandle<Step>,
}

impl Harness {
    fn start(ask_timeout: Duration) -> Self {
        let grants = AssistGrants::new(None);
        let mut desk = Desk::new(grants.clone())
            .with_ask_timeout(ask_timeout)
            .with_pin_timeout(ask_timeout);
        let (mut ui, shown, window) = UiLink::pair();
        let (gateway, mut from_gateway) = mpsc::channel(16);
        let (sent_tx, sent) = mpsc::unbounded_channel();
        let served = tokio::spawn(async move {
            let send = move |m: AssistMsg| {
                let _ = sent_tx.send(m);
            };
            desk.serve(&mut from_gateway, &send, &mut ui, &CancellationToken::new())
                .await
        });
        Self {
            gateway,
            sent,
            shown,
            window: Some(window),
            grants,
            served,
        }
    }

    async fn sent(&mut self) -> AssistMsg {
        timeout(STEP, self.sent.recv())
            .await
            .expect("nothing sent to the gateway")
            .expect("the loop ended")
    }

    /// The next window message matching `f` (others skipped).
    async fn shown(&mut self, what: &str, f: impl Fn(&ToAssistUi) -> bool) -> ToAssistUi {
        loop {
            let m = timeout(STEP, self.shown.recv())
                .await
                .unwrap_or_else(|_| panic!("the window was not shown {what}"))
                .expect("the loop ended");
            if f(&m) {
                return m;
            }
        }
    }

    async fn gateway_says(&self, m: AssistMsg) {
        self.gateway.send(m).await.unwrap();
    }

    async fn click(&self, e: FromAssistUi) {
        self.window.as_ref().unwrap().send(e).await.unwrap();
    }
}

fn rights(list: &[Right]) -> Rights {
    list.iter().copied().collect()
}

#[tokio::test]
async fn asks_answers_revocations_chat_and_the_end() {
    let mut h = Harness::start(Duration::from_millis(300));
    assert_eq!(
        h.sent().await,
        AssistMsg::Granted {
            rights: Rights::NONE
        }
    );

    h.gateway_says(AssistMsg::Ask {
        id: 1,
        right: Right::Control,
        technician: "alice".into(),
    })
    .await;
    h.shown("the ask", |m| matches!(m, ToAssistUi::Ask { id: 1, .. }))
        .await;
    assert!(h.grants.state().asking, "input waits while asking");
    assert!(!h.grants.allows(Right::Control));

    h.click(FromAssistUi::Answer {
        id: 1,
        allowed: true,
    })
    .await;
    assert_eq!(
        h.sent().await,
        AssistMsg::Answer {
            id: 1,
            allowed: true
        }
    );
    assert_eq!(
        h.sent().await,
        AssistMsg::Granted {
            rights: rights(&[Right::View, Right::Control])
        }
    );
    assert!(h.grants.state().input_allowed());
    let switches = h
        .shown("the switches", |m| matches!(m, ToAssistUi::Switches { .. }))
        .await;
    let ToAssistUi::Switches { list } = switches else {
        unreachable!()
    };
    let on: Vec<&str> = list
        .iter()
        .filter(|s| s.on)
        .map(|s| s.right.as_str())
        .collect();
    assert_eq!(on, ["view", "control"]);

    // The customer turns control off.
    h.click(FromAssistUi::Revoke {
        right: "control".into(),
    })
    .await;
    assert_eq!(
        h.sent().await,
        AssistMsg::Revoke {
            right: Right::Control
        }
    );
    assert_eq!(
        h.sent().await,
        AssistMsg::Granted {
            rights: rights(&[Right::View])
        }
    );
    assert!(!h.grants.allows(Right::Control));

    // An ask nobody answers is denied.
    h.gateway_says(AssistMsg::Ask {
        id: 2,
        right: Right::Shell,
        technician: "alice".into(),
    })
    .await;
    assert_eq!(
        h.sent().await,
        AssistMsg::Answer {
            id: 2,
            allowed: false
        }
    );
    h.shown("the ask withdrawn", |m| {
        matches!(m, ToAssistUi::AskDone { id: 2 })
    })
    .await;
    assert!(!h.grants.allows(Right::Shell) && !h.grants.state().asking);

    // Chat both ways.
    h.click(FromAssistUi::Chat {
        text: "it crashes".into(),
    })
    .await;
    assert_eq!(
        h.sent().await,
        AssistMsg::SendChat {
            text: "it crashes".into()
        }
    );

    // The technician ends: everything off, the rating goes out.
    h.gateway_says(AssistMsg::End {
        reason: "solved".into(),
    })
    .await;
    h.shown("the rating screen", |m| {
        matches!(m, ToAssistUi::Ended { rating: true, .. })
    })
    .await;
    assert!(h.grants.rights().is_empty());
    h.click(FromAssistUi::Rating {
        stars: 5,
        comment: "quick".into(),
    })
    .await;
    assert_eq!(
        h.sent().await,
        AssistMsg::Rating {
            stars: 5,
            comment: "quick".into()
        }
    );
    h.click(FromAssistUi::Closed).await;
    assert_eq!(
        timeout(STEP, h.served).await.unwrap().unwrap(),
        Step::Finished
    );
}

#[tokio::test]
async fn the_customer_ends_or_the_window_dies_or_the_connection_drops() {
    // End session in the window.
    let mut h = Harness::start(Duration::from_secs(60));
    h.sent().await;
    h.grants.grant(Right::Files);
    h.click(FromAssistUi::End).await;
    assert_eq!(h.sent().await, AssistMsg::EndSession);
    h.shown("the end", |m| matches!(m, ToAssistUi::Ended { .. }))
        .await;
    assert!(h.grants.rights().is_empty());
    h.window = None;
    assert_eq!(
        timeout(STEP, h.served).await.unwrap().unwrap(),
        Step::Finished
    );

    // The window child dies: the session ends.
    let mut h = Harness::start(Duration::from_secs(60));
    h.sent().await;
    h.window = None;
    assert_eq!(h.sent().await, AssistMsg::EndSession);
    assert_eq!(
        timeout(STEP, h.served).await.unwrap().unwrap(),
        Step::Finished
    );

    // The connection drops: pending asks go, the grants stay for the
    // reconnect.
    let mut h = Harness::start(Duration::from_secs(60));
    h.sent().await;
    h.grants.grant(Right::View);
    h.gateway_says(AssistMsg::Ask {
        id: 9,
        right: Right::Files,
        technician: "bob".into(),
    })
    .await;
    h.shown("the ask", |m| matches!(m, ToAssistUi::Ask { id: 9, .. }))
        .await;
    let Harness {
        gateway,
        served,
        window,
        mut shown,
        ..
    } = h;
    drop(gateway);
    assert_eq!(timeout(STEP, served).await.unwrap().unwrap(), Step::Lost);
    let mut withdrawn = false;
    while let Ok(m) = shown.try_recv() {
        withdrawn |= matches!(m, ToAssistUi::AskDone { id: 9 });
    }
    assert!(withdrawn, "the ask left the window");
    drop(window);
}

fn pin_offer(group: &str) -> AssistMsg {
    AssistMsg::PinOffer {
        group: group.into(),
        technician: "alice".into(),
        server: "https://127.0.0.1:1".into(),
        fingerprint: "00".repeat(32),
        token: "jge_secret".into(),
    }
}

#[tokio::test]
async fn an_offer_of_permanent_access_is_asked_one_at_a_time_and_denied_without_an_answer() {
    let mut h = Harness::start(Duration::from_millis(300));
    h.sent().await;
    h.gateway_says(pin_offer("desks")).await;
    let shown = h
        .shown("the offer", |m| matches!(m, ToAssistUi::AskPin { .. }))
        .await;
    assert!(
        matches!(&shown, ToAssistUi::AskPin { technician, group, .. } if technician == "alice" && group == "desks"),
        "{shown:?}"
    );
    assert!(
        h.grants.state().asking,
        "input waits while the offer is asked"
    );
    // A second offer meanwhile is refused at once.
    h.gateway_says(pin_offer("other")).await;
    assert!(matches!(
        h.sent().await,
        AssistMsg::PinResult { ok: false, .. }
    ));
    h.click(FromAssistUi::PinAnswer { allowed: false }).await;
    assert_eq!(
        h.sent().await,
        AssistMsg::PinResult {
            ok: false,
            message: "the customer declined".into()
        }
    );
    h.shown("the offer gone", |m| {
        matches!(m, ToAssistUi::PinDone { ok: false })
    })
    .await;
    assert!(!h.grants.state().asking);
    // Unanswered: denied after the timeout.
    h.gateway_says(pin_offer("desks")).await;
    h.shown("the offer", |m| matches!(m, ToAssistUi::AskPin { .. }))
        .await;
    assert_eq!(
        h.sent().await,
        AssistMsg::PinResult {
            ok: false,
            message: "the customer did not answer in time".into()
        }
    );
    h.shown("the offer gone", |m| {
        matches!(m, ToAssistUi::PinDone { ok: false })
    })
    .await;
    assert!(!h.grants.state().asking);
    // A late answer changes nothing.
    h.click(FromAssistUi::PinAnswer { allowed: true }).await;
    assert!(
        timeout(Duration::from_millis(300), h.sent.recv())
            .await
            .is_err(),
        "a late answer was acted on"
    );
}

#[tokio::test]
async fn a_transfer_withdraws_the_offer_and_tells_the_gateway() {
    let mut h = Harness::start(Duration::from_secs(30));
    h.sent().await;
    h.gateway_says(pin_offer("desks")).await;
    h.shown("the offer", |m| matches!(m, ToAssistUi::AskPin { .. }))
        .await;
    h.gateway_says(AssistMsg::Reset {
        reason: "alice transferred the session to bob".into(),
    })
    .await;
    h.shown("the offer gone", |m| {
        matches!(m, ToAssistUi::PinDone { ok: false })
    })
    .await;
    let withdrawn = loop {
        if let m @ AssistMsg::PinResult { .. } = h.sent().await {
            break m;
        }
    };
    assert_eq!(
        withdrawn,
        AssistMsg::PinResult {
            ok: false,
            message: "the offer was withdrawn: the session went to someone else".into()
        }
    );
    assert!(!h.grants.state().asking);
}
