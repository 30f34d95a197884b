//! Frame header and body decoding (`jumpgate_proto::frame`): what every
//! agent connection reads first. Decodes frames off the input until it is
//! used up, incomplete or refused; every frame must re-encode to bytes that
//! decode to the same frame, and "incomplete" must consume nothing.
#![no_main]

use bytes::BytesMut;
use jumpgate_proto::frame::{Frame, HEADER_LEN, MAX_CONTROL_PAYLOAD, MAX_DATA_PAYLOAD};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        match Frame::decode(&mut buf) {
            Ok(Some(frame)) => {
                let consumed = before - buf.len();
                assert!(consumed >= HEADER_LEN);
                assert!(consumed <= HEADER_LEN + MAX_CONTROL_PAYLOAD.max(MAX_DATA_PAYLOAD));
                let mut again = BytesMut::new();
                frame.encode(&mut again);
                assert_eq!(again.len(), consumed, "{frame:?}");
                assert_eq!(Frame::decode(&mut again).unwrap(), Some(frame));
                assert!(again.is_empty());
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "an incomplete frame consumes nothing");
                break;
            }
            Err(_) => break,
        }
    }
});
