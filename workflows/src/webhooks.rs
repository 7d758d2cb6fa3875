//! Webhook delivery: the events the tenants subscribed to, POSTed to their
//! receivers, signed, in order, retried, and given up only for a reason.
//!
//! The outbox projection (`webhook_outbox`, migration 0029) queues each
//! event a live subscription wants, exactly once and in log order, and
//! wakes the [`Deliverer`] with a `NOTIFY`. The deliverer:
//!
//! - runs in one process at a time (a PostgreSQL advisory lock, checked
//!   every second; the others stand by), so that one subscription's
//!   deliveries go one after another (a test ping is apart from them);
//! - gives every subscription with pending deliveries a worker of its
//!   own, which POSTs them one after another in order: a slow or dead
//!   receiver holds up only its own subscription;
//! - signs each body as Stripe does: `X-Wablast-Signature:
//!   t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">` under the
//!   subscription's secret ([`signature`]);
//! - on a failure keeps the delivery at the head of its subscription and
//!   tries it again with exponential back-off and jitter, for up to
//!   [`WebhookOptions::give_up_after`] (24 h); a 4xx other than 408, 409,
//!   425 and 429 is not worth repeating and is given up at once. A given
//!   up delivery is a dead letter (`failed`), listed by the API and sent
//!   again by a replay;
//! - turns off a subscription whose receiver has failed for
//!   [`WebhookOptions::disable_after`] (3 days), with an event saying why
//!   (`WebhookDisabled`, [`wablast_domain::webhook`]);
//! - every attempt has its timeouts (connect 5 s, whole request 10 s), and
//!   redirects are not followed.
//!
//! Receivers must be `https` on a public address: `http`, loopback and
//! private addresses (also when a name resolves to one) are refused
//! unless the operator allows them (`WABLAST_WEBHOOK_ALLOW_PRIVATE`), so
//! that a tenant cannot make wablast probe its own network.
//!
//! What survives a restart: everything. Deliveries and their attempts are
//! rows; a delivery made but not yet recorded when the process died is
//! made again (receivers deduplicate on the body's `id`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use hmac::Mac;
use rand::{Rng, SeedableRng};
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use uuid::Uuid;
use wablast_domain::types::TenantId;
use wablast_domain::webhook::{DisableReason, WebhookCommand};
use wablast_eventstore::{Actor, Backoff, CommandMetadata};
use wablast_projections::queries::webhooks::{self as queries, FailedAttempt, Pending, Target};

use crate::commands::{Commands, key};
use crate::credentials::SecretKey;

/// How webhooks are delivered.
#[derive(Clone, Debug)]
pub struct WebhookOptions {
    /// Whether receivers may be `http`, loopback or private addresses.
    pub allow_private: bool,
    /// How long connecting to a receiver may take.
    pub connect_timeout: Duration,
    /// How long a whole attempt may take.
    pub timeout: Duration,
    /// Pauses between attempts at one delivery (each drawn at random
    /// between half of it and all of it).
    pub retry: Backoff,
    /// How long after its first failure a delivery is given up.
    pub give_up_after: TimeDelta,
    /// How long a receiver may fail before its subscription is turned off.
    pub disable_after: TimeDelta,
    /// How often the deliverer looks for work without being woken.
    pub poll: Duration,
    /// How long delivered deliveries are kept.
    pub keep_delivered: TimeDelta,
    /// How long dead letters are kept.
    pub keep_failed: TimeDelta,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        Self {
            allow_private: false,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            retry: Backoff::new(Duration::from_secs(5), Duration::from_secs(60 * 60)),
            give_up_after: TimeDelta::hours(24),
            disable_after: TimeDelta::days(3),
            poll: Duration::from_secs(1),
            keep_delivered: TimeDelta::days(7),
            keep_failed: TimeDelta::days(30),
        }
    }
}

/// The most bytes of a receiver's answer kept with a failed attempt.
const EXCERPT_BYTES: usize = 512;

/// Pending deliveries a worker reads at once.
const HEAD: i64 = 100;

/// The advisory lock of the one delivering process.
const LOCK: &str = "wablast webhook deliverer";

/// The `X-Wablast-Signature` header of `body` sent at `t` (unix seconds):
/// `t=<t>,v1=<hex HMAC-SHA256 of "<t>.<body>" under secret>`.
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes any key");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Why a receiver's URL is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReceiverError {
    /// Not an absolute `http(s)` URL with a host.
    #[error("url is not an http(s) URL with a host")]
    NotAUrl,
    /// `http` where only `https` is allowed.
    #[error(
        "url must be https:// (http:// is allowed only where the operator allows private receivers)"
    )]
    NotHttps,
    /// A loopback, private, link-local or otherwise non-public address.
    #[error("url points at a loopback or private address ({0}), which receivers may not use here")]
    Private(String),
}

/// Checks a receiver's URL as far as can be done without resolving it:
/// its scheme, and its host when it is an address (or `localhost`).
pub fn check_receiver(url: &str, allow_private: bool) -> Result<url::Url, ReceiverError> {
    let parsed = url::Url::parse(url).map_err(|_| ReceiverError::NotAUrl)?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ReceiverError::NotAUrl);
    }
    let host = parsed.host().ok_or(ReceiverError::NotAUrl)?;
    if allow_private {
        return Ok(parsed);
    }
    if parsed.scheme() != "https" {
        return Err(ReceiverError::NotHttps);
    }
    let address = match host {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost" || name.ends_with(".localhost") {
                return Err(ReceiverError::Private(name));
            }
            None
        }
    };
    match address {
        Some(ip) if !is_public(ip) => Err(ReceiverError::Private(ip.to_string())),
        _ => Ok(parsed),
    }
}

/// Whether an address is on the public internet: not loopback, private
/// (RFC 1918, unique local), link-local, shared (CGNAT), unspecified,
/// broadcast, multicast or documentation.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let v4 = |high: u16, low: u16| {
                let [a, b] = high.to_be_bytes();
                let [c, d] = low.to_be_bytes();
                std::net::Ipv4Addr::new(a, b, c, d)
            };
            // IPv4 inside IPv6: mapped (`::ffff:a.b.c.d`), compatible
            // (`::a.b.c.d`), NAT64 (`64:ff9b::/96`), 6to4 (`2002::/16`).
            let embedded = if segments[..6] == [0, 0, 0, 0, 0, 0xffff]
                || segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
                || (segments[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified())
            {
                Some(v4(segments[6], segments[7]))
            } else if segments[0] == 0x2002 {
                Some(v4(segments[1], segments[2]))
            } else {
                None
            };
            if let Some(v4) = embedded {
                return is_public(IpAddr::V4(v4));
            }
            let first = segments[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                || first == 0x2001 && segments[1] == 0x0db8)
        }
    }
}

/// Resolves receivers' names to their public addresses only.
struct PublicResolver;

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| is_public(a.ip()))
                .collect();
            if public.is_empty() {
                // Which private address, it does not say: that would map
                // the internal network for whoever reads the error.
                let err: Box<dyn std::error::Error + Send + Sync> = if found.is_empty() {
                    format!("{host} resolves to no address").into()
                } else {
                    format!("{host} resolves only to addresses receivers may not use").into()
                };
                return Err(err);
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// What a receiver made of one POST.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// It answered 2xx.
    Delivered {
        /// Its status.
        status: u16,
    },
    /// It did not take it.
    Failed {
        /// Its status, if it answered.
        status: Option<u16>,
        /// The start of its answer, or why there was none.
        error: String,
        /// Whether trying again may help (no answer, 408, 409, 425, 429,
        /// 3xx, 5xx).
        retry: bool,
    },
}

impl Answer {
    /// The answer to a status and its body's start.
    fn of_status(status: u16, excerpt: String) -> Self {
        if (200..300).contains(&status) {
            return Self::Delivered { status };
        }
        let retry = matches!(status, 408 | 409 | 425 | 429) || !(400..500).contains(&status);
        Self::Failed {
            status: Some(status),
            error: excerpt,
            retry,
        }
    }
}

/// POSTs signed bodies to receivers.
#[derive(Clone)]
pub struct Sender {
    http: reqwest::Client,
    allow_private: bool,
    key: SecretKey,
}

impl Sender {
    /// A sender with these timeouts and address rules, opening
    /// subscriptions' secrets with `key` (`WABLAST_SECRET_KEY`).
    pub fn new(options: &WebhookOptions, key: SecretKey) -> Self {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("wablast-webhooks/", env!("CARGO_PKG_VERSION")));
        if !options.allow_private {
            builder = builder.dns_resolver(Arc::new(PublicResolver));
        }
        Self {
            http: builder.build().expect("the HTTP client builds"),
            allow_private: options.allow_private,
            key,
        }
    }

    /// The subscription's secret in clear; `None` when it does not open
    /// (another `WABLAST_SECRET_KEY`).
    pub fn secret(&self, target: &Target) -> Option<String> {
        let sealed = [target.secret_nonce.as_slice(), &target.secret_ciphertext].concat();
        let plain = self.key.open(target.id.as_bytes(), &sealed)?;
        String::from_utf8(plain).ok()
    }

    /// POSTs `body` (the event `id` of type `event_type`) to `url`, signed
    /// with `secret`.
    pub async fn post(
        &self,
        url: &str,
        secret: &str,
        id: &str,
        event_type: &str,
        body: String,
    ) -> Answer {
        if let Err(err) = check_receiver(url, self.allow_private) {
            return Answer::Failed {
                status: None,
                error: err.to_string(),
                retry: false,
            };
        }
        let signed = signature(secret, Utc::now().timestamp(), &body);
        let sent = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Wablast-Signature", signed)
            .header("X-Wablast-Event-Id", id)
            .header("X-Wablast-Event-Type", event_type)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                if (200..300).contains(&status) {
                    return Answer::Delivered { status };
                }
                Answer::of_status(status, answer_start(response).await)
            }
            Err(err) => Answer::Failed {
                status: None,
                error: describe(&err),
                retry: true,
            },
        }
    }
}

/// The start of a receiver's answer: read no further than
/// [`EXCERPT_BYTES`] (a receiver may answer gigabytes).
async fn answer_start(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::with_capacity(EXCERPT_BYTES);
    while bytes.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    excerpt(&String::from_utf8_lossy(&bytes))
}

/// At most [`EXCERPT_BYTES`] of a text, cut at a character boundary, NUL
/// characters replaced (PostgreSQL stores no NUL in text).
fn excerpt(text: &str) -> String {
    let mut end = text.len().min(EXCERPT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].replace('\0', "\u{fffd}")
}

/// Why a request got no answer, in words.
fn describe(err: &reqwest::Error) -> String {
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    excerpt(&format!("{what}: {}", causes.join(": ")))
}

/// Why a worker stopped.
enum Ended {
    /// Nothing was pending: it left the running set itself.
    OutOfWork,
    /// The subscription was deleted or disabled.
    Gone,
    /// The deliverer stops (shutdown, or another process leads).
    Stopped,
}

/// What a worker does after a failed attempt.
enum Next {
    /// Waits to try the same delivery again.
    Retry,
    /// Goes on with the following delivery (this one was given up).
    Following,
    /// Stops: the subscription was turned off.
    Disabled,
}

/// A subscription's worker, as the deliverer reaches it.
#[derive(Default)]
struct Slot {
    /// New work came while it was busy: it looks again before leaving.
    poked: bool,
    /// Ends its wait for a retry at once (its subscription changed).
    nudge: Arc<tokio::sync::Notify>,
}

/// Subscriptions with a worker.
type Running = Arc<Mutex<HashMap<Uuid, Slot>>>;

/// Delivers every pending webhook delivery (see the module docs).
#[derive(Clone)]
pub struct Deliverer {
    db: PgPool,
    commands: Commands,
    actor: Actor,
    sender: Sender,
    options: WebhookOptions,
    running: Running,
}

impl Deliverer {
    /// A deliverer on this database, recording what it does to
    /// subscriptions through `commands` as `actor`.
    pub fn new(
        db: PgPool,
        commands: Commands,
        actor: Actor,
        options: WebhookOptions,
        key: SecretKey,
    ) -> Self {
        Self {
            sender: Sender::new(&options, key),
            db,
            commands,
            actor,
            options,
            running: Arc::default(),
        }
    }

    /// Delivers until `shutdown`, as the one delivering process or as a
    /// standby.
    pub async fn run(self, shutdown: CancellationToken) {
        let pause = self.options.poll.max(Duration::from_secs(2));
        crate::leadership::keep_leading("webhook deliverer", pause, &shutdown, || {
            self.lead(&shutdown)
        })
        .await;
    }

    /// Takes the lead and delivers while it holds it; `Ok` when another
    /// process has it.
    async fn lead(&self, shutdown: &CancellationToken) -> Result<(), sqlx::Error> {
        let Some(mut leadership) = crate::leadership::try_lead(&self.db, LOCK).await? else {
            debug!("another process delivers webhooks; standing by");
            return Ok(());
        };
        info!("delivering webhooks");
        let mut listener = PgListener::connect_with(&self.db).await?;
        listener.listen(queries::CHANNEL).await?;
        let stop = shutdown.child_token();
        let _stop_workers = stop.clone().drop_guard();
        let mut pruned = Instant::now() - Duration::from_secs(3600);
        // Ticks whatever the notifications: the lock is checked on time
        // even under a steady stream of them.
        let mut tick = tokio::time::interval(self.options.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if pruned.elapsed() >= Duration::from_secs(3600) {
                pruned = Instant::now();
                self.prune().await;
            }
            for webhook in queries::with_pending(&self.db).await? {
                self.wake(webhook, &stop);
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                notified = listener.recv() => {
                    self.nudge(notified?.payload());
                }
                _ = tick.tick() => {
                    // Still the leader? A lost connection released the
                    // lock: the error stops every worker.
                    leadership.ping().await?;
                }
            }
            // A burst of commits is one look for work.
            while let Some(notified) = listener.next_buffered() {
                self.nudge(notified.payload());
            }
        }
    }

    /// A notification naming a subscription (changed, enabled): its worker
    /// stops waiting for a retry and looks again now. New deliveries name
    /// none: a worker waiting for a retry keeps waiting.
    fn nudge(&self, payload: &str) {
        let Ok(webhook) = payload.parse::<Uuid>() else {
            return;
        };
        if let Some(slot) = self.running.lock().expect("not poisoned").get(&webhook) {
            slot.nudge.notify_one();
        }
    }

    /// Gives `webhook` a worker unless it has one, which then looks again.
    fn wake(&self, webhook: Uuid, stop: &CancellationToken) {
        let mut running = self.running.lock().expect("not poisoned");
        if let Some(slot) = running.get_mut(&webhook) {
            slot.poked = true;
            return;
        }
        running.insert(webhook, Slot::default());
        let worker = self.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let ended = worker.work(webhook, &stop).await;
            if let Err(err) = &ended {
                warn!(%webhook, error = %wablast_eventstore::report::Chain(err), "webhook worker stopped");
            }
            // Out of work, it left the set itself (in the same lock as it
            // found nothing, so no wake was lost); otherwise it leaves now.
            if !matches!(ended, Ok(Ended::OutOfWork)) {
                worker
                    .running
                    .lock()
                    .expect("not poisoned")
                    .remove(&webhook);
            }
        });
    }

    /// Delivers `webhook`'s pending deliveries in order until none is
    /// left, the subscription goes, or `stop`.
    async fn work(&self, webhook: Uuid, stop: &CancellationToken) -> Result<Ended, sqlx::Error> {
        let nudge = self
            .running
            .lock()
            .expect("not poisoned")
            .get(&webhook)
            .map(|slot| slot.nudge.clone())
            .unwrap_or_default();
        'refresh: while !stop.is_cancelled() {
            let Some(target) = Target::live(&self.db, webhook).await? else {
                return Ok(Ended::Gone);
            };
            let Some(secret) = self.sender.secret(&target) else {
                warn!(%webhook, "webhook secret does not open with this WABLAST_SECRET_KEY");
                self.disable(&target, DisableReason::SecretUnreadable, None)
                    .await?;
                return Ok(Ended::Gone);
            };
            let head = queries::head(&self.db, webhook, HEAD).await?;
            if head.is_empty() {
                let mut running = self.running.lock().expect("not poisoned");
                let slot = running.get_mut(&webhook).expect("a worker is registered");
                if std::mem::take(&mut slot.poked) {
                    continue;
                }
                running.remove(&webhook);
                return Ok(Ended::OutOfWork);
            }
            let mut done = Done::default();
            for pending in head {
                if stop.is_cancelled() {
                    // Another process may lead now: not one more POST.
                    break;
                }
                let now = Utc::now();
                if pending.next_attempt_at > now {
                    done.record(&self.db, webhook).await?;
                    let wait = (pending.next_attempt_at - now).to_std().unwrap_or_default();
                    tokio::select! {
                        () = stop.cancelled() => return Ok(Ended::Stopped),
                        () = tokio::time::sleep(wait) => {}
                        () = nudge.notified() => {}
                    }
                    continue 'refresh;
                }
                let answer = self
                    .sender
                    .post(
                        &target.url,
                        &secret,
                        &pending.position,
                        &pending.event_type,
                        pending.body.clone(),
                    )
                    .await;
                match answer {
                    Answer::Delivered { status } => done.push(pending.id, status),
                    Answer::Failed {
                        status,
                        error,
                        retry,
                    } => {
                        done.record(&self.db, webhook).await?;
                        match self.failed(&target, &pending, status, error, retry).await? {
                            // It stays at the head: its turn comes again.
                            Next::Retry => continue 'refresh,
                            Next::Following => {}
                            Next::Disabled => return Ok(Ended::Gone),
                        }
                    }
                }
            }
            done.record(&self.db, webhook).await?;
        }
        Ok(Ended::Stopped)
    }

    /// Records a failed attempt; turns the subscription off when its
    /// receiver has failed for too long.
    ///
    /// # Returns
    /// What the worker does next.
    async fn failed(
        &self,
        target: &Target,
        pending: &Pending,
        status: Option<u16>,
        error: String,
        retry: bool,
    ) -> Result<Next, sqlx::Error> {
        let at = Utc::now();
        let first_failed = pending.first_failed_at.unwrap_or(at);
        let retry_at = (retry && at - first_failed < self.options.give_up_after).then(|| {
            let failures = u64::try_from(pending.attempts).unwrap_or(0) + 1;
            at + jittered(self.options.retry.after(failures))
        });
        let attempt = FailedAttempt {
            id: pending.id,
            status: status.map(i32::from),
            error,
            at,
            retry_at,
        };
        debug!(webhook = %target.id, delivery = pending.id, ?status, error = %attempt.error, retry = retry_at.is_some(), "webhook delivery failed");
        // Failures further apart than twice the longest pause between
        // retries are not one outage.
        let same_outage =
            TimeDelta::from_std(self.options.retry.max).unwrap_or(TimeDelta::hours(1)) * 2;
        let failing_since =
            queries::attempt_failed(&self.db, target.id, &attempt, same_outage).await?;
        if at - failing_since >= self.options.disable_after
            && self
                .disable(target, DisableReason::ReceiverFailing, Some(failing_since))
                .await?
        {
            return Ok(Next::Disabled);
        }
        Ok(if retry_at.is_some() {
            Next::Retry
        } else {
            Next::Following
        })
    }

    /// Turns a subscription off: the event says why, then the row stops
    /// its deliveries. A failure between the two is mended the next time
    /// (disabling twice records nothing).
    ///
    /// # Returns
    /// Whether it is off now.
    async fn disable(
        &self,
        target: &Target,
        reason: DisableReason,
        failing_since: Option<DateTime<Utc>>,
    ) -> Result<bool, sqlx::Error> {
        let at = Utc::now();
        let tenant = TenantId::from_uuid(target.tenant_id);
        let recorded = self
            .commands
            .webhooks
            .execute(
                &key(tenant, target.id),
                WebhookCommand::Disable {
                    reason,
                    failing_since,
                    at,
                },
                &CommandMetadata::new(self.actor.clone()),
            )
            .await;
        if let Err(err) = recorded {
            // Not turned off without its event: tried again next failure.
            warn!(webhook = %target.id, error = %wablast_eventstore::report::Chain(&err), "webhook not disabled");
            return Ok(false);
        }
        if queries::disable(&self.db, target.id, reason.as_str(), at).await? {
            warn!(webhook = %target.id, tenant = %target.tenant_id, reason = reason.as_str(), "webhook disabled");
        }
        Ok(true)
    }

    async fn prune(&self) {
        let now = Utc::now();
        match queries::prune(
            &self.db,
            now - self.options.keep_delivered,
            now - self.options.keep_failed,
        )
        .await
        {
            Ok(0) => {}
            Ok(pruned) => info!(pruned, "old webhook deliveries forgotten"),
            Err(err) => warn!(error = %err, "old webhook deliveries not pruned"),
        }
    }
}

/// The most events one replay queues; a longer one goes on from the
/// position it answers with.
pub const REPLAY_MAX: usize = 10_000;

/// Where a replay starts in one stream: the commit to read from, and how
/// many of its events were delivered already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayFrom {
    /// Stream sequence of the first commit read.
    pub sequence: u64,
    /// Events of that commit skipped.
    pub skip: usize,
}

/// What a replay queued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replay {
    /// Events queued again.
    pub queued: usize,
    /// Where to go on from when more events are left
    /// (`events:<seq>[.<k>],messages:<seq>[.<k>]`); `None`: the replay
    /// reached the end of the log.
    pub next_position: Option<String>,
}

/// Why a replay did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The event log could not be read.
    #[error("the event log cannot be read: {0}")]
    Log(String),
    /// The database could not be written.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Queues again, for the subscription `webhook` of `tenant`, every event
/// of that tenant of the types it subscribes to (`events`), from `from` (per stream; a stream left out is
/// not replayed) up to the end of the log as of now, at most
/// [`REPLAY_MAX`]. They are delivered after what is pending, with the same
/// `id`s as the first time.
pub async fn replay(
    log: &wablast_eventstore::EventLog,
    db: &PgPool,
    webhook: Uuid,
    tenant_id: Uuid,
    events: &[String],
    from: [Option<ReplayFrom>; 2],
) -> Result<Replay, ReplayError> {
    use async_nats::jetstream::consumer::DeliverPolicy;
    use async_nats::jetstream::consumer::push::OrderedConfig;
    use futures::StreamExt;
    use wablast_projections::event_data::WebhookBody;
    use wablast_projections::queries::webhooks::Replayed;
    use wablast_projections::{LogStream, StreamName, tenant_filter};

    let failed = |err: &dyn std::fmt::Display| ReplayError::Log(err.to_string());
    let tenant = tenant_id.to_string();
    let upcasters = wablast_domain::upcasters();
    let wanted = |event_type: &str| events.iter().any(|e| e == "*" || e == event_type);
    let mut queued: Vec<Replayed> = Vec::new();
    let mut next: Vec<String> = Vec::new();
    let mut more = false;
    for (stream, start) in LogStream::ALL.into_iter().zip(from) {
        let Some(start) = start else { continue };
        let js = log
            .jetstream()
            .get_stream(stream.full_name(log.prefix()))
            .await
            .map_err(|e| failed(&e))?;
        let info = js.cached_info();
        let last = info.state.last_sequence;
        let mut reached = format!("{}:{}", stream.name(), last);
        let filters: Vec<String> = info
            .config
            .subjects
            .iter()
            .filter_map(|subjects| tenant_filter(subjects, &tenant))
            .collect();
        if filters.is_empty() || start.sequence > last || more {
            if more {
                next.push(match start.skip {
                    0 => format!("{}:{}", stream.name(), start.sequence.saturating_sub(1)),
                    k => format!("{}:{}.{k}", stream.name(), start.sequence),
                });
            }
            continue;
        }
        let consumer = js
            .create_consumer(OrderedConfig {
                deliver_subject: log.jetstream().client().new_inbox(),
                filter_subjects: filters,
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: start.sequence,
                },
                ..Default::default()
            })
            .await
            .map_err(|e| failed(&e))?;
        let pending_at_start = consumer.cached_info().num_pending;
        let name = consumer.cached_info().name.clone();
        if pending_at_start > 0 {
            let mut messages = consumer.messages().await.map_err(|e| failed(&e))?;
            // A stream purged meanwhile would leave it waiting for ever.
            'read: while let Some(message) =
                tokio::time::timeout(Duration::from_secs(10), messages.next())
                    .await
                    .map_err(|e| failed(&e))?
            {
                let message = message.map_err(|e| failed(&e))?;
                let meta = message.info().map_err(|e| failed(&e))?;
                let (sequence, pending) = (meta.stream_sequence, meta.pending);
                if sequence > last {
                    break;
                }
                let commit: wablast_eventstore::Commit =
                    serde_json::from_slice(&message.payload).map_err(|e| failed(&e))?;
                if commit.tenant == tenant {
                    let count = commit.events.len();
                    let skip = if sequence == start.sequence {
                        start.skip
                    } else {
                        0
                    };
                    for (index, event) in commit.into_recorded(sequence).enumerate().skip(skip) {
                        if queued.len() >= REPLAY_MAX {
                            more = true;
                            next.push(if index == 0 {
                                format!("{}:{}", stream.name(), sequence - 1)
                            } else {
                                format!("{}:{sequence}.{index}", stream.name())
                            });
                            reached.clear();
                            break 'read;
                        }
                        let event = event.upcast(&upcasters);
                        if !wanted(&event.event_type) {
                            continue;
                        }
                        let occurred_at = event.occurred_at;
                        let event_type = event.event_type.clone();
                        let (position, body) =
                            WebhookBody::render(stream, index, count, tenant_id, event)
                                .map_err(|e| failed(&e))?;
                        queued.push(Replayed {
                            stream,
                            stream_sequence: i64::try_from(sequence).map_err(|e| failed(&e))?,
                            event_index: i32::try_from(index).map_err(|e| failed(&e))?,
                            position,
                            event_type,
                            body,
                            occurred_at,
                        });
                    }
                }
                if pending == 0 || sequence >= last {
                    break;
                }
            }
        }
        let _ = js.delete_consumer(&name).await;
        if !reached.is_empty() {
            next.push(reached);
        }
    }
    queries::queue_replay(db, webhook, tenant_id, &queued, Utc::now()).await?;
    info!(%webhook, queued = queued.len(), more, "webhook replay queued");
    Ok(Replay {
        queued: queued.len(),
        next_position: more.then(|| next.join(",")),
    })
}

/// A pause drawn between half of `pause` and all of it.
fn jittered(pause: Duration) -> TimeDelta {
    let factor = rand::rngs::StdRng::from_os_rng().random_range(0.5..=1.0);
    TimeDelta::from_std(pause.mul_f64(factor)).unwrap_or(TimeDelta::hours(1))
}

/// Deliveries a receiver took, recorded together.
#[derive(Default)]
struct Done {
    ids: Vec<i64>,
    statuses: Vec<i32>,
}

impl Done {
    fn push(&mut self, id: i64, status: u16) {
        self.ids.push(id);
        self.statuses.push(i32::from(status));
    }

    async fn record(&mut self, db: &PgPool, webhook: Uuid) -> Result<(), sqlx::Error> {
        if self.ids.is_empty() {
            return Ok(());
        }
        queries::delivered(db, webhook, &self.ids, &self.statuses, Utc::now()).await?;
        self.ids.clear();
        self.statuses.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_stripes_scheme() {
        // HMAC-SHA256("secret", "1700000000.{}"), computed independently
        // (`printf '1700000000.{}' | openssl dgst -sha256 -hmac secret`).
        let header = signature("secret", 1_700_000_000, "{}");
        assert_eq!(
            header,
            "t=1700000000,v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
        assert_ne!(header, signature("other", 1_700_000_000, "{}"));
        assert_ne!(header, signature("secret", 1_700_000_001, "{}"));
    }

    #[test]
    fn only_some_4xx_are_given_up_at_once() {
        let retry = |status| match Answer::of_status(status, String::new()) {
            Answer::Failed { retry, .. } => Some(retry),
            Answer::Delivered { .. } => None,
        };
        assert_eq!(retry(200), None);
        assert_eq!(retry(204), None);
        for status in [408, 409, 425, 429, 500, 502, 503, 301] {
            assert_eq!(retry(status), Some(true), "{status}");
        }
        for status in [400, 401, 403, 404, 410, 422] {
            assert_eq!(retry(status), Some(false), "{status}");
        }
    }

    #[test]
    fn receivers_are_https_on_public_addresses_unless_allowed() {
        assert!(check_receiver("https://shop.example/hook", false).is_ok());
        assert!(check_receiver("https://93.184.216.34/hook", false).is_ok());
        for (url, err) in [
            ("http://shop.example/hook", ReceiverError::NotHttps),
            (
                "https://127.0.0.1:8080/hook",
                ReceiverError::Private("127.0.0.1".into()),
            ),
            (
                "https://10.1.2.3/",
                ReceiverError::Private("10.1.2.3".into()),
            ),
            ("https://[::1]/", ReceiverError::Private("::1".into())),
            (
                "https://localhost/",
                ReceiverError::Private("localhost".into()),
            ),
            ("ftp://shop.example/", ReceiverError::NotAUrl),
        ] {
            assert_eq!(check_receiver(url, false).unwrap_err(), err, "{url}");
        }
        assert!(check_receiver("http://127.0.0.1:8080/hook", true).is_ok());
        assert!(check_receiver("http://localhost/hook", true).is_ok());
    }

    #[test]
    fn private_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::10.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
            "fec0::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "93.184.216.34", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn names_resolving_to_private_addresses_are_refused_at_connect_time() {
        use reqwest::dns::Resolve;
        use std::str::FromStr;
        // `localhost` resolves to loopback only: a name that points inside
        // the network, as a DNS rebinding would.
        let resolved = PublicResolver
            .resolve(reqwest::dns::Name::from_str("localhost").unwrap())
            .await;
        let err = resolved.err().expect("refused").to_string();
        assert!(err.contains("receivers may not use"), "{err}");

        let sender = Sender::new(&WebhookOptions::default(), SecretKey::new([7; 32]));
        let answer = sender
            .post(
                "http://127.0.0.1:9/hook",
                "secret",
                "events:1",
                "Ping",
                "{}".into(),
            )
            .await;
        assert!(
            matches!(&answer, Answer::Failed { status: None, retry: false, error } if error.contains("https")),
            "{answer:?}"
        );
    }

    #[test]
    fn excerpts_cut_at_characters_and_hold_no_nul() {
        let long = "é".repeat(400);
        let cut = excerpt(&long);
        assert!(cut.len() <= EXCERPT_BYTES);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(excerpt("a\0b"), "a\u{fffd}b");
    }
}
