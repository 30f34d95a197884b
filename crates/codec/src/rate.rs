//! Link adaptation from acknowledged bytes.
//!
//! The caller counts what the viewer (or the gateway's flow control)
//! acknowledged; the encoder counts what it produced. The difference is in
//! flight. More than ~250 ms of data at the measured delivery rate in
//! flight means a queue is building: the target drops to 80 % of that rate. Little in flight: it climbs back by 15 % per step. More than ~500 ms
//! in flight: no new frames at all until the queue drains (the skipped
//! changes go out in the next frame). Without any feedback the link is
//! treated as unconstrained (the configured maximum).

use std::time::{Duration, Instant};

/// How often the target is reconsidered at most.
const ADJUST_EVERY: Duration = Duration::from_millis(200);
/// Queue allowed before the target drops (in time at the target rate).
const QUEUE_TARGET: Duration = Duration::from_millis(250);
/// The smallest queue allowance in bytes (a keyframe must fit through).
const MIN_QUEUE: u64 = 48 * 1024;

#[derive(Debug)]
pub(crate) struct Rate {
    max_kbps: u32,
    min_kbps: u32,
    target_kbps: u32,
    sent: u64,
    acked: u64,
    feedback: bool,
    window: Option<(Instant, u64)>,
    /// Smoothed delivery rate while the link had data queued (kbit/s).
    delivered_kbps: Option<f64>,
}

impl Rate {
    pub(crate) fn new(max_kbps: u32, min_kbps: u32) -> Rate {
        let max_kbps = max_kbps.max(min_kbps).max(50);
        Rate {
            max_kbps,
            min_kbps: min_kbps.min(max_kbps),
            target_kbps: max_kbps,
            sent: 0,
            acked: 0,
            feedback: false,
            window: None,
            delivered_kbps: None,
        }
    }

    pub(crate) fn target_kbps(&self) -> u32 {
        self.target_kbps
    }

    pub(crate) fn set_max(&mut self, kbps: u32) {
        self.max_kbps = kbps.max(self.min_kbps).max(50);
        self.target_kbps = self.target_kbps.min(self.max_kbps);
    }

    pub(crate) fn in_flight(&self) -> u64 {
        if self.feedback {
            self.sent.saturating_sub(self.acked)
        } else {
            0
        }
    }

    /// Bytes that may be queued before the target drops: 250 ms at what
    /// the link delivers (or at the target, if lower or not measured yet).
    fn queue_allowance(&self) -> u64 {
        let kbps = self
            .delivered_kbps
            .map_or(f64::from(self.target_kbps), |d| {
                d.min(f64::from(self.target_kbps))
            });
        let bytes = kbps * 1000.0 / 8.0 * QUEUE_TARGET.as_secs_f64();
        (bytes as u64).max(MIN_QUEUE)
    }

    pub(crate) fn on_sent(&mut self, bytes: usize) {
        self.sent += bytes as u64;
    }

    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    pub(crate) fn on_acked(&mut self, now: Instant, cumulative: u64) {
        self.feedback = true;
        self.acked = self.acked.max(cumulative.min(self.sent));
        let Some((since, acked_then)) = self.window else {
            self.window = Some((now, self.acked));
            return;
        };
        let dt = now.saturating_duration_since(since);
        if dt < ADJUST_EVERY {
            return;
        }
        let delivered_kbps = ((self.acked - acked_then) * 8) as f64 / dt.as_secs_f64() / 1000.0;
        let in_flight = self.in_flight();
        // Only a link with data queued shows what it can carry.
        if in_flight > 0 {
            self.delivered_kbps = Some(match self.delivered_kbps {
                Some(d) => 0.5 * d + 0.5 * delivered_kbps,
                None => delivered_kbps,
            });
        }
        let allowance = self.queue_allowance();
        if in_flight > allowance {
            let lowered = (delivered_kbps * 0.8).min(f64::from(self.target_kbps) * 0.85);
            self.target_kbps = (lowered as u32).clamp(self.min_kbps, self.max_kbps);
        } else if in_flight < allowance / 2 {
            let raised = f64::from(self.target_kbps) * 1.15 + 50.0;
            self.target_kbps = (raised as u32).clamp(self.min_kbps, self.max_kbps);
        }
        self.window = Some((now, self.acked));
    }

    /// False while so much is in flight that new frames would only queue.
    pub(crate) fn may_send(&self) -> bool {
        self.in_flight() <= 2 * self.queue_allowance()
    }

    /// Bytes of lossless refinement that may go out now.
    pub(crate) fn refine_budget(&self) -> u64 {
        self.queue_allowance().saturating_sub(self.in_flight())
    }

    /// The shortest interval between video frames at the current target.
    pub(crate) fn min_frame_interval(&self, max_fps: u32) -> Duration {
        let fps = match self.target_kbps {
            k if k >= 2000 => max_fps,
            k if k >= 700 => max_fps.min(15),
            k if k >= 300 => max_fps.min(10),
            _ => max_fps.min(5),
        };
        Duration::from_micros(1_000_000 / u64::from(fps.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_lowers_the_target_and_a_drained_link_raises_it() {
        let t0 = Instant::now();
        let mut r = Rate::new(6000, 150);
        assert_eq!(r.target_kbps(), 6000);
        // 1 MB sent, only 25 kB/s acknowledged: a slow link.
        r.on_sent(1_000_000);
        r.on_acked(t0, 0);
        let mut acked = 0;
        for i in 1..=10 {
            acked += 5_000;
            r.on_acked(t0 + Duration::from_millis(200 * i), acked);
        }
        assert!(r.target_kbps() <= 200, "{}", r.target_kbps());
        assert!(!r.may_send());
        assert!(r.min_frame_interval(30) >= Duration::from_millis(200));
        // Everything acknowledged: the target climbs back.
        let low = r.target_kbps();
        r.on_acked(t0 + Duration::from_millis(2400), 1_000_000);
        r.on_acked(t0 + Duration::from_millis(2600), 1_000_000);
        assert!(r.may_send());
        assert!(r.target_kbps() > low);
    }
}
