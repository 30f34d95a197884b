//! Leases for background jobs: a job runs only on the gateway holding its
//! lease, so that with several gateways one of them — not each — anchors
//! the audit head, applies retention, expires vault secrets and sweeps
//! keys.
//!
//! Today a gateway runs alone and [`LocalLease`] grants every job. A
//! multi-gateway site swaps in a lease kept in the shared store (holder,
//! expiry), and the jobs need no change: each asks [`Lease::hold`] before
//! every run, for a little longer than until its next run, so a lease
//! whose holder stopped passes to another gateway once it expires.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The background jobs that take a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Job {
    /// Writing the audit chain's head outside the database.
    AuditAnchor,
    /// Removing recordings and audit entries past retention.
    Retention,
    /// Purging deleted vault secrets whose retention ended.
    VaultExpiry,
    /// Scheduled key rotation and the re-wrap sweep.
    KeySweep,
    /// Ending abandoned support sessions and removing old ones.
    SupportUpkeep,
    /// Turning audit entries into alert mail (`notify::alerts`).
    Alerts,
    /// Turning audit entries into webhook deliveries, and sending them
    /// (`notify::webhooks`).
    Webhooks,
    /// Ending access grants whose window closed (and the sessions under
    /// them), and pending access requests never decided.
    AccessExpiry,
    /// Reporting endpoints offline longer than `[agents] offline_after`
    /// (and back again): `agents::watch`.
    EndpointWatch,
    /// Walking the whole audit chain every `[audit] verify_every`.
    AuditVerify,
}

impl Job {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::AuditAnchor => "audit-anchor",
            Self::Retention => "retention",
            Self::VaultExpiry => "vault-expiry",
            Self::KeySweep => "key-sweep",
            Self::SupportUpkeep => "support-upkeep",
            Self::Alerts => "alerts",
            Self::Webhooks => "webhooks",
            Self::AccessExpiry => "access-expiry",
            Self::EndpointWatch => "endpoint-watch",
            Self::AuditVerify => "audit-verify",
        }
    }
}

/// Whether this gateway may run a job now.
pub(crate) trait Lease: Send + Sync + std::fmt::Debug {
    /// Takes or renews the lease on `job` for `ttl`; `true` when this
    /// gateway holds it (and may run the job now).
    fn hold(&self, job: Job, ttl: Duration) -> Pin<Box<dyn Future<Output = bool> + Send + '_>>;
}

/// The lease of a gateway running alone: every job is granted.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LocalLease;

impl Lease for LocalLease {
    fn hold(&self, _job: Job, _ttl: Duration) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        Box::pin(std::future::ready(true))
    }
}

/// Runs `work` if this gateway holds `job`'s lease (for `ttl`); answers
/// whether it ran.
pub(crate) async fn run_held<F>(lease: &dyn Lease, job: Job, ttl: Duration, work: F) -> bool
where
    F: Future<Output = ()>,
{
    if lease.hold(job, ttl).await {
        work.await;
        true
    } else {
        tracing::debug!(
            job = job.as_str(),
            "another gateway holds the lease; skipped"
        );
        false
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A lease held elsewhere for some jobs; records what was asked.
    #[derive(Debug, Default)]
    struct Partial {
        granted: Vec<Job>,
        asked: Mutex<Vec<(Job, Duration)>>,
    }

    impl Lease for Partial {
        fn hold(&self, job: Job, ttl: Duration) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
            self.asked.lock().unwrap().push((job, ttl));
            Box::pin(std::future::ready(self.granted.contains(&job)))
        }
    }

    #[tokio::test]
    async fn the_local_lease_grants_every_job_and_a_refused_lease_skips_the_work() {
        let jobs = [
            Job::AuditAnchor,
            Job::Retention,
            Job::VaultExpiry,
            Job::KeySweep,
            Job::SupportUpkeep,
            Job::AccessExpiry,
            Job::EndpointWatch,
            Job::AuditVerify,
        ];
        for job in jobs {
            let mut ran = false;
            assert!(
                run_held(&LocalLease, job, Duration::from_secs(1), async {
                    ran = true
                })
                .await
            );
            assert!(ran, "{}", job.as_str());
        }
        let lease = Partial {
            granted: vec![Job::Retention],
            ..Partial::default()
        };
        let mut ran = Vec::new();
        for job in jobs {
            if run_held(&lease, job, Duration::from_secs(7), async {}).await {
                ran.push(job);
            }
        }
        assert_eq!(ran, [Job::Retention]);
        let asked = lease.asked.lock().unwrap().clone();
        assert_eq!(asked.len(), jobs.len());
        assert!(asked.iter().all(|(_, ttl)| *ttl == Duration::from_secs(7)));
    }
}
