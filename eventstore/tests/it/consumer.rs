//! Durable consumers: ack after work, redelivery, dead letters, fatal stops.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use futures::StreamExt;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wablast_eventstore::consumer::{ConsumerError, dead_letter_headers};
use wablast_eventstore::{
    Actor, AggregateKey, CommandMetadata, Commit, ConsumerSpec, Delivery, WorkError, Worker,
    run_consumer,
};

use crate::common::TestLog;

/// Appends a commit whose one event carries `n`; returns its sequence.
async fn publish(t: &TestLog, n: i64) -> u64 {
    let key = AggregateKey::new("t1", uuid::Uuid::now_v7()).unwrap();
    let mut commit = Commit::new("counter", &key, &CommandMetadata::new(Actor::System));
    commit.push(
        1,
        "Added".into(),
        "1.0".into(),
        json!({"Added": {"n": n, "total": n}}),
    );
    t.log.append(0, &commit).await.unwrap()
}

fn n_of(delivery: &Delivery) -> i64 {
    delivery.events().unwrap()[0].payload["Added"]["n"]
        .as_i64()
        .unwrap()
}

fn spec(t: &TestLog, name: &str) -> ConsumerSpec {
    let mut spec = ConsumerSpec::new(name, t.log.stream_name_of("counter").unwrap());
    spec.retry =
        wablast_eventstore::Backoff::new(Duration::from_millis(20), Duration::from_millis(100));
    spec.max_deliveries = 3;
    spec
}

/// Records every delivery; fails or panics on the numbers it is told to.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(i64, u64)>>,
    fail_first: Mutex<HashMap<i64, u64>>,
    always_panic_on: Option<i64>,
    fatal_on: Option<i64>,
    done_after: Option<usize>,
    /// Done once each of these numbers was seen, however often.
    done_when_seen: Vec<i64>,
    done: Notify,
}

impl Recorder {
    fn seen(&self) -> Vec<(i64, u64)> {
        self.seen.lock().unwrap().clone()
    }
}

impl Worker for Recorder {
    async fn handle(&self, delivery: &Delivery) -> Result<(), WorkError> {
        let n = n_of(delivery);
        let (count, all_wanted) = {
            let mut seen = self.seen.lock().unwrap();
            seen.push((n, delivery.delivered));
            let all_wanted = !self.done_when_seen.is_empty()
                && self
                    .done_when_seen
                    .iter()
                    .all(|wanted| seen.iter().any(|(n, _)| n == wanted));
            (seen.len(), all_wanted)
        };
        if all_wanted || self.done_after.is_some_and(|d| count >= d) {
            self.done.notify_one();
        }
        if self.always_panic_on == Some(n) {
            panic!("poison {n}");
        }
        if self.fatal_on == Some(n) {
            return Err(WorkError::fatal(format!("cannot handle {n}")));
        }
        if let Some(left) = self.fail_first.lock().unwrap().get_mut(&n)
            && *left > 0
        {
            *left -= 1;
            return Err(WorkError::retryable("database busy"));
        }
        Ok(())
    }
}

async fn run_until_done(t: &TestLog, spec: &ConsumerSpec, worker: &Recorder) {
    let shutdown = CancellationToken::new();
    let run = run_consumer(&t.log, spec, worker, shutdown.clone());
    let stop = async {
        tokio::time::timeout(Duration::from_secs(20), worker.done.notified())
            .await
            .expect("worker saw what it waited for");
        // Let the last answer reach the server.
        tokio::time::sleep(Duration::from_millis(100)).await;
        shutdown.cancel();
    };
    let (result, ()) = tokio::join!(run, stop);
    result.unwrap();
}

#[tokio::test]
async fn a_durable_consumer_resumes_after_what_it_acknowledged() {
    let t = TestLog::new().await;
    for n in 1..=5 {
        publish(&t, n).await;
    }
    let spec = spec(&t, "resume");
    let first = Recorder {
        done_after: Some(5),
        ..Default::default()
    };
    run_until_done(&t, &spec, &first).await;
    for n in 6..=7 {
        publish(&t, n).await;
    }

    let second = Recorder {
        done_after: Some(2),
        ..Default::default()
    };
    run_until_done(&t, &spec, &second).await;

    assert_eq!(first.seen(), (1..=5).map(|n| (n, 1)).collect::<Vec<_>>());
    assert_eq!(second.seen(), vec![(6, 1), (7, 1)]);
}

/// A worker that never finishes its first delivery, standing for a process
/// stopped mid-work.
struct Stuck {
    started: Notify,
}

impl Worker for Stuck {
    async fn handle(&self, _: &Delivery) -> Result<(), WorkError> {
        self.started.notify_one();
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_message_dropped_mid_work_is_nacked_and_delivered_again_at_once() {
    let t = TestLog::new().await;
    publish(&t, 1).await;
    let mut spec = spec(&t, "dropped");
    spec.ack_wait = Duration::from_secs(60);
    let stuck = std::sync::Arc::new(Stuck {
        started: Notify::new(),
    });
    let task = {
        let (log, spec, stuck) = (t.log.clone(), spec.clone(), stuck.clone());
        tokio::spawn(
            async move { run_consumer(&log, &spec, &*stuck, CancellationToken::new()).await },
        )
    };
    stuck.started.notified().await;

    task.abort(); // the work is dropped, unanswered
    let _ = task.await;
    let again = Recorder {
        done_after: Some(1),
        ..Default::default()
    };
    // Well inside the 60 s ack wait: only the NAK can bring it back this soon.
    tokio::time::timeout(Duration::from_secs(10), run_until_done(&t, &spec, &again))
        .await
        .expect("redelivered before the ack wait");

    // (The server may or may not count a NAKed delivery to a pull request
    // that is gone; what matters is that the message is back, at once.)
    let seen = again.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, 1);
}

#[tokio::test]
async fn a_consumer_that_died_without_answering_gets_the_message_after_the_ack_wait() {
    let t = TestLog::new().await;
    publish(&t, 1).await;
    let mut spec = spec(&t, "crashed");
    spec.ack_wait = Duration::from_secs(1);
    // The first run creates the consumer and handles nothing yet.
    let idle = Recorder::default();
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    run_consumer(&t.log, &spec, &idle, shutdown).await.unwrap();
    // A process takes the message and dies: no ack, no NAK.
    let stream = t.log.stream(&spec.stream).unwrap();
    let consumer: async_nats::jetstream::consumer::Consumer<pull::Config> =
        stream.get_consumer(&spec.name).await.unwrap();
    let mut batch = consumer.fetch().max_messages(1).messages().await.unwrap();
    let taken = batch.next().await.unwrap().unwrap();
    drop(taken);

    let again = Recorder {
        done_after: Some(1),
        ..Default::default()
    };
    run_until_done(&t, &spec, &again).await;

    assert_eq!(again.seen(), vec![(1, 2)]);
}

#[tokio::test]
async fn a_retryable_failure_is_retried_with_back_off_until_it_succeeds() {
    let t = TestLog::new().await;
    publish(&t, 1).await;
    publish(&t, 2).await;
    let worker = Recorder {
        fail_first: Mutex::new(HashMap::from([(1, 2)])),
        done_after: Some(4),
        ..Default::default()
    };

    run_until_done(&t, &spec(&t, "retry"), &worker).await;

    let seen = worker.seen();
    let ones: Vec<_> = seen.iter().filter(|(n, _)| *n == 1).collect();
    assert_eq!(ones, vec![&(1, 1), &(1, 2), &(1, 3)]);
    assert!(seen.contains(&(2, 1)));
    assert_eq!(seen.len(), 4);
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_and_the_consumer_moves_on() {
    let t = TestLog::new().await;
    publish(&t, 1).await;
    let poison_seq = publish(&t, 2).await;
    publish(&t, 3).await;
    let spec = spec(&t, "poison");
    let worker = Recorder {
        always_panic_on: Some(2),
        done_after: Some(5), // 1, 2 three times, 3
        ..Default::default()
    };

    run_until_done(&t, &spec, &worker).await;

    let seen = worker.seen();
    assert_eq!(seen.iter().filter(|(n, _)| *n == 2).count(), 3, "{seen:?}");
    assert!(seen.contains(&(1, 1)) && seen.contains(&(3, 1)), "{seen:?}");
    // The dead letter holds the message and says where it came from and why.
    let dlq = t.log.stream(t.log.dead_letter_stream_name()).unwrap();
    let letter = dlq
        .direct_get_last_for_subject(t.log.prefix().dead_letter_subject("poison"))
        .await
        .unwrap();
    let delivery = Delivery {
        subject: letter.subject.to_string(),
        stream_sequence: poison_seq,
        delivered: 0,
        headers: Some(letter.headers.clone()),
        payload: letter.payload.clone(),
    };
    assert_eq!(n_of(&delivery), 2);
    let header = |name: &str| letter.headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(
        header(dead_letter_headers::STREAM_SEQUENCE),
        Some(poison_seq.to_string())
    );
    assert_eq!(header(dead_letter_headers::DELIVERIES), Some("3".into()));
    assert_eq!(header(dead_letter_headers::CONSUMER), Some("poison".into()));
    assert!(
        header(dead_letter_headers::ERROR)
            .unwrap()
            .contains("poison 2")
    );
    // And it does not come back to the consumer.
    let after = Recorder {
        done_after: Some(1),
        ..Default::default()
    };
    publish(&t, 4).await;
    run_until_done(&t, &spec, &after).await;
    assert_eq!(after.seen(), vec![(4, 1)]);
}

#[tokio::test]
async fn a_fatal_error_stops_the_consumer_and_skips_nothing() {
    let t = TestLog::new().await;
    publish(&t, 1).await;
    let fatal_seq = publish(&t, 2).await;
    publish(&t, 3).await;
    let mut spec = spec(&t, "fatal");
    // The stopped instance's pull request stays open on the server a while:
    // a redelivery can go to it and come back only after the ack wait (late,
    // never lost). Short here, with deliveries enough to outlast it.
    spec.ack_wait = Duration::from_secs(1);
    spec.max_deliveries = 20;
    // Redeliveries come back in the order they were NAKed, not by sequence;
    // this test does not need strict order (see the next one).
    let broken = Recorder {
        fatal_on: Some(2),
        ..Default::default()
    };

    let stopped = tokio::time::timeout(
        Duration::from_secs(20),
        run_consumer(&t.log, &spec, &broken, CancellationToken::new()),
    )
    .await
    .expect("stops by itself");

    match stopped {
        Err(ConsumerError::Fatal {
            stream_sequence, ..
        }) => assert_eq!(stream_sequence, fatal_seq),
        other => panic!("expected a fatal stop, got {other:?}"),
    }
    assert_eq!(broken.seen(), vec![(1, 1), (2, 1)]);
    // Once fixed, it goes on from the message it stopped at: 2 again, then
    // 3 (at least once each), and never 1, which was acknowledged.
    let fixed = Recorder {
        done_when_seen: vec![2, 3],
        ..Default::default()
    };
    run_until_done(&t, &spec, &fixed).await;
    let seen = fixed.seen();
    assert!(seen.iter().all(|(n, _)| [2, 3].contains(n)), "{seen:?}");
    assert!(
        seen.iter().any(|&(n, delivered)| n == 2 && delivered >= 2),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_strictly_ordered_consumer_resumes_at_the_message_it_stopped_at() {
    let t = TestLog::new().await;
    for n in 1..=4 {
        publish(&t, n).await;
    }
    let mut spec = spec(&t, "ordered");
    spec.max_ack_pending = 1;
    let broken = Recorder {
        fatal_on: Some(2),
        ..Default::default()
    };
    let stopped = run_consumer(&t.log, &spec, &broken, CancellationToken::new()).await;
    assert!(matches!(stopped, Err(ConsumerError::Fatal { .. })));

    let fixed = Recorder {
        done_after: Some(3),
        ..Default::default()
    };
    run_until_done(&t, &spec, &fixed).await;

    let order: Vec<i64> = fixed.seen().iter().map(|(n, _)| *n).collect();
    assert_eq!(order, vec![2, 3, 4]);
}

/// Always fails: every message ends as a dead letter.
struct Hopeless;

impl Worker for Hopeless {
    async fn handle(&self, _: &Delivery) -> Result<(), WorkError> {
        Err(WorkError::retryable("never works"))
    }
}

#[tokio::test]
async fn every_poison_message_of_a_consumer_reaches_the_dead_letter_subject() {
    let t = TestLog::new().await;
    // Commits that are not their aggregate's first carry a non-zero expected
    // subject sequence; the dead letters must not inherit it. (The first
    // commit, elsewhere, keeps the two streams' sequences from lining up.)
    publish(&t, 0).await;
    let key = AggregateKey::new("t1", uuid::Uuid::now_v7()).unwrap();
    let mut last = 0;
    for n in 1..=3 {
        let mut commit = Commit::new("counter", &key, &CommandMetadata::new(Actor::System));
        commit.push(
            n as u64,
            "Added".into(),
            "1.0".into(),
            json!({"Added": {"n": n, "total": n}}),
        );
        last = t.log.append(last, &commit).await.unwrap();
    }
    let mut spec = spec(&t, "hopeless");
    spec.max_deliveries = 1;
    let shutdown = CancellationToken::new();
    let dlq = t
        .log
        .stream(t.log.dead_letter_stream_name())
        .unwrap()
        .clone();

    let run = run_consumer(&t.log, &spec, &Hopeless, shutdown.clone());
    let watch = async {
        let letters = wablast_tests::wait_for("four dead letters", Duration::from_secs(20), || {
            let dlq = dlq.clone();
            async move {
                let state = dlq.get_info().await.ok()?.state;
                (state.messages == 4).then_some(state.messages)
            }
        })
        .await;
        shutdown.cancel();
        letters
    };
    let (result, letters) = tokio::join!(run, watch);

    result.unwrap();
    assert_eq!(letters, 4);
}
