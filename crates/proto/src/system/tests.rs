//! System messages in memory: framing, reassembly and limits, and a whole
//! exchange through two multiplexer ends.

use super::*;
use crate::mux::tests::{Pair, read_all};
use crate::mux::{Event, ReadOutcome};
use crate::session::{SessionMsg, SessionRequest};

fn pattern(n: usize, seed: u8) -> Bytes {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

fn request(topic: &str, body: &Bytes) -> BytesMut {
    let mut out = BytesMut::new();
    SystemMsg::Request(Request {
        topic: topic.into(),
        size: body.len() as u64,
    })
    .encode(&mut out);
    for c in chunks(body) {
        c.encode(&mut out);
    }
    out
}

#[test]
fn every_message_roundtrips_byte_by_byte() {
    let msgs = [
        SystemMsg::Request(Request {
            topic: "facts".into(),
            size: 0,
        }),
        SystemMsg::Reply(Reply {
            status: Status::UnknownTopic,
            message: "no such topic".into(),
            size: 3,
        }),
        SystemMsg::Chunk(Bytes::from_static(b"abc")),
        SystemMsg::Chunk(Bytes::new()),
        SystemMsg::Chunk(pattern(MAX_CHUNK, 1)),
    ];
    let mut stream = BytesMut::new();
    for m in &msgs {
        m.encode(&mut stream);
    }
    let mut buf = BytesMut::new();
    let mut decoded = Vec::new();
    for b in stream.iter() {
        buf.put_u8(*b);
        while let Some(m) = SystemMsg::decode(&mut buf).unwrap() {
            decoded.push(m);
        }
    }
    assert_eq!(decoded, msgs);
    let names: Vec<&str> = decoded.iter().map(SystemMsg::name).collect();
    assert_eq!(names, ["request", "reply", "chunk", "chunk", "chunk"]);
}

#[test]
fn the_first_byte_tells_a_system_stream_from_a_session() {
    let open = SessionMsg::Open(SessionRequest::Exec {
        command: vec!["true".into()],
    })
    .to_bytes();
    assert_eq!(
        StreamPurpose::of_first_byte(open[0]),
        StreamPurpose::Session
    );
    // Every session message type stays below the system range.
    for m in [
        SessionMsg::Closed { reason: "x".into() },
        SessionMsg::StdinEof,
    ] {
        assert_eq!(
            StreamPurpose::of_first_byte(m.to_bytes()[0]),
            StreamPurpose::Session
        );
    }
    // Every type a session message may have, today's and any the session
    // decoder would accept, is below the system range.
    for t in 0..=u8::MAX {
        if crate::session::message_len(&[t, 0, 0, 0, 0]).is_ok() {
            assert!(t < FIRST_TYPE, "session message type {t}");
            assert_eq!(StreamPurpose::of_first_byte(t), StreamPurpose::Session);
        }
    }
    let req = request("facts", &Bytes::new());
    assert_eq!(StreamPurpose::of_first_byte(req[0]), StreamPurpose::System);
}

#[test]
fn a_body_far_beyond_a_control_frame_reassembles_across_any_split() {
    let body = pattern(1024 * 1024 + 17, 3);
    assert!(body.len() > crate::frame::MAX_CONTROL_PAYLOAD);
    let stream = request("echo", &body);
    for split in [1, 7, 4096, CHUNK + 1, stream.len()] {
        let mut asm = Assembler::new(MAX_BODY);
        let mut got = None;
        for piece in stream.chunks(split) {
            assert!(
                got.is_none(),
                "a message before its last byte (split {split})"
            );
            got = asm.feed(piece).unwrap();
        }
        let (head, got) = got.unwrap_or_else(|| panic!("no message (split {split})"));
        assert_eq!(
            head,
            Head::Request(Request {
                topic: "echo".into(),
                size: body.len() as u64
            })
        );
        assert_eq!(got, body, "split {split}");
        assert!(asm.is_done());
    }
}

#[test]
fn an_empty_body_completes_with_its_head() {
    let mut asm = Assembler::new(MAX_BODY);
    let (head, body) = asm.feed(&request("facts", &Bytes::new())).unwrap().unwrap();
    assert_eq!(head.size(), 0);
    assert!(body.is_empty());
    assert_eq!("facts".parse::<Topic>().unwrap(), Topic::Facts);
    assert!("policy".parse::<Topic>().is_err());
}

#[test]
fn limits_are_enforced_from_headers_before_payload_arrives() {
    // A head announcing more than the receiver takes: refused at once.
    let mut asm = Assembler::new(1000);
    let head = SystemMsg::Request(Request {
        topic: "echo".into(),
        size: 1001,
    })
    .to_bytes();
    assert!(matches!(
        asm.feed(&head),
        Err(ProtoError::FrameTooLarge {
            len: 1001,
            max: 1000
        })
    ));
    // Never beyond MAX_BODY, whatever the receiver asks for.
    let mut asm = Assembler::new(usize::MAX);
    let huge = SystemMsg::Request(Request {
        topic: "echo".into(),
        size: MAX_BODY as u64 + 1,
    })
    .to_bytes();
    assert!(asm.feed(&huge).is_err());
    // An oversized chunk or head: refused from its 5-byte header alone.
    for (t, max) in [(ty::CHUNK, MAX_CHUNK), (ty::REQUEST, MAX_HEAD)] {
        let mut h = BytesMut::new();
        h.put_u8(t);
        h.put_u32(max as u32 + 1);
        assert!(matches!(
            message_len(&h),
            Err(ProtoError::FrameTooLarge { .. })
        ));
    }
    // Session message types are not system messages.
    assert!(message_len(&[1, 0, 0, 0, 0]).is_err());
}

#[test]
fn malformed_streams_are_errors() {
    let mut asm = Assembler::new(MAX_BODY);
    assert!(
        asm.feed(&SystemMsg::Chunk(Bytes::from_static(b"x")).to_bytes())
            .is_err(),
        "a chunk before any head"
    );

    let body = pattern(10, 0);
    let mut more = request("echo", &body);
    SystemMsg::Chunk(Bytes::from_static(b"!")).encode(&mut more);
    assert!(
        Assembler::new(MAX_BODY).feed(&more).is_err(),
        "bytes past the announced body"
    );

    let mut long = BytesMut::new();
    SystemMsg::Request(Request {
        topic: "echo".into(),
        size: 4,
    })
    .encode(&mut long);
    SystemMsg::Chunk(Bytes::from_static(b"12345")).encode(&mut long);
    assert!(
        Assembler::new(MAX_BODY).feed(&long).is_err(),
        "a chunk longer than what remains"
    );

    let mut two_heads = BytesMut::new();
    for _ in 0..2 {
        SystemMsg::Request(Request {
            topic: "echo".into(),
            size: 1,
        })
        .encode(&mut two_heads);
    }
    assert!(Assembler::new(MAX_BODY).feed(&two_heads).is_err());

    let mut done = Assembler::new(MAX_BODY);
    done.feed(&request("facts", &Bytes::new()))
        .unwrap()
        .unwrap();
    assert!(done.feed(b"\x82").is_err(), "bytes after the end");

    let mut bad_json = BytesMut::new();
    bad_json.put_u8(ty::REPLY);
    bad_json.put_u32(2);
    bad_json.put_slice(b"{]");
    assert!(SystemMsg::decode(&mut bad_json).is_err());
}

#[test]
fn an_unknown_status_from_a_newer_agent_reads_as_failed() {
    let reply: Reply =
        serde_json::from_str(r#"{"status":"rebooting","size":0,"extra":1}"#).unwrap();
    assert_eq!(reply.status, Status::Failed);
}

/// Writes as much of `data[*at..]` as the stream takes now.
fn write_some(p: &mut Pair, gateway: bool, id: crate::StreamId, data: &[u8], at: &mut usize) {
    let mux = if gateway {
        &mut p.gateway
    } else {
        &mut p.agent
    };
    if *at < data.len() {
        *at += mux.write(id, &data[*at..]).unwrap();
    }
}

#[test]
fn a_large_exchange_runs_through_two_multiplexer_ends_under_flow_control() {
    let mut p = Pair::new();
    let id = p.gateway.open().unwrap();
    // Larger than a stream's initial window: the sender must wait for grants.
    let req_body = pattern(600 * 1024, 5);
    let req = request("echo", &req_body);
    let (mut sent, mut asm, mut got) = (0, Assembler::new(MAX_BODY), None);
    let mut purpose = None;
    let mut buf = vec![0u8; 50_000];
    for _ in 0..1000 {
        write_some(&mut p, true, id, &req, &mut sent);
        if sent == req.len() {
            p.gateway.finish(id).unwrap();
        }
        p.drive();
        while let ReadOutcome::Data(n) = p.agent.read(id, &mut buf).unwrap() {
            purpose.get_or_insert(StreamPurpose::of_first_byte(buf[0]));
            if let Some(m) = asm.feed(&buf[..n]).unwrap() {
                got = Some(m);
            }
        }
        if got.is_some() {
            break;
        }
    }
    assert!(p.agent_events.contains(&Event::Incoming(id)));
    assert_eq!(purpose, Some(StreamPurpose::System));
    let (head, body) = got.expect("the agent assembled the request");
    assert!(matches!(head, Head::Request(ref r) if r.topic == "echo"));
    assert_eq!(body, req_body);

    // The reply, as large again, the other way.
    let mut reply = BytesMut::new();
    SystemMsg::Reply(Reply {
        status: Status::Ok,
        message: String::new(),
        size: body.len() as u64,
    })
    .encode(&mut reply);
    for c in chunks(&body) {
        c.encode(&mut reply);
    }
    let (mut sent, mut asm, mut answer) = (0, Assembler::new(MAX_BODY), None);
    for _ in 0..1000 {
        write_some(&mut p, false, id, &reply, &mut sent);
        if sent == reply.len() {
            p.agent.finish(id).unwrap();
        }
        p.drive();
        let (data, _) = read_all(&mut p.gateway, id);
        if let Some(m) = asm.feed(&data).unwrap() {
            answer = Some(m);
            break;
        }
    }
    let (head, echoed) = answer.expect("the gateway assembled the reply");
    assert!(matches!(
        head,
        Head::Reply(Reply {
            status: Status::Ok,
            ..
        })
    ));
    assert_eq!(echoed, req_body);
}
