//! Session messages (`jumpgate_proto::session`): what `jg`, the console and
//! the agent send each other through the gateway inside one stream.
//!
//! The input is a byte stream of messages. `SessionMsg::decode` takes them
//! apart (every decoded message must re-encode to the same bytes' meaning),
//! and the gateway's `Scanner` (recording and transfer audit) follows the
//! same bytes split at arbitrary points, in both directions: on a stream
//! that decodes cleanly it must report exactly the kept messages and every
//! byte of file data.
#![no_main]

use bytes::BytesMut;
use jumpgate_proto::session::{self, Direction, Scanned, Scanner, SessionMsg};
use libfuzzer_sys::fuzz_target;

fn kept(direction: Direction, msg: &SessionMsg) -> bool {
    match direction {
        Direction::Up => matches!(
            msg,
            SessionMsg::Stdin(_) | SessionMsg::Resize { .. } | SessionMsg::FileEnd(_)
        ),
        Direction::Down => matches!(
            msg,
            SessionMsg::Stdout(_)
                | SessionMsg::Stderr(_)
                | SessionMsg::Exit(_)
                | SessionMsg::FileEnd(_)
                | SessionMsg::FileResult(_)
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    // First byte: how to split the stream for the scanner.
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    let mut buf = BytesMut::from(stream);
    let mut msgs = Vec::new();
    let clean = loop {
        let before = buf.len();
        let len = session::message_len(&buf);
        match SessionMsg::decode(&mut buf) {
            Ok(Some(msg)) => {
                assert_eq!(len, Ok(Some(before - buf.len())));
                let _ = msg.name();
                match &msg {
                    SessionMsg::Open(req) => {
                        let _ = (req.kind(), req.target(), req.kind().is_framed());
                    }
                    // What `jg` exits with.
                    SessionMsg::Exit(status) => {
                        let _ = status.shell_code();
                    }
                    _ => {}
                }
                let again = msg.to_bytes();
                let mut b = BytesMut::from(&again[..]);
                assert_eq!(SessionMsg::decode(&mut b).unwrap().as_ref(), Some(&msg));
                assert!(b.is_empty());
                msgs.push(msg);
            }
            Ok(None) => {
                assert_eq!(len, Ok(None));
                assert_eq!(buf.len(), before, "an incomplete message consumes nothing");
                break buf.is_empty();
            }
            Err(_) => break false,
        }
    };

    for direction in [Direction::Up, Direction::Down] {
        let mut scanner = Scanner::new(direction);
        let mut seen = Vec::new();
        let mut file_bytes = Vec::new();
        let step = usize::from(split % 37) + 1;
        let mut ok = true;
        for piece in stream.chunks(step) {
            let r = scanner.feed(piece, &mut |s| match s {
                Scanned::Msg(m) => seen.push(m),
                Scanned::FileBytes(b) => file_bytes.extend_from_slice(b),
            });
            if r.is_err() {
                ok = false;
                break;
            }
        }
        if clean {
            assert!(ok, "the scanner refused a stream that decodes");
            let want: Vec<_> = msgs
                .iter()
                .filter(|m| kept(direction, m))
                .cloned()
                .collect();
            assert_eq!(seen, want);
            let data: Vec<u8> = msgs
                .iter()
                .filter_map(|m| match m {
                    SessionMsg::FileData(b) => Some(&b[..]),
                    _ => None,
                })
                .flatten()
                .copied()
                .collect();
            assert_eq!(file_bytes, data);
        }
    }
});
