//! The attended-support window as a child process of the customer client
//! (`jumpgate assist ui`): the client's network side stays in the parent,
//! the window in the child, and the two speak JSON lines, as the consent
//! child does ([`crate::child`]):
//!
//! ```text
//! client → child  {"type":"setup","site":"Acme IT","server":"https://support.acme.example"}
//!                 {"type":"status","text":"Connected with alice","connected":true}
//!                 {"type":"participants","list":["alice (technician)"]}
//!                 {"type":"chat","from":"alice","text":"Hello!","kind":"technician"}
//!                 {"type":"switches","list":[{"right":"view","label":"See your screen","on":true},…]}
//!                 {"type":"ask","id":1,"right":"control","label":"Control mouse and keyboard",
//!                  "technician":"alice","timeout_ms":60000}
//!                 {"type":"ask_done","id":1}
//!                 {"type":"ended","reason":"the technician ended the session","rating":true}
//!                 {"type":"ask_pin","technician":"alice","group":"desks","timeout_ms":120000}
//!                 {"type":"pin_done","ok":true}
//! child → client  {"type":"ready","version":1}
//!                 {"type":"geometry","x":440,"y":60,"w":400,"h":680,"focused":false}
//!                 {"type":"chat","text":"hi"}   {"type":"answer","id":1,"allowed":true}
//!                 {"type":"revoke","right":"control"}   {"type":"end"}
//!                 {"type":"pin_answer","allowed":true}
//!                 {"type":"rating","stars":5,"comment":"quick"}   {"type":"closed"}
//!                 {"type":"failed","message":"no display: …"}
//! ```
//!
//! EOF on the child's stdin takes the window down and ends the child; the
//! client reads EOF from a dead child as the customer ending the session.

use std::io::{self, BufRead, Read as _, Write};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::assist::AssistWindow;

/// The protocol version the child announces in [`FromAssistUi::Ready`].
pub const PROTOCOL_VERSION: u32 = 1;
/// Longest accepted input line, in bytes.
pub const MAX_LINE: usize = 64 * 1024;

/// Who wrote a chat line, as the window colours it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatKind {
    /// The customer (shown as "You").
    Customer,
    Technician,
    /// The gateway or the client ("alice joined").
    System,
}

/// One right's switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Switch {
    /// The right's wire name (`view`, `control`, …), sent back in `revoke`.
    pub right: String,
    /// What the window calls it.
    pub label: String,
    /// Granted now.
    pub on: bool,
}

/// A message from the client to the window child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToAssistUi {
    /// Whom the customer is connected to (first message).
    Setup { site: String, server: String },
    /// The status line.
    Status { text: String, connected: bool },
    /// The technicians taking part, as shown ("alice (technician)").
    Participants { list: Vec<String> },
    /// A chat line.
    Chat {
        from: String,
        text: String,
        kind: ChatKind,
    },
    /// The rights and whether each is on.
    Switches { list: Vec<Switch> },
    /// A technician asks for a right: Allow / Deny in the window.
    Ask {
        id: u64,
        right: String,
        label: String,
        technician: String,
        timeout_ms: u64,
    },
    /// Ask `id` is over (answered, timed out, withdrawn).
    AskDone { id: u64 },
    /// The session is over: the rating screen (`rating`), or only the
    /// reason and a Close button.
    Ended { reason: String, rating: bool },
    /// The technician offers to install permanent remote access (pin as
    /// unattended): Allow / Deny in the window, denied after `timeout_ms`.
    AskPin {
        technician: String,
        group: String,
        timeout_ms: u64,
    },
    /// The offer is over (answered and done, timed out, withdrawn).
    PinDone { ok: bool },
}

/// A message from the window child to the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromAssistUi {
    /// The window is up.
    Ready { version: u32 },
    /// Where the window is (root coordinates) and whether it has the
    /// focus: technician input must never reach it.
    Geometry {
        x: i32,
        y: i32,
        w: i32,
        h: i32,
        focused: bool,
    },
    /// The customer sent a chat line.
    Chat { text: String },
    /// The customer's answer to ask `id`.
    Answer { id: u64, allowed: bool },
    /// The customer turned a right off.
    Revoke { right: String },
    /// The customer's answer to `AskPin` (Allow: the window then shows
    /// that it installs until `PinDone`).
    PinAnswer { allowed: bool },
    /// The customer ended the session.
    End,
    /// The customer's rating, 1–5 stars.
    Rating { stars: u8, comment: String },
    /// The window is closed (after the rating, Skip or Close): the child
    /// is done.
    Closed,
    /// The window could not be shown or the display went away.
    Failed { message: String },
    /// A line that could not be understood (the child goes on).
    BadRequest { message: String },
}

/// Writes messages as lines; shared by the threads that produce them.
#[derive(Clone)]
struct Out(Arc<Mutex<Box<dyn Write + Send>>>);

impl Out {
    fn send(&self, msg: &FromAssistUi) {
        let mut line = serde_json::to_vec(msg).unwrap_or_default();
        line.push(b'\n');
        if let Ok(mut w) = self.0.lock() {
            let _ = w.write_all(&line);
            let _ = w.flush();
        }
    }
}

/// The body of the window child: shows the window on `$DISPLAY`, reads
/// [`ToAssistUi`] lines from `input` until EOF, writes [`FromAssistUi`]
/// lines to `output`. Returns at EOF, after taking the window down.
///
/// # Errors
/// Reading `input` failed, or a line was longer than [`MAX_LINE`].
pub fn run_assist_child(
    input: impl BufRead,
    output: impl Write + Send + 'static,
) -> io::Result<()> {
    run_assist_child_on(None, input, output)
}

/// [`run_assist_child`] on `display` (None: `$DISPLAY`).
///
/// # Errors
/// See [`run_assist_child`].
pub fn run_assist_child_on(
    display: Option<&str>,
    input: impl BufRead,
    output: impl Write + Send + 'static,
) -> io::Result<()> {
    let out = Out(Arc::new(Mutex::new(Box::new(output))));
    let events = out.clone();
    let window = match AssistWindow::show(display, move |e| events.send(&e)) {
        Ok(w) => Some(w),
        Err(e) => {
            out.send(&FromAssistUi::Failed {
                message: e.to_string(),
            });
            None
        }
    };
    out.send(&FromAssistUi::Ready {
        version: PROTOCOL_VERSION,
    });
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
        match serde_json::from_str::<ToAssistUi>(text.trim()) {
            Ok(msg) => {
                if let Some(w) = &window {
                    w.send(msg);
                }
            }
            Err(e) => out.send(&FromAssistUi::BadRequest {
                message: e.to_string(),
            }),
        }
    }
    // EOF: the client is gone or done; nothing may stay on screen.
    drop(window);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_the_documented_shape() {
        let ask: ToAssistUi = serde_json::from_str(
            r#"{"type":"ask","id":1,"right":"control","label":"Control mouse and keyboard","technician":"alice","timeout_ms":60000}"#,
        )
        .unwrap();
        assert!(matches!(ask, ToAssistUi::Ask { id: 1, .. }));
        assert_eq!(
            serde_json::to_string(&FromAssistUi::Answer {
                id: 1,
                allowed: true
            })
            .unwrap(),
            r#"{"type":"answer","id":1,"allowed":true}"#
        );
        assert_eq!(
            serde_json::to_string(&FromAssistUi::End).unwrap(),
            r#"{"type":"end"}"#
        );
    }
}
