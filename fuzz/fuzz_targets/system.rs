//! System stream messages (`jumpgate_proto::system`): what the gateway and
//! an agent send each other on a system stream (agent facts, later
//! policies), with bodies up to 16 MiB.
//!
//! `SystemMsg::decode` takes the input apart (decode ↔ `message_len` agree,
//! every message round-trips), and the `Assembler` fed the same bytes
//! split at arbitrary points gives the same verdict and the same message
//! as fed whole.
#![no_main]

use bytes::BytesMut;
use jumpgate_proto::system::{self, Assembler, SystemMsg};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte: how to split the stream; second: the body limit.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let Some((&limit, stream)) = rest.split_first() else {
        return;
    };
    let mut buf = BytesMut::from(stream);
    loop {
        let before = buf.len();
        let len = system::message_len(&buf);
        match SystemMsg::decode(&mut buf) {
            Ok(Some(msg)) => {
                assert_eq!(len, Ok(Some(before - buf.len())));
                let _ = msg.name();
                let again = msg.to_bytes();
                let mut b = BytesMut::from(&again[..]);
                assert_eq!(SystemMsg::decode(&mut b).unwrap().as_ref(), Some(&msg));
                assert!(b.is_empty());
            }
            Ok(None) => {
                assert_eq!(len, Ok(None));
                assert_eq!(buf.len(), before, "an incomplete message consumes nothing");
                break;
            }
            Err(_) => break,
        }
    }

    let max_body = usize::from(limit) * 64;
    let whole = Assembler::new(max_body).feed(stream);
    let mut asm = Assembler::new(max_body);
    let mut pieces = Ok(None);
    let step = usize::from(split % 37) + 1;
    for piece in stream.chunks(step) {
        match asm.feed(piece) {
            Ok(None) => {}
            other => {
                pieces = other;
                break;
            }
        }
    }
    match (&whole, &pieces) {
        (Ok(Some((h1, b1))), Ok(Some((h2, b2)))) => {
            assert_eq!(h1, h2);
            assert_eq!(b1, b2);
            assert!(b1.len() <= max_body);
            assert_eq!(h1.size(), b1.len() as u64);
        }
        // Fed whole, bytes past the end are an error; fed in pieces, the
        // message may complete first: both saw a whole message.
        (Err(_), Ok(Some(_))) | (Ok(None), Ok(None)) | (Err(_), Err(_)) => {}
        // An error in pieces is an error whole, and a message found whole
        // is found in pieces.
        _ => panic!("whole {whole:?} vs pieces {pieces:?}"),
    }
});
