//! Appending, racing, deduplicating, loading and replaying.

use cqrs_es::AggregateError;
use cqrs_es::persist::{EventUpcaster, SemanticVersionEventUpcaster};
use futures::TryStreamExt;
use serde_json::json;
use wablast_eventstore::{
    Actor, AggregateKey, CommandHandler, CommandMetadata, Commit, EventStoreError, RecordedEvent,
};

use crate::common::{
    Counter, CounterCommand, CounterError, CounterEvent, PrivateNats, TestLog, open_log,
};

fn key(tenant: &str) -> AggregateKey {
    AggregateKey::new(tenant, uuid::Uuid::now_v7()).unwrap()
}

fn meta() -> CommandMetadata {
    CommandMetadata::new(Actor::System)
}

fn added(key: &AggregateKey, sequence: u64, n: i64, total: i64) -> Commit {
    let mut commit = Commit::new("counter", key, &meta());
    commit.push(
        sequence,
        "Added".into(),
        "1.0".into(),
        json!({"Added": {"n": n, "total": total}}),
    );
    commit
}

/// Checks an aggregate's log is gap-free: aggregate sequences 1..=n in
/// order, stream sequences strictly increasing.
async fn assert_gap_free(t: &TestLog, key: &AggregateKey, expected_events: u64) {
    let history = t.log.load("counter", key).await.unwrap();
    let mut previous_stream_seq = 0;
    let mut next = 1;
    for (stream_seq, commit) in &history.commits {
        assert!(
            *stream_seq > previous_stream_seq,
            "stream sequences increase"
        );
        previous_stream_seq = *stream_seq;
        for event in &commit.events {
            assert_eq!(
                event.sequence, next,
                "aggregate sequence has no gap or repeat"
            );
            next += 1;
        }
    }
    assert_eq!(next - 1, expected_events);
    assert_eq!(history.last_stream_sequence, previous_stream_seq);
}

#[tokio::test]
async fn racing_writers_on_one_aggregate_are_retried_and_lose_nothing() {
    let t = TestLog::new().await;
    let handler = CommandHandler::<Counter>::new(t.log.clone(), ()).with_attempts(100);
    let key = key("t1");

    let writers = (0..8).map(|_| {
        let handler = handler.clone();
        let key = key.clone();
        tokio::spawn(async move {
            for _ in 0..15 {
                handler
                    .execute(&key, CounterCommand::Add(1), &meta())
                    .await
                    .unwrap();
            }
        })
    });
    for writer in writers.collect::<Vec<_>>() {
        writer.await.unwrap();
    }

    let loaded = handler.load(&key).await.unwrap();
    assert_eq!(loaded.aggregate.total, 120);
    assert_eq!(loaded.aggregate.adds, 120);
    assert_gap_free(&t, &key, 120).await;
}

#[tokio::test]
async fn racing_writers_without_retry_are_told_and_only_winners_are_in_the_log() {
    let t = TestLog::new().await;
    let handler = CommandHandler::<Counter>::new(t.log.clone(), ()).with_attempts(1);
    let key = key("t1");

    let attempts = (0..16).map(|_| {
        let handler = handler.clone();
        let key = key.clone();
        tokio::spawn(async move { handler.execute(&key, CounterCommand::Add(1), &meta()).await })
    });
    let mut won = 0;
    let mut told = 0;
    for attempt in attempts.collect::<Vec<_>>() {
        match attempt.await.unwrap() {
            Ok(_) => won += 1,
            Err(AggregateError::AggregateConflict) => told += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    assert_eq!(won + told, 16);
    assert!(won >= 1);
    assert_eq!(handler.load(&key).await.unwrap().aggregate.total, won);
    assert_gap_free(&t, &key, won as u64).await;
}

#[tokio::test]
async fn a_stale_append_is_a_conflict_and_changes_nothing() {
    let t = TestLog::new().await;
    let key = key("t1");
    let first = t.log.append(0, &added(&key, 1, 1, 1)).await.unwrap();
    t.log.append(first, &added(&key, 2, 1, 2)).await.unwrap();

    // A writer that loaded before the second commit.
    let stale = t.log.append(first, &added(&key, 2, 5, 6)).await;

    assert!(
        matches!(stale, Err(EventStoreError::Conflict { .. })),
        "{stale:?}"
    );
    assert_gap_free(&t, &key, 2).await;
    // A new aggregate that already exists is a conflict too.
    let recreate = t.log.append(0, &added(&key, 1, 1, 1)).await;
    assert!(matches!(recreate, Err(EventStoreError::Conflict { .. })));
}

#[tokio::test]
async fn a_first_commit_appended_again_is_a_conflict_not_a_second_commit() {
    let t = TestLog::new().await;
    let key = key("t1");
    let commit = added(&key, 1, 1, 1);
    let written_at = t.log.append_first(&commit).await.unwrap();

    // The very same commit re-sent, as after a lost acknowledgement: no
    // deduplication entry answers it, the expected sequence 0 refuses it.
    let again = t.log.append_first(&commit).await;
    assert!(
        matches!(again, Err(EventStoreError::Conflict { .. })),
        "{again:?}"
    );
    // An ordinary append at 0 of the very same decision finds it in the
    // log (not in a deduplication window) and answers where it stands;
    // nothing is written twice.
    let recreate = t.log.append(0, &commit).await;
    assert_eq!(recreate.unwrap(), written_at);
    // A different decision at 0 is a conflict.
    let other = t.log.append(0, &added(&key, 1, 2, 2)).await;
    assert!(
        matches!(other, Err(EventStoreError::Conflict { .. })),
        "{other:?}"
    );
    assert_gap_free(&t, &key, 1).await;
    // The aggregate goes on from there as any other.
    t.log
        .append(written_at, &added(&key, 2, 1, 2))
        .await
        .unwrap();
    assert_gap_free(&t, &key, 2).await;
}

#[tokio::test]
async fn the_same_commit_published_twice_is_committed_once() {
    let t = TestLog::new().await;
    let key = key("t1");
    let commit = added(&key, 1, 3, 3);

    let first = t.log.append(0, &commit).await.unwrap();
    let again = t.log.append(0, &commit).await.unwrap();

    assert_eq!(
        first, again,
        "the retry is answered with the original position"
    );
    let history = t.log.load("counter", &key).await.unwrap();
    assert_eq!(history.commits.len(), 1);
    assert_eq!(history.commits[0].1.command_id, commit.command_id);
}

#[tokio::test]
async fn a_command_retried_with_the_same_id_on_the_same_state_is_committed_once() {
    let t = TestLog::new().await;
    let handler = CommandHandler::<Counter>::new(t.log.clone(), ());
    let key = key("t1");
    let metadata = meta();

    // Two processes run the same command (same id) on the same state: one
    // commits, the other's publish is recognised as the same decision.
    let a = handler.execute(&key, CounterCommand::Add(2), &metadata);
    let b = handler.execute(&key, CounterCommand::Add(2), &metadata);
    let (a, b) = tokio::join!(a, b);

    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.stream_sequence, b.stream_sequence);
    assert_eq!(handler.load(&key).await.unwrap().aggregate.total, 2);
    assert_gap_free(&t, &key, 1).await;
}

#[tokio::test]
async fn a_different_commit_reusing_a_command_id_is_a_conflict_not_a_success() {
    let t = TestLog::new().await;
    let key = key("t1");
    let original = added(&key, 1, 1, 1);
    let seq = t.log.append(0, &original).await.unwrap();

    // Same command id, another decision, even naming the right position.
    let mut impostor = added(&key, 2, 7, 8);
    impostor.command_id = original.command_id;
    let result = t.log.append(seq, &impostor).await;

    assert!(
        matches!(result, Err(EventStoreError::Conflict { .. })),
        "{result:?}"
    );
    assert_gap_free(&t, &key, 1).await;
}

#[tokio::test]
async fn a_refused_command_writes_nothing_and_a_command_deciding_nothing_publishes_nothing() {
    let t = TestLog::new().await;
    let handler = CommandHandler::<Counter>::new(t.log.clone(), ());
    let key = key("t1");
    let written = handler
        .execute(&key, CounterCommand::Add(1), &meta())
        .await
        .unwrap();

    let refused = handler
        .execute(&key, CounterCommand::Add(-5), &meta())
        .await;
    let nothing = handler
        .execute(&key, CounterCommand::Nothing, &meta())
        .await
        .unwrap();

    assert!(matches!(
        refused,
        Err(AggregateError::UserError(CounterError::Negative))
    ));
    assert!(nothing.events.is_empty());
    assert_eq!(nothing.stream_sequence, written.stream_sequence);
    assert_gap_free(&t, &key, 1).await;
}

#[tokio::test]
async fn a_commands_events_are_one_message_with_the_whole_envelope() {
    let t = TestLog::new().await;
    let handler = CommandHandler::<Counter>::new(t.log.clone(), ());
    let key = key("tenant-a");
    let user = uuid::Uuid::now_v7();
    let mut metadata = CommandMetadata::new(Actor::User(user));
    metadata.causation_id = Some(uuid::Uuid::now_v7());

    let committed = handler
        .execute(&key, CounterCommand::AddTwice(5), &metadata)
        .await
        .unwrap();

    assert_eq!(committed.events.len(), 2);
    let history = t.log.load("counter", &key).await.unwrap();
    assert_eq!(history.commits.len(), 1, "one message per command");
    let events: Vec<RecordedEvent> = history.into_events().collect();
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.stream_sequence, committed.stream_sequence);
        assert_eq!(event.sequence, i as u64 + 1);
        assert_eq!(event.event_type, "Added");
        assert_eq!(event.event_version, "1.0");
        assert_eq!(event.aggregate_type, "counter");
        assert_eq!(event.tenant, "tenant-a");
        assert_eq!(event.aggregate_id, key.id());
        assert_eq!(event.command_id, metadata.command_id);
        assert_eq!(event.correlation_id, metadata.correlation_id);
        assert_eq!(event.causation_id, metadata.causation_id);
        assert_eq!(event.actor, Actor::User(user));
    }
    assert_ne!(events[0].event_id, events[1].event_id);
    // The subject carries the tenant, the type and the id.
    let message = t
        .log
        .stream(t.log.stream_name_of("counter").unwrap())
        .unwrap()
        .direct_get(committed.stream_sequence)
        .await
        .unwrap();
    assert_eq!(
        message.subject.as_str(),
        format!("{}.ev.tenant-a.counter.{}", t.log.prefix(), key.id())
    );
}

#[tokio::test]
async fn a_long_history_loads_completely_and_in_order() {
    let t = TestLog::new().await;
    let handler = CommandHandler::<Counter>::new(t.log.clone(), ());
    let key = key("t1");
    let other = key.clone();
    let neighbour = AggregateKey::new("t1", uuid::Uuid::now_v7()).unwrap();
    let mut expected_last = 0;
    for i in 1..=300 {
        expected_last = t
            .log
            .append(expected_last, &added(&other, i, 1, i as i64))
            .await
            .unwrap();
        // Interleave another aggregate's commits in the same stream.
        if i % 3 == 0 {
            handler
                .execute(&neighbour, CounterCommand::Add(1), &meta())
                .await
                .unwrap();
        }
    }

    let loaded = handler.load(&key).await.unwrap();

    assert_eq!(loaded.aggregate.total, 300);
    assert_eq!(loaded.sequence, 300);
    assert_eq!(loaded.stream_sequence, expected_last);
    assert_gap_free(&t, &key, 300).await;
    assert_eq!(handler.load(&neighbour).await.unwrap().aggregate.total, 100);
}

/// Consumers on the stream of `aggregate_type` now.
async fn consumers(t: &TestLog, aggregate_type: &str) -> usize {
    let name = t.log.stream_name_of(aggregate_type).unwrap().to_owned();
    let mut stream = t.log.stream(&name).unwrap().clone();
    stream.info().await.unwrap().state.consumer_count
}

#[tokio::test]
async fn a_short_history_is_read_back_by_its_links_and_an_unlinked_one_through_a_consumer() {
    use wablast_eventstore::command::SnapshotPolicy;
    let t = TestLog::new().await;
    // No snapshots anywhere: every load reads the history.
    let bare = SnapshotPolicy {
        version: 1,
        every: 0,
        cache_capacity: 0,
    };
    let handler = CommandHandler::<Counter>::new(t.log.clone(), ()).with_snapshots(bare);
    let linked = key("t1");
    let neighbour = key("t1");
    for i in 1..=5 {
        handler
            .execute(&linked, CounterCommand::Add(i), &meta())
            .await
            .unwrap();
        handler
            .execute(&neighbour, CounterCommand::Add(1), &meta())
            .await
            .unwrap();
    }
    let loaded = handler.load(&linked).await.unwrap();
    assert_eq!((loaded.aggregate.total, loaded.sequence), (15, 5));
    assert_gap_free(&t, &linked, 5).await;
    assert_eq!(
        consumers(&t, "counter").await,
        0,
        "read with direct gets, no consumer"
    );

    // Commits written without links (as before they had them): the same
    // state, read through a consumer.
    let unlinked = key("t1");
    let subject = t.log.prefix().aggregate_subject("counter", &unlinked);
    let mut last = 0;
    for i in 1..=3u64 {
        let payload = serde_json::to_vec(&added(&unlinked, i, 2, 2 * i as i64)).unwrap();
        let ack = t
            .log
            .jetstream()
            .send_publish(
                subject.clone(),
                async_nats::jetstream::message::PublishMessage::build()
                    .payload(payload.into())
                    .expected_last_subject_sequence(last),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        last = ack.sequence;
    }
    let loaded = handler.load(&unlinked).await.unwrap();
    assert_eq!((loaded.aggregate.total, loaded.sequence), (6, 3));
    assert_eq!(loaded.stream_sequence, last);
}

#[tokio::test]
async fn replay_from_zero_returns_every_event_of_every_aggregate_in_log_order() {
    let t = TestLog::new().await;
    let handler = CommandHandler::<Counter>::new(t.log.clone(), ());
    let keys: Vec<AggregateKey> = ["t1", "t2", "t3"]
        .iter()
        .flat_map(|tenant| (0..4).map(move |_| key(tenant)))
        .collect();
    let mut written = Vec::new();
    for round in 0..3 {
        for (i, key) in keys.iter().enumerate() {
            let command = if (i + round) % 2 == 0 {
                CounterCommand::AddTwice(1)
            } else {
                CounterCommand::Add(1)
            };
            let committed = handler.execute(key, command, &meta()).await.unwrap();
            for event in committed.events {
                written.push((
                    committed.stream_sequence,
                    event.metadata["event_id"].clone(),
                ));
            }
        }
    }
    let stream = t.log.stream_name_of("counter").unwrap().to_owned();

    let replayed: Vec<RecordedEvent> = t
        .log
        .replay(&stream, None, 0)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();

    let replayed_ids: Vec<_> = replayed
        .iter()
        .map(|e| (e.stream_sequence, e.event_id.to_string()))
        .collect();
    assert_eq!(replayed_ids, written);
    // From the middle: exactly the suffix.
    let middle = written[written.len() / 2].0;
    let suffix: Vec<RecordedEvent> = t
        .log
        .replay(&stream, None, middle)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(suffix.iter().all(|e| e.stream_sequence >= middle));
    assert_eq!(
        suffix.len(),
        written.iter().filter(|(s, _)| *s >= middle).count()
    );
    // One tenant only.
    let tenant: Vec<RecordedEvent> = t
        .log
        .replay(
            &stream,
            Some(t.log.prefix().tenant_aggregate_subjects("t2", "counter")),
            0,
        )
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(!tenant.is_empty());
    assert!(tenant.iter().all(|e| e.tenant == "t2"));
    assert_eq!(
        tenant.len(),
        replayed.iter().filter(|e| e.tenant == "t2").count()
    );
}

#[tokio::test]
async fn replay_of_an_empty_log_ends_at_once() {
    let t = TestLog::new().await;
    let stream = t.log.stream_name_of("counter").unwrap().to_owned();

    let replayed: Vec<RecordedEvent> = t
        .log
        .replay(&stream, None, 0)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();

    assert!(replayed.is_empty());
}

#[tokio::test]
async fn loading_after_a_nats_server_restart_returns_the_same_state() {
    let store = tempfile::tempdir().unwrap();
    let server = PrivateNats::start(store.path(), None);
    let url = server.url();
    let key = key("t1");
    let before = {
        let t = TestLog::with_prefix(&url, "restart").await;
        let handler = CommandHandler::<Counter>::new(t.log.clone(), ());
        for n in 1..=20 {
            handler
                .execute(&key, CounterCommand::Add(n), &meta())
                .await
                .unwrap();
        }
        let history = t.log.load("counter", &key).await.unwrap();
        let state = handler.load(&key).await.unwrap();
        std::mem::forget(t); // keep the streams: the server goes down next
        (
            history.into_events().collect::<Vec<_>>(),
            state.aggregate,
            state.stream_sequence,
        )
    };

    let port = server.stop();
    let server = PrivateNats::start(store.path(), Some(port));
    let client = async_nats::connect(server.url()).await.unwrap();
    let log = open_log(client, "restart").await;
    let handler = CommandHandler::<Counter>::new(log.clone(), ());
    let after = log.load("counter", &key).await.unwrap();
    let state = handler.load(&key).await.unwrap();

    assert_eq!(after.into_events().collect::<Vec<_>>(), before.0);
    assert_eq!(state.aggregate, before.1);
    assert_eq!(state.aggregate.total, 210);
    assert_eq!(state.stream_sequence, before.2);
    // And it goes on from there.
    handler
        .execute(&key, CounterCommand::Add(1), &meta())
        .await
        .unwrap();
    assert_eq!(handler.load(&key).await.unwrap().aggregate.total, 211);
}

#[tokio::test]
async fn events_written_in_an_old_version_are_upcast_when_loaded() {
    let t = TestLog::new().await;
    let key = key("t1");
    // Version 0.9 called the field `amount` and kept no total.
    let mut old = Commit::new("counter", &key, &meta());
    old.push(
        1,
        "Added".into(),
        "0.9".into(),
        json!({"Added": {"amount": 4}}),
    );
    t.log.append(0, &old).await.unwrap();
    fn upcast(payload: serde_json::Value) -> serde_json::Value {
        let amount = payload["Added"]["amount"].clone();
        json!({"Added": {"n": amount, "total": amount}})
    }
    let upcasters: Vec<Box<dyn EventUpcaster>> = vec![Box::new(SemanticVersionEventUpcaster::new(
        "Added",
        "1.0",
        Box::new(upcast),
    ))];
    let handler = CommandHandler::<Counter>::new(t.log.clone(), ()).with_upcasters(upcasters);

    handler
        .execute(&key, CounterCommand::Add(1), &meta())
        .await
        .unwrap();

    assert_eq!(handler.load(&key).await.unwrap().aggregate.total, 5);
    // Without the upcaster the old event cannot be read: loudly, not skipped.
    let plain = CommandHandler::<Counter>::new(t.log.clone(), ());
    assert!(matches!(
        plain.load(&key).await,
        Err(AggregateError::DeserializationError(_))
    ));
}

#[tokio::test]
async fn an_aggregate_type_without_a_stream_is_refused() {
    let t = TestLog::new().await;
    let mut commit = added(&key("t1"), 1, 1, 1);
    commit.aggregate_type = "campaign".into();

    let result = t.log.append(0, &commit).await;

    assert!(matches!(
        result,
        Err(EventStoreError::UnknownAggregateType(_))
    ));
}

#[tokio::test]
async fn opening_the_log_again_is_idempotent_and_its_streams_are_protected() {
    let t = TestLog::new().await;
    let key = key("t1");
    let seq = t.log.append(0, &added(&key, 1, 1, 1)).await.unwrap();

    let again = open_log(t.client.clone(), t.log.prefix().as_str()).await;

    let events = again
        .stream(again.stream_name_of("counter").unwrap())
        .unwrap();
    let info = events.get_info().await.unwrap();
    assert_eq!(info.state.messages, 1, "reopening keeps what was written");
    assert!(info.config.allow_direct && info.config.deny_delete && info.config.deny_purge);
    assert_eq!(
        info.config.storage,
        async_nats::jetstream::stream::StorageType::File
    );
    assert_eq!(
        info.config.subjects,
        vec![format!("{}.ev.*.counter.*", t.log.prefix())]
    );
    assert_eq!(
        info.config.max_age,
        std::time::Duration::ZERO,
        "kept forever"
    );
    let messages = again
        .stream(again.stream_name_of("message").unwrap())
        .unwrap();
    let retention = messages.get_info().await.unwrap().config.max_age;
    assert_eq!(retention, std::time::Duration::from_secs(3600));
    // Nothing can be deleted from the log by hand.
    assert!(events.delete_message(seq).await.is_err());
    assert!(events.purge().await.is_err());
    assert_eq!(events.get_info().await.unwrap().state.messages, 1);
}

#[tokio::test]
async fn an_aggregate_type_in_two_streams_is_refused_at_open() {
    let client = async_nats::connect(crate::common::nats_url())
        .await
        .unwrap();
    let prefix = crate::common::unique_prefix();

    let result = wablast_eventstore::EventLog::open(
        client,
        wablast_eventstore::EventLogConfig::new(
            wablast_eventstore::Prefix::parse(&prefix).unwrap(),
            vec![
                wablast_eventstore::StreamSpec::kept_forever("a", &["counter"]),
                wablast_eventstore::StreamSpec::kept_forever("b", &["counter"]),
            ],
        ),
    )
    .await;

    assert!(result.is_err());
    wablast_tests::delete_streams(&crate::common::nats_url(), &prefix);
}

mod snapshots {
    use std::time::Duration;

    use serde_json::json;
    use wablast_eventstore::command::SnapshotPolicy;
    use wablast_eventstore::{AggregateKey, CommandHandler};

    use super::{added, key, meta};
    use crate::common::{Counter, CounterCommand, TestLog};

    fn policy(version: u32) -> SnapshotPolicy {
        SnapshotPolicy {
            version,
            every: 10,
            cache_capacity: 100,
        }
    }

    async fn wait_for_snapshot(t: &TestLog, key: &AggregateKey) -> serde_json::Value {
        wablast_tests::wait_for("a KV snapshot", Duration::from_secs(10), || async {
            let bytes = t.log.snapshot("counter", key).await.unwrap()?;
            serde_json::from_slice(&bytes).ok()
        })
        .await
    }

    #[tokio::test]
    async fn another_process_starts_from_the_kv_snapshot_and_folds_only_what_came_after() {
        let t = TestLog::new().await;
        let writer = CommandHandler::<Counter>::new(t.log.clone(), ()).with_snapshots(policy(1));
        let key = key("t1");
        for _ in 0..25 {
            writer
                .execute(&key, CounterCommand::Add(1), &meta())
                .await
                .unwrap();
        }
        let snapshot = wait_for_snapshot(&t, &key).await;
        assert_eq!(
            snapshot["sequence"], 20,
            "written when the sequence crossed 20"
        );

        // A fresh handler (another process): no memory of its own.
        let reader = CommandHandler::<Counter>::new(t.log.clone(), ()).with_snapshots(policy(1));
        let loaded = reader.load(&key).await.unwrap();

        assert_eq!(loaded.aggregate.total, 25);
        assert_eq!(loaded.aggregate.adds, 25);
        assert_eq!(loaded.sequence, 25);
    }

    #[tokio::test]
    async fn a_handler_sees_commits_written_by_others_after_its_cached_state() {
        let t = TestLog::new().await;
        let mine = CommandHandler::<Counter>::new(t.log.clone(), ()).with_snapshots(policy(1));
        let theirs = CommandHandler::<Counter>::new(t.log.clone(), ()).with_snapshots(policy(1));
        let key = key("t1");
        mine.execute(&key, CounterCommand::Add(1), &meta())
            .await
            .unwrap();
        assert_eq!(mine.load(&key).await.unwrap().aggregate.total, 1);

        for _ in 0..3 {
            theirs
                .execute(&key, CounterCommand::Add(10), &meta())
                .await
                .unwrap();
        }
        let after_many = mine.load(&key).await.unwrap();
        theirs
            .execute(&key, CounterCommand::Add(100), &meta())
            .await
            .unwrap();
        let after_one = mine.load(&key).await.unwrap();
        let committed = mine
            .execute(&key, CounterCommand::Add(1000), &meta())
            .await
            .unwrap();

        assert_eq!(after_many.aggregate.total, 31);
        assert_eq!(after_one.aggregate.total, 131);
        assert_eq!(committed.events.len(), 1);
        assert_eq!(mine.load(&key).await.unwrap().aggregate.total, 1131);
        assert_eq!(theirs.load(&key).await.unwrap().aggregate.total, 1131);
    }

    #[tokio::test]
    async fn snapshots_of_another_version_or_out_of_line_are_ignored() {
        let t = TestLog::new().await;
        let key = key("t1");
        let mut last = 0;
        for i in 1..=5u64 {
            last = t
                .log
                .append(last, &added(&key, i, 1, i as i64))
                .await
                .unwrap();
        }
        // A snapshot from an older state shape, claiming a wrong total.
        let old = json!({"version": 1, "sequence": 5, "stream_sequence": last,
                         "state": {"total": 999, "adds": 5}});
        t.log
            .save_snapshot("counter", &key, serde_json::to_vec(&old).unwrap().into())
            .await
            .unwrap();
        let v2 = CommandHandler::<Counter>::new(t.log.clone(), ()).with_snapshots(policy(2));
        assert_eq!(v2.load(&key).await.unwrap().aggregate.total, 5);

        // A snapshot whose sequence does not line up with the log.
        let skewed = json!({"version": 2, "sequence": 2, "stream_sequence": 1,
                            "state": {"total": 999, "adds": 2}});
        t.log
            .save_snapshot("counter", &key, serde_json::to_vec(&skewed).unwrap().into())
            .await
            .unwrap();
        let fresh = CommandHandler::<Counter>::new(t.log.clone(), ()).with_snapshots(policy(2));
        assert_eq!(fresh.load(&key).await.unwrap().aggregate.total, 5);
    }
}

#[tokio::test]
async fn an_aggregate_can_be_found_by_id_without_knowing_its_tenant() {
    let t = TestLog::new().await;
    let id = uuid::Uuid::now_v7();
    let mine = AggregateKey::new("tenant-a", id).unwrap();
    t.log.append(0, &added(&mine, 1, 1, 1)).await.unwrap();
    t.log
        .append(0, &added(&key("tenant-b"), 1, 1, 1))
        .await
        .unwrap();

    let found = t
        .log
        .find_aggregate("counter", &id.to_string())
        .await
        .unwrap();
    let missing = t
        .log
        .find_aggregate("counter", &uuid::Uuid::now_v7().to_string())
        .await
        .unwrap();

    assert_eq!(found, vec![mine]);
    assert!(missing.is_empty());
    assert!(t.log.find_aggregate("counter", "a.b").await.is_err());
}

#[tokio::test]
async fn an_aggregate_read_where_it_was_created_decides_again_once_it_turns_out_stale() {
    let t = TestLog::new().await;
    let handler = CommandHandler::<Counter>::new(t.log.clone(), ());
    let key = key("t1");
    let created = handler
        .create(&key, CounterCommand::Add(5), &meta())
        .await
        .unwrap()
        .expect("created");

    let at_creation = handler.load_created_at(&key, created).await.unwrap();
    assert_eq!((at_creation.aggregate.total, at_creation.sequence), (5, 1));
    assert_eq!(at_creation.stream_sequence, created);

    // It moved on: the state read where it was created is stale, and the
    // command decided on it is decided again on what the log holds.
    handler
        .execute(&key, CounterCommand::Add(10), &meta())
        .await
        .unwrap();
    let mut known = Some(handler.load_created_at(&key, created).await.unwrap());
    handler
        .execute_on(&key, &mut known, CounterCommand::Add(1), &meta())
        .await
        .unwrap();
    assert_eq!(handler.load(&key).await.unwrap().aggregate.total, 16);
    assert_gap_free(&t, &key, 3).await;

    // A sequence that is not the aggregate's first commit: loaded as usual.
    let elsewhere = handler.load_created_at(&key, created + 1).await.unwrap();
    assert_eq!(elsewhere.aggregate.total, 16);
}

#[tokio::test]
async fn a_writer_keeping_its_state_commits_on_it_and_catches_up_with_other_writers() {
    let t = TestLog::new().await;
    let handler = CommandHandler::<Counter>::new(t.log.clone(), ());
    let other = CommandHandler::<Counter>::new(t.log.clone(), ());
    let key = key("t1");

    // The kept state moves on with each command, without loading.
    let mut known = None;
    for _ in 0..3 {
        handler
            .execute_on(&key, &mut known, CounterCommand::Add(2), &meta())
            .await
            .unwrap();
    }
    let kept = known.as_ref().expect("state kept");
    assert_eq!((kept.aggregate.total, kept.sequence), (6, 3));
    assert_eq!(
        kept.stream_sequence,
        handler.load(&key).await.unwrap().stream_sequence
    );

    // Another writer got in between: the command is decided again on what
    // the log holds, nothing lost.
    other
        .execute(&key, CounterCommand::Add(10), &meta())
        .await
        .unwrap();
    handler
        .execute_on(&key, &mut known, CounterCommand::Add(1), &meta())
        .await
        .unwrap();
    assert_eq!(known.as_ref().unwrap().aggregate.total, 17);
    assert_eq!(known.as_ref().unwrap().aggregate.adds, 5);

    // A refusal writes nothing and leaves nothing kept: the next command
    // loads.
    let refused = handler
        .execute_on(&key, &mut known, CounterCommand::Add(-100), &meta())
        .await;
    assert!(matches!(
        refused,
        Err(AggregateError::UserError(CounterError::Negative))
    ));
    assert!(known.is_none());
    handler
        .execute_on(&key, &mut known, CounterCommand::Add(1), &meta())
        .await
        .unwrap();
    assert_eq!(known.unwrap().aggregate.total, 18);
    assert_gap_free(&t, &key, 6).await;
}

#[tokio::test]
async fn several_commands_are_decided_in_turn_and_committed_as_one_up_to_the_first_refused() {
    let t = TestLog::new().await;
    let handler = CommandHandler::<Counter>::new(t.log.clone(), ());
    let other = CommandHandler::<Counter>::new(t.log.clone(), ());
    let key = key("t1");
    let mut known = None;

    // Each decided on what the ones before it left; one commit for all.
    let decided = handler
        .execute_each_on(
            &key,
            &mut known,
            vec![
                CounterCommand::Add(3),
                CounterCommand::Add(-2),
                CounterCommand::Add(-1),
                CounterCommand::Add(-1),
                CounterCommand::Add(5),
            ],
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(decided.accepted, 3);
    assert_eq!(decided.refusal, Some(CounterError::Negative));
    assert_eq!(decided.committed.events.len(), 3);
    let kept = known.as_ref().expect("state kept");
    assert_eq!((kept.aggregate.total, kept.sequence), (0, 3));
    assert_eq!(kept.stream_sequence, decided.committed.stream_sequence);
    let history = t.log.load("counter", &key).await.unwrap();
    assert_eq!(history.commits.len(), 1, "one commit");
    assert_eq!(history.commits[0].0, decided.committed.stream_sequence);
    assert_eq!(history.commits[0].1.events.len(), 3);

    // Another writer got in between: all are decided again on the log.
    other
        .execute(&key, CounterCommand::Add(1), &meta())
        .await
        .unwrap();
    let decided = handler
        .execute_each_on(
            &key,
            &mut known,
            vec![CounterCommand::Add(1), CounterCommand::Add(2)],
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!((decided.accepted, decided.refusal), (2, None));
    assert_eq!(known.as_ref().unwrap().aggregate.total, 4);

    // The first refused: an error, as from `execute_on`, nothing written.
    let refused = handler
        .execute_each_on(
            &key,
            &mut known,
            vec![CounterCommand::Add(-5), CounterCommand::Add(1)],
            &meta(),
        )
        .await;
    assert!(matches!(
        refused,
        Err(AggregateError::UserError(CounterError::Negative))
    ));
    assert!(known.is_none());

    // Refused after deciding an event of its own (5, then 5 - 3 - 3 < 0
    // on the second of two adds): nothing of the batch is committed.
    let broken = handler
        .execute_each_on(
            &key,
            &mut known,
            vec![CounterCommand::Add(1), CounterCommand::AddTwice(-3)],
            &meta(),
        )
        .await;
    assert!(matches!(broken, Err(AggregateError::UnexpectedError(_))));
    assert!(known.is_none());
    assert_eq!(handler.load(&key).await.unwrap().aggregate.total, 4);
    assert_gap_free(&t, &key, 6).await;
}

#[tokio::test]
async fn reload_keeps_a_current_state_and_loads_a_changed_one() {
    let t = TestLog::new().await;
    let handler = CommandHandler::<Counter>::new(t.log.clone(), ());
    let key = key("t1");
    handler
        .execute(&key, CounterCommand::Add(1), &meta())
        .await
        .unwrap();
    let first = handler.reload(&key, None).await.unwrap();
    let same = handler.reload(&key, Some(first)).await.unwrap();
    assert_eq!(same.aggregate.total, 1);

    handler
        .execute(&key, CounterCommand::Add(4), &meta())
        .await
        .unwrap();
    let changed = handler.reload(&key, Some(same)).await.unwrap();
    assert_eq!((changed.aggregate.total, changed.sequence), (5, 2));
}

#[tokio::test]
async fn create_commits_a_new_aggregate_once_and_leaves_an_existing_one_alone() {
    let t = TestLog::new().await;
    let handler = CommandHandler::<Counter>::new(t.log.clone(), ());
    let key = key("t1");
    let created = handler
        .create(&key, CounterCommand::Add(3), &meta())
        .await
        .unwrap();
    let written_at = created.expect("created");
    let commit = t
        .log
        .commit_at(<Counter as cqrs_es::Aggregate>::TYPE, &key, written_at)
        .await
        .unwrap()
        .expect("the commit is where create said");
    assert_eq!(commit.events.len(), 1);
    // Again, as a resumed bulk creation would: nothing written.
    let again = handler
        .create(&key, CounterCommand::Add(7), &meta())
        .await
        .unwrap();
    assert!(again.is_none());
    assert_eq!(handler.load(&key).await.unwrap().aggregate.total, 3);
    assert_gap_free(&t, &key, 1).await;
}

#[tokio::test]
async fn the_last_event_is_read_from_the_last_commit_alone() {
    let t = TestLog::new().await;
    let handler = CommandHandler::<Counter>::new(t.log.clone(), ());
    let key = key("t1");
    assert_eq!(handler.last_event(&key).await.unwrap(), None);
    for n in [2, 3, 4] {
        handler
            .execute(&key, CounterCommand::Add(n), &meta())
            .await
            .unwrap();
    }
    assert_eq!(
        handler.last_event(&key).await.unwrap(),
        Some(CounterEvent::Added { n: 4, total: 9 })
    );
}
