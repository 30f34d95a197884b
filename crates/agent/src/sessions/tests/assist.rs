//! Sessions in the customer client of attended support: each needs the
//! customer's right, and stops the moment it is revoked.

use jumpgate_proto::assist::Right;
use jumpgate_proto::session::{ConsentMode, RefusalCode, SessionMsg, SessionRequest};

use super::{STEP, Tech, ctx, ended, has_descendant, wait_for_descendant};
use crate::assist::AssistGrants;
use crate::sessions::{SessionContext, SessionError};

fn assist_ctx(grants: &AssistGrants) -> SessionContext {
    SessionContext {
        assist: Some(grants.clone()),
        ..ctx()
    }
}

fn exec(argv: &[&str]) -> SessionRequest {
    SessionRequest::Exec {
        command: argv.iter().map(|s| (*s).to_owned()).collect(),
    }
}

#[tokio::test]
async fn a_command_needs_the_shell_right_and_dies_when_it_is_revoked() {
    let home = tempfile::tempdir().unwrap();
    let grants = AssistGrants::new(Some(home.path().to_owned()));
    let argv = ["sleep", "4242.5"];

    // Not allowed yet: refused, nothing started.
    let (mut tech, served) = Tech::open_with(exec(&argv), assist_ctx(&grants)).await;
    let refusal = tech.refused().await;
    assert_eq!(refusal.code, RefusalCode::ConsentDenied);
    assert!(
        refusal.message.contains("not allowed"),
        "{}",
        refusal.message
    );
    assert!(matches!(
        ended(tech, served).await,
        Err(SessionError::Refused(_))
    ));
    assert!(!has_descendant(&argv));

    // Allowed: it runs.
    grants.grant(Right::Shell);
    let (mut tech, served) = Tech::open_with(exec(&argv), assist_ctx(&grants)).await;
    tech.accepted().await;
    wait_for_descendant(&argv).await;

    // Revoked: the technician is told, the process is gone.
    grants.revoke(Right::Shell);
    match tech.recv().await {
        Some(SessionMsg::Closed { reason }) => assert!(reason.contains("revoked"), "{reason}"),
        other => panic!("expected Closed, got {other:?}"),
    }
    let err = ended(tech, served).await.unwrap_err();
    assert!(matches!(err, SessionError::Revoked { .. }), "{err:?}");
    let deadline = tokio::time::Instant::now() + STEP;
    while has_descendant(&argv) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the command still runs"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_shell_is_refused_then_served_once_allowed() {
    let grants = AssistGrants::new(None);
    let shell = SessionRequest::Shell {
        term: "xterm".into(),
        cols: 80,
        rows: 24,
        command: None,
    };
    let (mut tech, served) = Tech::open_with(shell.clone(), assist_ctx(&grants)).await;
    assert_eq!(tech.refused().await.code, RefusalCode::ConsentDenied);
    let _ = ended(tech, served).await;
    grants.grant(Right::Shell);
    let c = SessionContext {
        shell: Some("/bin/sh".into()),
        ..assist_ctx(&grants)
    };
    let (mut tech, served) = Tech::open_with(shell, c).await;
    tech.accepted().await;
    tech.send(&SessionMsg::Stdin("echo assist-$((6*7))\n".into()))
        .await;
    tech.stdout_until("assist-42").await;
    grants.reset();
    loop {
        match tech.recv().await {
            Some(SessionMsg::Closed { reason }) => {
                assert!(reason.contains("shell"), "{reason}");
                break;
            }
            Some(SessionMsg::Stdout(_)) => {}
            other => panic!("expected Closed, got {other:?}"),
        }
    }
    assert!(matches!(
        ended(tech, served).await,
        Err(SessionError::Revoked { .. })
    ));
}

#[tokio::test]
async fn file_transfers_need_the_files_right_and_stay_in_home() {
    let root = tempfile::tempdir().unwrap();
    let home = root.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::write(home.join("notes.txt"), b"inside").unwrap();
    std::fs::write(root.path().join("secret.txt"), b"outside").unwrap();
    let grants = AssistGrants::new(Some(home.clone()));
    let download = |p: &std::path::Path| SessionRequest::Download {
        path: p.to_str().unwrap().to_owned(),
    };

    let (mut tech, served) =
        Tech::open_with(download(&home.join("notes.txt")), assist_ctx(&grants)).await;
    assert_eq!(tech.refused().await.code, RefusalCode::ConsentDenied);
    let _ = ended(tech, served).await;

    grants.grant(Right::Files);
    let outside = SessionRequest::Upload {
        path: root.path().join("dropped.txt").to_str().unwrap().to_owned(),
        mode: 0o644,
        size: 1,
        file_name: None,
    };
    let (mut tech, served) = Tech::open_with(outside, assist_ctx(&grants)).await;
    let refusal = tech.refused().await;
    assert_eq!(
        refusal.code,
        RefusalCode::PermissionDenied,
        "{}",
        refusal.message
    );
    assert!(refusal.message.contains("home"), "{}", refusal.message);
    let _ = ended(tech, served).await;
    assert!(!root.path().join("dropped.txt").exists());

    let (mut tech, served) = Tech::open_with(
        download(&root.path().join("secret.txt")),
        assist_ctx(&grants),
    )
    .await;
    assert_eq!(tech.refused().await.code, RefusalCode::PermissionDenied);
    let _ = ended(tech, served).await;

    let (mut tech, served) =
        Tech::open_with(download(&home.join("notes.txt")), assist_ctx(&grants)).await;
    tech.accepted().await;
    let mut got = Vec::new();
    loop {
        match tech.recv().await {
            Some(SessionMsg::FileData(b)) => got.extend_from_slice(&b),
            Some(SessionMsg::FileEnd(_)) => break,
            other => panic!("expected file data, got {other:?}"),
        }
    }
    assert_eq!(got, b"inside");
    let _ = ended(tech, served).await;
}

#[tokio::test]
async fn forwarding_and_other_desktops_are_refused_and_the_screen_needs_view() {
    let grants = AssistGrants::new(None);
    for r in jumpgate_proto::assist::Right::ALL {
        grants.grant(r);
    }
    let forward = SessionRequest::Forward {
        host: "127.0.0.1".into(),
        port: 22,
    };
    let (mut tech, served) = Tech::open_with(forward, assist_ctx(&grants)).await;
    assert_eq!(tech.refused().await.code, RefusalCode::Unsupported);
    let _ = ended(tech, served).await;

    let desktop = |consent| SessionRequest::Desktop {
        control: true,
        clipboard: false,
        monitor: None,
        consent,
        technician: "alice".into(),
        codecs: None,
    };
    let (mut tech, served) =
        Tech::open_with(desktop(ConsentMode::Prompt), assist_ctx(&grants)).await;
    assert_eq!(tech.refused().await.code, RefusalCode::Unsupported);
    let _ = ended(tech, served).await;

    grants.revoke(Right::View);
    let (mut tech, served) =
        Tech::open_with(desktop(ConsentMode::Assist), assist_ctx(&grants)).await;
    let refusal = tech.refused().await;
    assert_eq!(refusal.code, RefusalCode::ConsentDenied);
    assert!(refusal.message.contains("view"), "{}", refusal.message);
    let _ = ended(tech, served).await;

    // An enrolled agent refuses assist-mode desktops.
    let (mut tech, served) = Tech::open_with(desktop(ConsentMode::Assist), ctx()).await;
    assert_eq!(tech.refused().await.code, RefusalCode::Unsupported);
    let _ = ended(tech, served).await;
}

mod screen {
    use jumpgate_proto::assist::Right;
    use jumpgate_proto::desktop::{ControlState, InputState, Pointer};
    use jumpgate_proto::session::{ConsentMode, SessionMsg, SessionRequest};
    use jumpgate_test_support::xvfb::{Xvfb, have_tools};

    use super::super::{Tech, ctx, ended};
    use crate::assist::{AssistGrants, WindowGuard};
    use crate::sessions::SessionContext;
    use crate::sessions::desktop::DesktopOptions;

    fn pointer_at(x: &Xvfb) -> (i32, i32) {
        let out = x.output("xdotool", &["getmouselocation", "--shell"]);
        let field = |k: &str| -> i32 {
            out.lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{k} in {out}"))
        };
        (field("X="), field("Y="))
    }

    /// The next `ControlState` (video and the rest skipped).
    async fn control_state(tech: &mut Tech) -> ControlState {
        loop {
            match tech.recv().await {
                Some(SessionMsg::ControlState(s)) => return s,
                Some(_) => {}
                None => panic!("the session ended"),
            }
        }
    }

    /// Everything sent before is handled once the pong is back.
    async fn round_trip(tech: &mut Tech, n: u64) {
        tech.send(&SessionMsg::Ping(n)).await;
        loop {
            match tech.recv().await {
                Some(SessionMsg::Pong(got)) if got == n => return,
                Some(_) => {}
                None => panic!("the session ended"),
            }
        }
    }

    async fn point(tech: &mut Tech, x: u16, y: u16) {
        tech.send(&SessionMsg::Pointer(Pointer { x, y, buttons: 0 }))
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_customer_revokes_control_mid_session_and_then_the_screen() {
        assert!(
            have_tools(),
            "the X tools (Xvfb, xdotool, openbox…) are installed"
        );
        let x = Xvfb::start();
        let grants = AssistGrants::new(None);
        grants.grant(Right::Control);
        let c = SessionContext {
            desktop: DesktopOptions {
                display: Some(x.display.clone()),
                ..DesktopOptions::default()
            },
            assist: Some(grants.clone()),
            ..ctx()
        };
        let req = SessionRequest::Desktop {
            control: true,
            clipboard: false,
            monitor: None,
            consent: ConsentMode::Assist,
            technician: "alice".into(),
            codecs: None,
        };
        let (mut tech, served) = Tech::open_with(req, c).await;
        tech.accepted().await;
        assert_eq!(control_state(&mut tech).await.input, InputState::Allowed);
        point(&mut tech, 300, 200).await;
        x.poll("the pointer moved", || {
            (pointer_at(&x) == (300, 200)).then_some(())
        });

        // The customer takes control back: the technician is told, input
        // is dropped.
        grants.revoke(Right::Control);
        let s = control_state(&mut tech).await;
        assert_eq!(s.input, InputState::TakenBack, "{s:?}");
        point(&mut tech, 500, 400).await;
        round_trip(&mut tech, 1).await;
        assert_eq!(pointer_at(&x), (300, 200), "input after the revocation");

        // Allowed again; an ask pending pauses input.
        grants.grant(Right::Control);
        assert_eq!(control_state(&mut tech).await.input, InputState::Allowed);
        grants.set_asking(true);
        assert_eq!(control_state(&mut tech).await.input, InputState::TakenBack);
        point(&mut tech, 510, 410).await;
        round_trip(&mut tech, 2).await;
        assert_eq!(pointer_at(&x), (300, 200), "input while an ask waits");
        grants.set_asking(false);
        assert_eq!(control_state(&mut tech).await.input, InputState::Allowed);

        // The assist window is never clicked by the technician.
        grants.set_window(WindowGuard {
            x: 800,
            y: 100,
            w: 400,
            h: 600,
            focused: false,
        });
        point(&mut tech, 900, 300).await;
        round_trip(&mut tech, 3).await;
        assert_eq!(
            pointer_at(&x),
            (300, 200),
            "the pointer went onto the window"
        );
        point(&mut tech, 320, 220).await;
        x.poll("the pointer moved", || {
            (pointer_at(&x) == (320, 220)).then_some(())
        });

        // The customer stops sharing the screen: the session ends.
        grants.revoke(Right::View);
        let s = control_state(&mut tech).await;
        assert_eq!(s.input, InputState::Ended, "{s:?}");
        assert!(s.message.contains("stopped sharing"), "{}", s.message);
        ended(tech, served).await.expect("a clean end");
    }
}
