//! Control messages on stream 0 (`jumpgate_proto::control`), the first
//! thing the gateway parses from an unauthenticated agent (the `Hello`).
//! A message that parses must survive a round trip unchanged.
#![no_main]

use jumpgate_proto::control::{self, Control};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = Control::from_bytes(data) else {
        return;
    };
    let bytes = msg.to_bytes();
    assert_eq!(Control::from_bytes(&bytes).as_ref(), Ok(&msg));
    if let Control::Hello(hello) = &msg {
        let _ = control::negotiate(&hello.versions);
        let _ = control::auth_message(&hello.agent_id, &[0; control::AUTH_EXPORTER_LEN]);
    }
});
