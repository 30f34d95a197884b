//! The UI as a child process. The agent usually runs as root as a service,
//! while the prompt and the indicator must appear on the logged-in user's
//! display with that user's `DISPLAY` / `XAUTHORITY`; so the agent spawns a
//! child (as that user, with that environment) whose body is [`run_child`],
//! and the two speak JSON lines:
//!
//! ```text
//! agent → child  {"type":"prompt","id":1,"request":{"technician":{"name":"Alice","site":"Acme IT"},
//!                  "rights":{"view":true,"control":true,"clipboard":false},"timeout_ms":30000}}
//! child → agent  {"type":"decision","id":1,"decision":"allowed"}        (or "denied", "timed_out")
//!                {"type":"prompt_failed","id":1,"error":"closed","message":"…"}
//! agent → child  {"type":"show_indicator","config":{"technician":{…},"state":"controlling"}}
//! child → agent  {"type":"indicator_shown","shortcut":"Ctrl+Alt+Shift+Escape"}
//!                {"type":"indicator","event":"take_back_control","trigger":"button"}
//!                {"type":"indicator","event":"end_session"}
//! agent → child  {"type":"set_state","state":"controlling"}  {"type":"hide_indicator"}
//!                {"type":"cancel_prompt","id":1}
//! ```
//!
//! The child first writes `{"type":"ready","version":1}`. EOF on its stdin
//! takes everything down and ends it. **Crash safety:** if the child dies,
//! the agent reads EOF on the child's stdout, which must count as a denial
//! for a pending prompt and as the end of the indication for a live session
//! (end the session).

use std::collections::HashMap;
use std::io::{self, BufRead, Read as _, Write};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::indicator::{Indicator, IndicatorConfig, IndicatorEvent, SessionState};
use crate::prompt::{Prompt, PromptRequest};
use crate::{ConsentError, Decision};

/// The protocol version the child announces in [`FromChild::Ready`].
pub const PROTOCOL_VERSION: u32 = 1;
/// Longest accepted input line, in bytes.
pub const MAX_LINE: usize = 64 * 1024;

/// A message from the agent to the UI child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ToChild {
    /// Show a consent prompt; answered by [`FromChild::Decision`] or
    /// [`FromChild::PromptFailed`] with the same id.
    Prompt { id: u64, request: PromptRequest },
    /// Withdraw a pending prompt (answered by `prompt_failed`, `cancelled`).
    CancelPrompt { id: u64 },
    /// Show the session indicator (replacing one already shown).
    ShowIndicator { config: IndicatorConfig },
    /// Change the state the indicator shows.
    SetState { state: SessionState },
    /// Take the indicator down (answered by `indicator_hidden`).
    HideIndicator,
}

/// Why a prompt gave no decision: every kind means "not allowed".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptErrorKind {
    /// The user closed the window.
    Closed,
    /// Withdrawn by `cancel_prompt`.
    Cancelled,
    /// No display could be opened.
    NoDisplay,
    /// Anything else (font missing, display lost, …).
    Failed,
}

impl From<&ConsentError> for PromptErrorKind {
    fn from(e: &ConsentError) -> Self {
        match e {
            ConsentError::Closed => Self::Closed,
            ConsentError::Cancelled => Self::Cancelled,
            ConsentError::NoDisplay(_) => Self::NoDisplay,
            _ => Self::Failed,
        }
    }
}

/// A message from the UI child to the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromChild {
    /// The child is up.
    Ready { version: u32 },
    /// The user's answer to prompt `id`.
    Decision { id: u64, decision: Decision },
    /// Prompt `id` ended without a decision (a denial).
    PromptFailed {
        id: u64,
        error: PromptErrorKind,
        message: String,
    },
    /// The indicator is up; `shortcut` is the grabbed take-back-control
    /// shortcut, if any.
    IndicatorShown { shortcut: Option<String> },
    /// The indicator could not be shown: the session must not go on.
    IndicatorFailed { message: String },
    /// The indicator was taken down.
    IndicatorHidden,
    /// The user acted on the indicator (or it was lost).
    Indicator(IndicatorEvent),
    /// A line that could not be understood (the child goes on).
    BadRequest { message: String },
}

/// Writes messages as lines; shared by the threads that produce them.
#[derive(Clone)]
struct Out(Arc<Mutex<Box<dyn Write + Send>>>);

impl Out {
    fn send(&self, msg: &FromChild) {
        // Serialising these types cannot fail (plain data, string keys).
        let mut line = serde_json::to_vec(msg).unwrap_or_default();
        line.push(b'\n');
        if let Ok(mut w) = self.0.lock() {
            let _ = w.write_all(&line);
            let _ = w.flush();
        }
    }
}

/// The body of the UI child: reads [`ToChild`] lines from `input` until EOF,
/// writes [`FromChild`] lines to `output`, using the display of `$DISPLAY`
/// (authorised by `$XAUTHORITY`). Returns at EOF, after taking every window
/// down.
///
/// # Errors
/// Reading `input` failed, or a line was longer than [`MAX_LINE`].
pub fn run_child(input: impl BufRead, output: impl Write + Send + 'static) -> io::Result<()> {
    let out = Out(Arc::new(Mutex::new(Box::new(output))));
    out.send(&FromChild::Ready {
        version: PROTOCOL_VERSION,
    });
    let prompts: Arc<Mutex<HashMap<u64, Arc<Prompt>>>> = Arc::default();
    let mut indicator: Option<Indicator> = None;
    let mut input = input;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut input)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if line.len() > MAX_LINE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "input line too long",
            ));
        }
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        let msg: ToChild = match serde_json::from_str(text.trim()) {
            Ok(m) => m,
            Err(e) => {
                out.send(&FromChild::BadRequest {
                    message: e.to_string(),
                });
                continue;
            }
        };
        match msg {
            ToChild::Prompt { id, request } => start_prompt(id, request, &out, &prompts),
            ToChild::CancelPrompt { id } => {
                let prompt = prompts.lock().ok().and_then(|p| p.get(&id).cloned());
                if let Some(p) = prompt {
                    p.cancel();
                }
            }
            ToChild::ShowIndicator { config } => {
                // The old one goes first: one border, one bar.
                drop(indicator.take());
                let events = out.clone();
                match Indicator::show(None, &config, move |e| {
                    events.send(&FromChild::Indicator(e))
                }) {
                    Ok(i) => {
                        out.send(&FromChild::IndicatorShown {
                            shortcut: i.shortcut().map(str::to_owned),
                        });
                        indicator = Some(i);
                    }
                    Err(e) => out.send(&FromChild::IndicatorFailed {
                        message: e.to_string(),
                    }),
                }
            }
            ToChild::SetState { state } => {
                if let Some(i) = &indicator {
                    i.set_state(state);
                }
            }
            ToChild::HideIndicator => {
                if let Some(i) = indicator.take() {
                    i.close();
                }
                out.send(&FromChild::IndicatorHidden);
            }
        }
    }
    // EOF: the agent is gone or done; nothing may stay on screen.
    drop(indicator);
    let pending: Vec<Arc<Prompt>> = prompts
        .lock()
        .map(|p| p.values().cloned().collect())
        .unwrap_or_default();
    for p in pending {
        p.cancel();
    }
    Ok(())
}

fn start_prompt(
    id: u64,
    request: PromptRequest,
    out: &Out,
    prompts: &Arc<Mutex<HashMap<u64, Arc<Prompt>>>>,
) {
    let prompt = match Prompt::show(None, &request) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            out.send(&FromChild::PromptFailed {
                id,
                error: (&e).into(),
                message: e.to_string(),
            });
            return;
        }
    };
    if let Ok(mut p) = prompts.lock() {
        p.insert(id, prompt.clone());
    }
    let (out, prompts) = (out.clone(), prompts.clone());
    std::thread::spawn(move || {
        let result = prompt.wait();
        if let Ok(mut p) = prompts.lock() {
            p.remove(&id);
        }
        out.send(&match result {
            Ok(decision) => FromChild::Decision { id, decision },
            Err(e) => FromChild::PromptFailed {
                id,
                error: (&e).into(),
                message: e.to_string(),
            },
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Rights, Technician};

    #[test]
    fn requests_parse_with_defaults_and_unknown_fields_are_refused() {
        let line = r#"{"type":"prompt","id":3,"request":{"technician":{"name":"A","site":"S"},"rights":{"view":true,"control":false,"clipboard":false}}}"#;
        let msg: ToChild = serde_json::from_str(line).expect("parses");
        let ToChild::Prompt { id, request } = msg else {
            panic!("{msg:?}")
        };
        assert_eq!(id, 3);
        assert_eq!(request.timeout_ms, 30_000, "the default timeout");
        assert_eq!(
            request.rights,
            Rights {
                view: true,
                control: false,
                clipboard: false
            }
        );
        assert_eq!(
            request.technician,
            Technician {
                name: "A".into(),
                site: "S".into()
            }
        );
        let show = r#"{"type":"show_indicator","config":{"technician":{"name":"A","site":"S"},"state":"viewing"}}"#;
        let ToChild::ShowIndicator { config } = serde_json::from_str(show).expect("parses") else {
            panic!()
        };
        assert_eq!(config.border_width, crate::indicator::DEFAULT_BORDER_WIDTH);
        assert!(config.shortcut);
        assert!(
            serde_json::from_str::<ToChild>(r#"{"type":"cancel_prompt","id":1,"extra":1}"#)
                .is_err()
        );
    }

    #[test]
    fn replies_have_the_documented_shape() {
        let e = FromChild::Indicator(IndicatorEvent::TakeBackControl {
            trigger: crate::Trigger::Shortcut,
        });
        assert_eq!(
            serde_json::to_string(&e).expect("serialises"),
            r#"{"type":"indicator","event":"take_back_control","trigger":"shortcut"}"#
        );
        let d = FromChild::Decision {
            id: 1,
            decision: Decision::TimedOut,
        };
        assert_eq!(
            serde_json::to_string(&d).expect("serialises"),
            r#"{"type":"decision","id":1,"decision":"timed_out"}"#
        );
    }
}
