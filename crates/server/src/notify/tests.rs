use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::*;
use crate::lease::LocalLease;
use crate::store::audit::{AuditAction, AuditEvent};

/// Records what it was given; refuses batches while `refuse` is set.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(i64, String)>>,
    refuse: AtomicBool,
    taken: AtomicUsize,
}

impl Consumer for Recorder {
    fn name(&self) -> &'static str {
        "test-recorder"
    }
    fn job(&self) -> Job {
        Job::Alerts
    }
    fn take<'a>(&'a self, _tx: &'a mut WriteTx, entries: &'a [Entry]) -> TakeFuture<'a> {
        Box::pin(async move {
            if self.refuse.load(Ordering::SeqCst) {
                return Err(sqlx::Error::Protocol("refused by the test".into()));
            }
            self.seen
                .lock()
                .unwrap()
                .extend(entries.iter().map(|e| (e.id, e.target.clone())));
            Ok(())
        })
    }
    fn taken(&self) {
        self.taken.fetch_add(1, Ordering::SeqCst);
    }
}

async fn login(db: &Store, who: &str) {
    db.audit_now(
        AuditEvent::new(who, AuditAction::Login, who)
            .outcome("failed")
            .group("web"),
    )
    .await
    .unwrap();
}

fn targets(r: &Recorder) -> Vec<String> {
    r.seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, t)| t.clone())
        .collect()
}

/// A new consumer starts at the head (history is not replayed), then takes
/// each later entry once, in order; a refused batch moves nothing and comes
/// again; a restarted consumer (a new value, same name) goes on from the
/// stored cursor.
#[tokio::test]
async fn a_consumer_takes_each_entry_after_its_cursor_exactly_once() {
    for (db, _lite) in crate::store::tests::engines("notify_cursor").await {
        login(&db, "before").await;
        let r = Recorder::default();
        assert_eq!(take_once(&db, &r).await.unwrap(), 0);
        login(&db, "one").await;
        login(&db, "two").await;
        assert_eq!(take_once(&db, &r).await.unwrap(), 2);
        assert_eq!(targets(&r), ["one", "two"]);
        assert_eq!(r.taken.load(Ordering::SeqCst), 1);
        assert_eq!(take_once(&db, &r).await.unwrap(), 0);

        login(&db, "three").await;
        r.refuse.store(true, Ordering::SeqCst);
        let before = cursor(&mut db.conn().await.unwrap(), r.name())
            .await
            .unwrap();
        assert!(take_once(&db, &r).await.is_err());
        assert_eq!(
            cursor(&mut db.conn().await.unwrap(), r.name())
                .await
                .unwrap(),
            before
        );
        let again = Recorder::default();
        assert_eq!(take_once(&db, &again).await.unwrap(), 1);
        assert_eq!(targets(&again), ["three"]);
        let groups: Vec<Vec<String>> = {
            let rows = crate::store::audit::after(&db, 0, 100).await.unwrap();
            rows.iter().map(|e| e.group_names()).collect()
        };
        assert!(
            groups.iter().all(|g| g == &["web".to_owned()]),
            "{groups:?}"
        );
    }
}

/// The loop wakes on a commit: an entry written while it waits is taken
/// well before the next poll would come (the poll is 1 s; the test waits
/// with a deadline, and checks the wake by a lease that counts rounds).
#[tokio::test]
async fn the_reading_loop_takes_new_entries_and_stops() {
    for (db, _lite) in crate::store::tests::engines("notify_loop").await {
        let r = Arc::new(Recorder::default());
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(
            db.clone(),
            Arc::new(LocalLease),
            r.clone(),
            stop.clone(),
        ));
        // Until the consumer placed its cursor.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while cursor(&mut db.conn().await.unwrap(), r.name())
            .await
            .unwrap()
            .is_none()
        {
            assert!(tokio::time::Instant::now() < deadline, "never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for n in 0..5 {
            login(&db, &format!("u{n}")).await;
        }
        while targets(&r).len() < 5 {
            assert!(tokio::time::Instant::now() < deadline, "{:?}", targets(&r));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(targets(&r), ["u0", "u1", "u2", "u3", "u4"]);
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the loop stops")
            .unwrap();
    }
}

/// Mail and webhooks retry on one schedule: 1 s, doubling, 10 min at most.
#[test]
fn retries_wait_a_second_doubling_to_ten_minutes() {
    let got: Vec<u64> = (1..=12).map(|a| retry_after(a).as_secs()).collect();
    assert_eq!(got, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
    assert_eq!(retry_after(0), Duration::from_secs(1));
    assert_eq!(retry_after(i64::MAX), Duration::from_secs(600));
}
