//! The timer that ends access grants on time: at each active grant's end
//! (and at least every [`SWEEP_EVERY`]), under the `access-expiry` lease,
//! grants whose window closed are marked expired (audited
//! `access-expire`), then the sessions' re-check is poked: it stops the
//! sessions opened under them, telling the technician "access grant
//! expired" (`sessions::recheck`, the path every loss of access takes).

use std::time::Duration;

use crate::ids;
use crate::lease::{Job, run_held};
use crate::state::AppState;

/// The longest wait between two looks.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Runs until the gateway shuts down. `AppState::access_wake` wakes it
/// when a grant becomes active (its end may be sooner than the next look).
pub(crate) async fn run(st: AppState) {
    loop {
        let wait = match super::next_until(&st.db).await {
            Ok(Some(at)) => {
                let ms = at.saturating_sub(ids::now_ms()).max(0) as u64;
                Duration::from_millis(ms).min(SWEEP_EVERY)
            }
            Ok(None) => SWEEP_EVERY,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read access grants' ends; looking again later");
                SWEEP_EVERY
            }
        };
        tokio::select! {
            () = st.shutdown.cancelled() => return,
            () = st.access_wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
        run_held(st.lease.as_ref(), Job::AccessExpiry, SWEEP_EVERY * 3, async {
            match super::expire_due(&st.db, ids::now_ms()).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(grants = n, "access requests expired");
                    st.sessions.changed();
                }
                Err(e) => tracing::warn!(error = %e, "cannot expire access grants; trying again later"),
            }
        })
        .await;
    }
}
