//! The test plays the agent at the other end of a `tokio::io::duplex`.

use jumpgate_proto::session::ExitStatus;
use tokio::io::DuplexStream;

use super::*;

struct Harness {
    agent: MsgStream<DuplexStream>,
    events: mpsc::Sender<Event>,
    task: tokio::task::JoinHandle<(anyhow::Result<i32>, Vec<u8>, Vec<u8>)>,
}

fn start(input: Option<mpsc::Receiver<io::Result<Bytes>>>) -> Harness {
    let (ours, agent) = tokio::io::duplex(64 * 1024);
    let (events, rx) = mpsc::channel(8);
    let task = tokio::spawn(async move {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let r = pump(MsgStream::new(ours), input, rx, &mut out, &mut err).await;
        (r, out, err)
    });
    Harness {
        agent: MsgStream::new(agent),
        events,
        task,
    }
}

impl Harness {
    async fn next(&mut self) -> SessionMsg {
        recv(&mut self.agent).await.unwrap().expect("stream ended")
    }

    async fn send(&mut self, msg: SessionMsg) {
        self.agent.write_msg(&msg).await.unwrap();
    }
}

fn exit(code: Option<i32>, signal: Option<i32>) -> SessionMsg {
    SessionMsg::Exit(ExitStatus { code, signal })
}

#[tokio::test]
async fn output_goes_to_its_stream_and_the_exit_code_is_returned() {
    let mut h = start(None);
    // No input to read: end of input is announced at once.
    assert_eq!(h.next().await, SessionMsg::StdinEof);
    h.send(SessionMsg::Stdout(Bytes::from_static(b"out 1\n")))
        .await;
    h.send(SessionMsg::Stderr(Bytes::from_static(b"warning\n")))
        .await;
    h.send(SessionMsg::Stdout(Bytes::from_static(b"out 2\n")))
        .await;
    h.send(exit(Some(3), None)).await;
    let (r, out, err) = h.task.await.unwrap();
    assert_eq!(r.unwrap(), 3);
    assert_eq!(out, b"out 1\nout 2\n");
    assert_eq!(err, b"warning\n");
}

#[tokio::test]
async fn input_is_forwarded_then_eof() {
    let (tx, rx) = mpsc::channel(4);
    let mut h = start(Some(rx));
    tx.send(Ok(Bytes::from_static(b"line 1\n"))).await.unwrap();
    assert_eq!(
        h.next().await,
        SessionMsg::Stdin(Bytes::from_static(b"line 1\n"))
    );
    tx.send(Ok(Bytes::from_static(b"line 2\n"))).await.unwrap();
    drop(tx);
    assert_eq!(
        h.next().await,
        SessionMsg::Stdin(Bytes::from_static(b"line 2\n"))
    );
    assert_eq!(h.next().await, SessionMsg::StdinEof);
    h.send(exit(None, Some(9))).await;
    assert_eq!(h.task.await.unwrap().0.unwrap(), 137);
}

#[tokio::test]
async fn signal_events_reach_the_agent_or_end_the_session() {
    let mut h = start(None);
    assert_eq!(h.next().await, SessionMsg::StdinEof);
    let resize = SessionMsg::Resize {
        cols: 132,
        rows: 50,
    };
    h.events.send(Event::Send(resize.clone())).await.unwrap();
    assert_eq!(h.next().await, resize);
    let interrupt = SessionMsg::Signal(SignalKind::Interrupt);
    h.events.send(Event::Send(interrupt.clone())).await.unwrap();
    assert_eq!(h.next().await, interrupt);
    // The agent does not answer: a second Ctrl-C gives up anyway.
    h.events.send(Event::Exit(130)).await.unwrap();
    assert_eq!(h.task.await.unwrap().0.unwrap(), 130);
}

#[tokio::test]
async fn gateway_closing_or_vanishing_is_an_error() {
    let mut h = start(None);
    h.send(SessionMsg::Closed {
        reason: "terminated by an administrator".into(),
    })
    .await;
    let err = h.task.await.unwrap().0.unwrap_err();
    assert_eq!(
        err.downcast_ref::<GatewayClosed>().unwrap().reason,
        "terminated by an administrator"
    );

    let h = start(None);
    drop(h.agent);
    let err = h.task.await.unwrap().0.unwrap_err();
    assert!(
        format!("{err:#}").contains("connection to the gateway was lost"),
        "{err:#}"
    );
}
