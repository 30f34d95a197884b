//! Attended support: what the gateway and a customer's client
//! (`jumpgate assist`) say to each other on stream 0, inside
//! [`crate::control::Control::Assist`].
//!
//! ```text
//! customer client                            gateway
//!   | TLS (ALPN "jumpgate-agent/1", pinned site certificate)
//!   | -- AssistHello{ticket | support_id,      |  spend the ticket (or prove
//!   |      public_key, signature} -----------> |  the reconnecting key)
//!   | <-- AssistWelcome{support_id, ...} ----- |
//!   | <== Assist(AssistMsg) both ways ======== |  chat, rights, participants
//!   | ==== session streams as to an agent ==== |  desktop, shell, files
//! ```
//!
//! The customer's client is the authority on rights: it enforces them on
//! every stream it serves, and the gateway mirrors them for its audit, its
//! views and an early refusal. A right is only ever turned on by the
//! customer answering a technician's [`AssistMsg::Ask`]; the customer can
//! turn any right off at any time ([`AssistMsg::Revoke`]).

use serde::{Deserialize, Serialize};

use crate::ProtoError;

/// Longest chat text, in bytes of UTF-8.
pub const MAX_CHAT_BYTES: usize = 4096;

/// Chat lines one side may send per second (both sides enforce it).
pub const CHAT_PER_SECOND: u32 = 5;

/// How long a technician's ask waits for the customer's answer; no answer
/// is a denial.
pub const ASK_TIMEOUT_SECS: u32 = 60;

/// One right a technician asks the customer for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Right {
    /// See the screen.
    View,
    /// Drive the pointer and keyboard (needs `View`).
    Control,
    /// Text clipboard both ways (needs `View`).
    Clipboard,
    /// A shell or commands, as the customer's own user.
    Shell,
    /// File transfer within the customer's home directory.
    Files,
}

impl Right {
    pub const ALL: [Self; 5] = [
        Self::View,
        Self::Control,
        Self::Clipboard,
        Self::Shell,
        Self::Files,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::Control => "control",
            Self::Clipboard => "clipboard",
            Self::Shell => "shell",
            Self::Files => "files",
        }
    }

    /// What the customer's window calls it.
    pub fn label(self) -> &'static str {
        match self {
            Self::View => "See your screen",
            Self::Control => "Control mouse and keyboard",
            Self::Clipboard => "Share the clipboard",
            Self::Shell => "Run commands",
            Self::Files => "Transfer files",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl std::fmt::Display for Right {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Right {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown right `{s}` (expected view, control, clipboard, shell or files)")
            })
    }
}

/// A set of rights. On the wire: the list of names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rights(u8);

impl Rights {
    pub const NONE: Self = Self(0);

    pub fn contains(self, r: Right) -> bool {
        self.0 & r.bit() != 0
    }

    /// Adds `r` (and `View`, which `Control` and `Clipboard` need).
    #[must_use]
    pub fn with(self, r: Right) -> Self {
        let mut bits = self.0 | r.bit();
        if matches!(r, Right::Control | Right::Clipboard) {
            bits |= Right::View.bit();
        }
        Self(bits)
    }

    /// Removes `r` (and `Control` and `Clipboard` with `View`).
    #[must_use]
    pub fn without(self, r: Right) -> Self {
        let mut bits = self.0 & !r.bit();
        if r == Right::View {
            bits &= !(Right::Control.bit() | Right::Clipboard.bit());
        }
        Self(bits)
    }

    pub fn iter(self) -> impl Iterator<Item = Right> {
        Right::ALL.into_iter().filter(move |r| self.contains(*r))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<Right> for Rights {
    fn from_iter<I: IntoIterator<Item = Right>>(iter: I) -> Self {
        iter.into_iter().fold(Self::NONE, Self::with)
    }
}

impl Serialize for Rights {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Rights {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<Right>::deserialize(d)?.into_iter().collect())
    }
}

/// Where a support session stands, as the customer is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SupportState {
    /// In a queue, nobody has accepted yet.
    Waiting,
    /// A technician owns the session.
    Active,
    /// Over (the reason comes with [`AssistMsg::End`]).
    Ended,
}

/// How someone takes part in a support session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParticipantRole {
    /// The technician in charge.
    Owner,
    /// Invited: chats, may drive the owner's screen when control is granted.
    Participant,
    /// Invited read-only.
    Observer,
    /// Holds `monitor-sessions` and watches without being invited.
    Supervisor,
}

impl ParticipantRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Participant => "participant",
            Self::Observer => "observer",
            Self::Supervisor => "supervisor",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// The technician's display name (username).
    pub name: String,
    pub role: ParticipantRole,
}

/// Who wrote a chat line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChatFrom {
    Customer,
    Technician,
    /// The gateway ("Bob joined as observer").
    System,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatLine {
    /// Per support session, from 1, in the order the gateway stored them.
    pub seq: u64,
    /// Unix milliseconds, the gateway's clock.
    pub at_ms: i64,
    pub from_kind: ChatFrom,
    /// The technician's name, the customer's name, or empty for `System`.
    pub from: String,
    pub text: String,
}

/// Every message of attended support on stream 0 (inside
/// [`crate::control::Control::Assist`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AssistMsg {
    // gateway → client
    /// Where the session stands; `position` is the place in the queue
    /// while waiting (1 = next).
    Status {
        state: SupportState,
        queue: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        position: Option<u32>,
    },
    /// Everyone connected on the technicians' side, after each change.
    Participants { list: Vec<Participant> },
    /// A chat line, the customer's own included once stored.
    Chat(ChatLine),
    /// A technician asks for a right; the client answers with `Answer`
    /// (no answer in [`ASK_TIMEOUT_SECS`] is a denial).
    Ask {
        id: u64,
        right: Right,
        technician: String,
    },
    /// The granted rights were reset (the session went to someone else):
    /// everything is off until the customer allows again.
    Reset { reason: String },
    /// The technician offers to turn this machine into an enrolled endpoint.
    PinOffer {
        group: String,
        technician: String,
        server: String,
        fingerprint: String,
        token: String,
    },
    /// The session is over; the client exits (after the rating screen).
    End { reason: String },

    // client → gateway
    /// The customer wrote a line ([`MAX_CHAT_BYTES`] at most).
    SendChat { text: String },
    /// The customer's answer to `Ask{id}`.
    Answer { id: u64, allowed: bool },
    /// The customer turned a right off.
    Revoke { right: Right },
    /// The rights the client enforces now, after any change on its side.
    Granted { rights: Rights },
    /// The customer ended the session.
    EndSession,
    /// The customer's rating (1–5) and comment, after the end.
    Rating {
        stars: u8,
        #[serde(default)]
        comment: String,
    },
    /// What came of a `PinOffer`.
    PinResult { ok: bool, message: String },
}

impl AssistMsg {
    /// Checks the limits a receiver must enforce whatever the sender did.
    ///
    /// # Errors
    /// A chat text over [`MAX_CHAT_BYTES`], a rating outside 1–5 or a
    /// comment over [`MAX_CHAT_BYTES`].
    pub fn check(&self) -> Result<(), ProtoError> {
        let bad = |what: &str| Err(ProtoError::InvalidMessage(what.to_owned()));
        match self {
            Self::SendChat { text } | Self::Chat(ChatLine { text, .. })
                if text.len() > MAX_CHAT_BYTES =>
            {
                bad("chat text over 4096 bytes")
            }
            Self::Rating { stars, .. } if !(1..=5).contains(stars) => {
                bad("rating must be 1 to 5 stars")
            }
            Self::Rating { comment, .. } if comment.len() > MAX_CHAT_BYTES => {
                bad("rating comment over 4096 bytes")
            }
            _ => Ok(()),
        }
    }
}

/// What a downloaded customer client carries at its end, so the customer
/// only runs it: `JSON ‖ u32 big-endian length of the JSON ‖ b"JGASSIST"`,
/// appended to the executable by the gateway's `/portal/download/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    /// Format version (1).
    pub v: u16,
    /// Where the client dials: `https://host[:port]` (the portal's origin
    /// when one is configured, else the site's).
    pub url: String,
    /// The site CA certificate's SHA-256 fingerprint the client pins.
    pub fingerprint: String,
    /// The single-use assist ticket (a bearer secret, valid minutes).
    pub ticket: String,
    /// The site's name, for the window's title.
    pub site: String,
    pub support_id: String,
    /// When the ticket stops working, Unix milliseconds.
    pub expires_at_ms: i64,
}

impl Trailer {
    /// The last bytes of a downloaded client.
    pub const MAGIC: &'static [u8; 8] = b"JGASSIST";
    /// Longest trailer JSON a reader accepts.
    pub const MAX_JSON: usize = 16 * 1024;

    /// The bytes appended to the executable.
    pub fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let mut out = Vec::with_capacity(json.len() + 12);
        out.extend_from_slice(&json);
        out.extend_from_slice(&(json.len() as u32).to_be_bytes());
        out.extend_from_slice(Self::MAGIC);
        out
    }

    /// Reads a trailer from the end of `tail` (the last bytes of a file,
    /// at least [`Self::MAX_JSON`] + 12 of them when the file is that long).
    /// `Ok(None)`: the file carries no trailer.
    ///
    /// # Errors
    /// The magic is there but what precedes it is not a valid trailer.
    pub fn parse(tail: &[u8]) -> Result<Option<Self>, ProtoError> {
        let Some(rest) = tail.strip_suffix(Self::MAGIC.as_slice()) else {
            return Ok(None);
        };
        let bad = |what: &str| ProtoError::InvalidMessage(format!("assist trailer: {what}"));
        let split = rest.len().checked_sub(4).ok_or_else(|| bad("too short"))?;
        let (body, len) = rest.split_at(split);
        let len = u32::from_be_bytes(len.try_into().map_err(|_| bad("too short"))?) as usize;
        if len > Self::MAX_JSON || len > body.len() {
            return Err(bad("length out of range"));
        }
        let json = &body[body.len() - len..];
        let t: Self = serde_json::from_slice(json).map_err(|e| bad(&e.to_string()))?;
        if t.v != 1 {
            return Err(bad(&format!("version {} (this client reads 1)", t.v)));
        }
        Ok(Some(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_keep_view_under_control_and_clipboard() {
        let r = Rights::NONE.with(Right::Control);
        assert!(r.contains(Right::View) && r.contains(Right::Control));
        let r = r.with(Right::Shell).without(Right::View);
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![Right::Shell]);
        assert!(Rights::NONE.is_empty());
        assert_eq!("files".parse::<Right>(), Ok(Right::Files));
        assert!("forward".parse::<Right>().unwrap_err().contains("forward"));
    }

    #[test]
    fn messages_roundtrip_with_their_wire_names() {
        let msgs = [
            AssistMsg::Status {
                state: SupportState::Waiting,
                queue: "helpdesk".into(),
                position: Some(2),
            },
            AssistMsg::Participants {
                list: vec![Participant {
                    name: "bob".into(),
                    role: ParticipantRole::Observer,
                }],
            },
            AssistMsg::Chat(ChatLine {
                seq: 3,
                at_ms: 5,
                from_kind: ChatFrom::Technician,
                from: "alice".into(),
                text: "Grüße".into(),
            }),
            AssistMsg::Ask {
                id: 1,
                right: Right::Control,
                technician: "alice".into(),
            },
            AssistMsg::Granted {
                rights: Rights::NONE.with(Right::Clipboard).with(Right::Files),
            },
            AssistMsg::Revoke {
                right: Right::Shell,
            },
            AssistMsg::EndSession,
            AssistMsg::Rating {
                stars: 5,
                comment: String::new(),
            },
        ];
        for m in msgs {
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(
                serde_json::from_str::<AssistMsg>(&json).unwrap(),
                m,
                "{json}"
            );
            m.check().unwrap();
        }
        let granted = AssistMsg::Granted {
            rights: Rights::NONE.with(Right::Control),
        };
        assert_eq!(
            serde_json::to_string(&granted).unwrap(),
            r#"{"type":"granted","rights":["view","control"]}"#
        );
    }

    #[test]
    fn limits_are_checked() {
        let long = AssistMsg::SendChat {
            text: "x".repeat(MAX_CHAT_BYTES + 1),
        };
        assert!(long.check().is_err());
        let stars = AssistMsg::Rating {
            stars: 0,
            comment: String::new(),
        };
        assert!(stars.check().is_err());
        assert!(serde_json::from_str::<AssistMsg>(r#"{"type":"revoke","right":"root"}"#).is_err());
    }

    #[test]
    fn a_trailer_is_found_at_the_end_of_the_file() {
        let t = Trailer {
            v: 1,
            url: "https://support.example.com".into(),
            fingerprint: "ab:cd".into(),
            ticket: "jga_x".into(),
            site: "Example".into(),
            support_id: "sup_1".into(),
            expires_at_ms: 7,
        };
        let mut file = b"\x7fELF...binary...".to_vec();
        file.extend(t.encode());
        assert_eq!(Trailer::parse(&file).unwrap(), Some(t.clone()));
        assert_eq!(Trailer::parse(b"\x7fELF no trailer").unwrap(), None);
        let mut cut = t.encode();
        cut.drain(..5);
        assert!(Trailer::parse(&cut).is_err());
        let mut v2 = t;
        v2.v = 2;
        assert!(
            Trailer::parse(&v2.encode())
                .unwrap_err()
                .to_string()
                .contains("version 2")
        );
    }
}
