//! The text clipboard, both ways.
//!
//! A worker thread owns an X connection and a hidden (never mapped) window.
//! - Reading: `ConvertSelection` to `UTF8_STRING` (then `STRING`) into a
//!   property of the hidden window, read back (also in `INCR` chunks, as
//!   owners send large text), bounded by the size limit.
//! - Writing: the window becomes the selection's owner and answers
//!   `SelectionRequest`s for `TARGETS`, `UTF8_STRING`, `TEXT`, `STRING`
//!   (Latin-1, other characters as `?`) and `TIMESTAMP`, in one property
//!   write: text above the limit (or above what one X request can carry) is
//!   refused with [`Error::ClipboardTooLarge`] (no `INCR` sending).
//! - Changes: XFIXES selection notify; every new owner other than this one
//!   is a [`ClipboardChange`] ([`Clipboard::next_change`]), for the caller to
//!   read and push.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use x11rb::CURRENT_TIME;
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::Event;
use x11rb::protocol::xfixes::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{
    self, Atom, AtomEnum, ConnectionExt as _, CreateWindowAux, EventMask, PropMode, Property,
    SelectionNotifyEvent, WindowClass,
};
use x11rb::rust_connection::RustConnection;

use crate::display::DisplayTarget;
use crate::wait::readable;
use crate::{Error, Result};

/// Default limit on clipboard text, in bytes (UTF-8), both ways.
pub const DEFAULT_LIMIT: usize = 1 << 20;

/// Which selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SelectionKind {
    /// `CLIPBOARD`: Ctrl+C / Ctrl+V.
    Clipboard,
    /// `PRIMARY`: the current text selection (middle click pastes it).
    Primary,
}

/// Another program took a selection (its content probably changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipboardChange {
    pub selection: SelectionKind,
}

enum Cmd {
    Get(
        SelectionKind,
        Duration,
        mpsc::Sender<Result<Option<String>>>,
    ),
    Set(SelectionKind, String, mpsc::Sender<Result<()>>),
    Stop,
}

/// The display's text clipboard (a worker thread with its own connection).
pub struct Clipboard {
    cmds: mpsc::Sender<Cmd>,
    wake: UnixStream,
    changes: mpsc::Receiver<ClipboardChange>,
    thread: Option<JoinHandle<()>>,
    limit: usize,
}

impl std::fmt::Debug for Clipboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clipboard")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl Clipboard {
    /// Connects to `target`; texts above `limit` bytes are refused both ways.
    pub fn new(target: &DisplayTarget, limit: usize) -> Result<Self> {
        let (conn, screen) = target.connect()?;
        let mut worker = Worker::new(conn, screen, limit)?;
        let limit = worker.limit;
        let (cmds, cmd_rx) = mpsc::channel();
        let (change_tx, changes) = mpsc::channel();
        let (wake, wake_rx) = UnixStream::pair()?;
        wake_rx.set_nonblocking(true)?;
        let thread = std::thread::Builder::new()
            .name("jg-clipboard".into())
            .spawn(move || {
                if let Err(e) = worker.run(&cmd_rx, &wake_rx, &change_tx) {
                    tracing::warn!(error = %e, "clipboard worker stopped");
                }
            })?;
        Ok(Self {
            cmds,
            wake,
            changes,
            thread: Some(thread),
            limit,
        })
    }

    /// The effective limit in bytes (the asked one, or less when the X
    /// server's request size is smaller).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The selection's text; `None` when nobody owns it or the owner has no
    /// text. Waits up to `timeout` for the owner to answer.
    pub fn get(&self, selection: SelectionKind, timeout: Duration) -> Result<Option<String>> {
        let (tx, rx) = mpsc::channel();
        self.send(Cmd::Get(selection, timeout, tx))?;
        rx.recv().map_err(|_| Error::Worker("no answer".into()))?
    }

    /// Makes `text` the selection's content (this side owns it until
    /// another program takes it).
    pub fn set(&self, selection: SelectionKind, text: &str) -> Result<()> {
        if text.len() > self.limit {
            return Err(Error::ClipboardTooLarge {
                size: text.len(),
                limit: self.limit,
            });
        }
        let (tx, rx) = mpsc::channel();
        self.send(Cmd::Set(selection, text.to_owned(), tx))?;
        rx.recv().map_err(|_| Error::Worker("no answer".into()))?
    }

    /// The next change made by another program, waiting up to `timeout`.
    pub fn next_change(&self, timeout: Duration) -> Result<Option<ClipboardChange>> {
        match self.changes.recv_timeout(timeout) {
            Ok(c) => Ok(Some(c)),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(Error::Worker("stopped (display gone?)".into()))
            }
        }
    }

    fn send(&self, cmd: Cmd) -> Result<()> {
        self.cmds
            .send(cmd)
            .map_err(|_| Error::Worker("stopped (display gone?)".into()))?;
        (&self.wake)
            .write_all(&[1])
            .map_err(|e| Error::Worker(e.to_string()))
    }
}

impl Drop for Clipboard {
    fn drop(&mut self) {
        let _ = self.send(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Atoms {
    clipboard: Atom,
    utf8: Atom,
    text: Atom,
    targets: Atom,
    incr: Atom,
    timestamp: Atom,
    prop: Atom,
}

struct Worker {
    conn: RustConnection,
    window: xproto::Window,
    atoms: Atoms,
    limit: usize,
    /// What this side owns: text and the time it took ownership.
    owned: HashMap<SelectionKind, (String, u32)>,
}

impl Worker {
    fn new(conn: RustConnection, screen: usize, limit: usize) -> Result<Self> {
        if conn
            .extension_information(xfixes::X11_EXTENSION_NAME)?
            .is_none()
        {
            return Err(Error::Unsupported(
                "no XFIXES extension (clipboard change notification)".into(),
            ));
        }
        conn.xfixes_query_version(5, 0)?.reply()?;
        let root = conn.setup().roots[screen].root;
        let window = conn.generate_id()?;
        conn.create_window(
            x11rb::COPY_DEPTH_FROM_PARENT,
            window,
            root,
            -10,
            -10,
            1,
            1,
            0,
            WindowClass::INPUT_OUTPUT,
            x11rb::COPY_FROM_PARENT,
            &CreateWindowAux::new().event_mask(EventMask::PROPERTY_CHANGE),
        )?
        .check()?;
        let intern =
            |name: &[u8]| -> Result<Atom> { Ok(conn.intern_atom(false, name)?.reply()?.atom) };
        let atoms = Atoms {
            clipboard: intern(b"CLIPBOARD")?,
            utf8: intern(b"UTF8_STRING")?,
            text: intern(b"TEXT")?,
            targets: intern(b"TARGETS")?,
            incr: intern(b"INCR")?,
            timestamp: intern(b"TIMESTAMP")?,
            prop: intern(b"JUMPGATE_SELECTION")?,
        };
        let mask = xfixes::SelectionEventMask::SET_SELECTION_OWNER
            | xfixes::SelectionEventMask::SELECTION_WINDOW_DESTROY
            | xfixes::SelectionEventMask::SELECTION_CLIENT_CLOSE;
        for sel in [atoms.clipboard, AtomEnum::PRIMARY.into()] {
            conn.xfixes_select_selection_input(window, sel, mask)?
                .check()?;
        }
        // One ChangeProperty carries the whole text: stay below the
        // server's request size (with room for the request header).
        let limit = limit.min(conn.maximum_request_bytes().saturating_sub(64));
        Ok(Self {
            conn,
            window,
            atoms,
            limit,
            owned: HashMap::new(),
        })
    }

    fn atom(&self, s: SelectionKind) -> Atom {
        match s {
            SelectionKind::Clipboard => self.atoms.clipboard,
            SelectionKind::Primary => AtomEnum::PRIMARY.into(),
        }
    }

    fn kind(&self, atom: Atom) -> Option<SelectionKind> {
        if atom == self.atoms.clipboard {
            Some(SelectionKind::Clipboard)
        } else if atom == u32::from(AtomEnum::PRIMARY) {
            Some(SelectionKind::Primary)
        } else {
            None
        }
    }

    fn run(
        &mut self,
        cmds: &mpsc::Receiver<Cmd>,
        wake: &UnixStream,
        changes: &mpsc::Sender<ClipboardChange>,
    ) -> Result<()> {
        loop {
            while let Some(e) = self.conn.poll_for_event()? {
                self.handle(e, changes)?;
            }
            loop {
                match cmds.try_recv() {
                    Ok(Cmd::Stop) | Err(mpsc::TryRecvError::Disconnected) => return Ok(()),
                    Ok(Cmd::Get(s, timeout, reply)) => {
                        let r = self.get(s, timeout, changes);
                        let fatal = matches!(r, Err(Error::Connection(_)));
                        let _ = reply.send(r);
                        if fatal {
                            return Err(Error::Worker("connection lost".into()));
                        }
                    }
                    Ok(Cmd::Set(s, text, reply)) => {
                        let r = self.set(s, text, changes);
                        let fatal = matches!(r, Err(Error::Connection(_)));
                        let _ = reply.send(r);
                        if fatal {
                            return Err(Error::Worker("connection lost".into()));
                        }
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                }
            }
            self.conn.flush()?;
            let ready = readable(
                &[self.conn.stream().as_fd(), wake.as_fd()],
                Duration::from_secs(1),
            )?;
            if ready.get(1) == Some(&true) {
                let mut buf = [0u8; 64];
                let _ = (&*wake).read(&mut buf);
            }
        }
    }

    /// A server timestamp (ownership must not use CurrentTime): the time of
    /// an empty append to a property of the window.
    fn now(&mut self, changes: &mpsc::Sender<ClipboardChange>) -> Result<u32> {
        self.conn.change_property(
            PropMode::APPEND,
            self.window,
            self.atoms.timestamp,
            AtomEnum::INTEGER,
            32,
            0,
            &[],
        )?;
        self.conn.flush()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let Some(e) = crate::wait::event_until(&self.conn, deadline)? else {
                return Err(Error::Timeout("server timestamp"));
            };
            if let Event::PropertyNotify(p) = &e
                && p.window == self.window
                && p.atom == self.atoms.timestamp
            {
                return Ok(p.time);
            }
            self.handle(e, changes)?;
        }
    }

    fn set(
        &mut self,
        s: SelectionKind,
        text: String,
        changes: &mpsc::Sender<ClipboardChange>,
    ) -> Result<()> {
        if text.len() > self.limit {
            return Err(Error::ClipboardTooLarge {
                size: text.len(),
                limit: self.limit,
            });
        }
        let time = self.now(changes)?;
        let sel = self.atom(s);
        self.conn.set_selection_owner(self.window, sel, time)?;
        let owner = self.conn.get_selection_owner(sel)?.reply()?.owner;
        if owner != self.window {
            return Err(Error::Protocol("could not take the selection".into()));
        }
        self.owned.insert(s, (text, time));
        Ok(())
    }

    fn get(
        &mut self,
        s: SelectionKind,
        timeout: Duration,
        changes: &mpsc::Sender<ClipboardChange>,
    ) -> Result<Option<String>> {
        if let Some((text, _)) = self.owned.get(&s) {
            return Ok(Some(text.clone()));
        }
        let sel = self.atom(s);
        if self.conn.get_selection_owner(sel)?.reply()?.owner == x11rb::NONE {
            return Ok(None);
        }
        let deadline = Instant::now() + timeout;
        for target in [self.atoms.utf8, AtomEnum::STRING.into()] {
            self.conn.delete_property(self.window, self.atoms.prop)?;
            self.conn
                .convert_selection(self.window, sel, target, self.atoms.prop, CURRENT_TIME)?;
            self.conn.flush()?;
            let notify = loop {
                let Some(e) = crate::wait::event_until(&self.conn, deadline)? else {
                    return Err(Error::Timeout("clipboard owner did not answer"));
                };
                match e {
                    Event::SelectionNotify(n)
                        if n.requestor == self.window && n.selection == sel =>
                    {
                        break n;
                    }
                    e => self.handle(e, changes)?,
                }
            };
            if notify.property == x11rb::NONE {
                continue; // This target refused: try the next.
            }
            let bytes = self.read_property(deadline, changes)?;
            let text = if target == self.atoms.utf8 {
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                bytes.iter().map(|b| char::from(*b)).collect()
            };
            return Ok(Some(text));
        }
        Ok(None)
    }

    /// Reads (and deletes) the transfer property, following INCR.
    fn read_property(
        &mut self,
        deadline: Instant,
        changes: &mpsc::Sender<ClipboardChange>,
    ) -> Result<Vec<u8>> {
        let words = (self.limit / 4 + 1) as u32;
        let first = self
            .conn
            .get_property(true, self.window, self.atoms.prop, AtomEnum::ANY, 0, words)?
            .reply()?;
        if first.type_ != self.atoms.incr {
            if first.bytes_after > 0 {
                return Err(Error::ClipboardTooLarge {
                    size: first.value.len() + first.bytes_after as usize,
                    limit: self.limit,
                });
            }
            return Ok(first.value);
        }
        // INCR: the owner writes chunks, each after we delete the previous one;
        // an empty chunk ends. The deletion above asked for the first.
        self.conn.flush()?;
        let mut out = Vec::new();
        loop {
            let Some(e) = crate::wait::event_until(&self.conn, deadline)? else {
                return Err(Error::Timeout("clipboard owner stopped sending"));
            };
            match e {
                Event::PropertyNotify(p)
                    if p.window == self.window
                        && p.atom == self.atoms.prop
                        && p.state == Property::NEW_VALUE =>
                {
                    let chunk = self
                        .conn
                        .get_property(true, self.window, self.atoms.prop, AtomEnum::ANY, 0, words)?
                        .reply()?;
                    self.conn.flush()?;
                    if chunk.value.is_empty() {
                        return Ok(out);
                    }
                    out.extend_from_slice(&chunk.value);
                    if out.len() > self.limit {
                        // Drain the rest so the owner is not left hanging: deleting
                        // tells it to go on; stop listening after the limit error.
                        return Err(Error::ClipboardTooLarge {
                            size: out.len(),
                            limit: self.limit,
                        });
                    }
                }
                e => self.handle(e, changes)?,
            }
        }
    }

    fn handle(&mut self, e: Event, changes: &mpsc::Sender<ClipboardChange>) -> Result<()> {
        match e {
            Event::SelectionRequest(r) => self.answer(r)?,
            Event::SelectionClear(c) => {
                if let Some(k) = self.kind(c.selection) {
                    self.owned.remove(&k);
                }
            }
            Event::XfixesSelectionNotify(n) => {
                if n.owner != self.window
                    && let Some(k) = self.kind(n.selection)
                {
                    if n.owner != x11rb::NONE {
                        self.owned.remove(&k);
                    }
                    let _ = changes.send(ClipboardChange { selection: k });
                }
            }
            Event::Error(x) => tracing::debug!(error = ?x.error_kind, "clipboard: X error"),
            _ => {}
        }
        Ok(())
    }

    fn answer(&mut self, r: xproto::SelectionRequestEvent) -> Result<()> {
        // Obsolete clients give no property: use the target's name.
        let property = if r.property == x11rb::NONE {
            r.target
        } else {
            r.property
        };
        let owned = self.kind(r.selection).and_then(|k| self.owned.get(&k));
        let ok = match owned {
            Some((_, since)) if r.time != CURRENT_TIME && r.time < *since => false,
            None => false,
            Some((text, since)) => {
                let a = &self.atoms;
                if r.target == a.targets {
                    let list = [
                        a.targets,
                        a.utf8,
                        a.text,
                        AtomEnum::STRING.into(),
                        a.timestamp,
                    ];
                    let bytes: Vec<u8> = list.iter().flat_map(|x| x.to_ne_bytes()).collect();
                    self.conn.change_property(
                        PropMode::REPLACE,
                        r.requestor,
                        property,
                        AtomEnum::ATOM,
                        32,
                        list.len() as u32,
                        &bytes,
                    )?;
                    true
                } else if r.target == a.utf8 || r.target == a.text {
                    self.conn.change_property(
                        PropMode::REPLACE,
                        r.requestor,
                        property,
                        a.utf8,
                        8,
                        text.len() as u32,
                        text.as_bytes(),
                    )?;
                    true
                } else if r.target == u32::from(AtomEnum::STRING) {
                    let latin1: Vec<u8> = text
                        .chars()
                        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                        .collect();
                    self.conn.change_property(
                        PropMode::REPLACE,
                        r.requestor,
                        property,
                        AtomEnum::STRING,
                        8,
                        latin1.len() as u32,
                        &latin1,
                    )?;
                    true
                } else if r.target == a.timestamp {
                    self.conn.change_property(
                        PropMode::REPLACE,
                        r.requestor,
                        property,
                        AtomEnum::INTEGER,
                        32,
                        1,
                        &since.to_ne_bytes(),
                    )?;
                    true
                } else {
                    false
                }
            }
        };
        let event = SelectionNotifyEvent {
            response_type: xproto::SELECTION_NOTIFY_EVENT,
            sequence: 0,
            time: r.time,
            requestor: r.requestor,
            selection: r.selection,
            target: r.target,
            property: if ok { property } else { x11rb::NONE },
        };
        self.conn
            .send_event(false, r.requestor, EventMask::NO_EVENT, event)?;
        self.conn.flush()?;
        Ok(())
    }
}
