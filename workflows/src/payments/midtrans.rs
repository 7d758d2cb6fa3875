//! The Midtrans client: Snap transactions (the payment page), the Core
//! API's transaction status, and the checks of its HTTP notifications.
//!
//! - Snap: `POST {snap_base}/snap/v1/transactions`, Basic auth with the
//!   server key as the user and no password, `transaction_details`,
//!   `item_details`, `customer_details`; the notification URL of the
//!   transaction in the `X-Override-Notification` header. Answers 201
//!   `{token, redirect_url}`, or `{error_messages: [...]}`.
//! - Status: `GET {api_base}/v2/{order_id}/status`, same auth: the
//!   transaction as a notification describes it (`transaction_status`,
//!   `fraud_status`, `gross_amount`, `settlement_time`, `refund_amount`,
//!   ...), or `status_code` `404` for an order Midtrans does not know.
//! - Notifications carry `signature_key`: the hex SHA-512 of
//!   `order_id + status_code + gross_amount + server_key`, compared here
//!   in constant time. A notification is never trusted beyond that: the
//!   workflow confirms it with the status API before acting.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;
use url::Url;
use wablast_domain::order::{FailureReason, PaymentReport, Rupiah};

/// Snap's base URL in the sandbox.
pub const SANDBOX_SNAP_URL: &str = "https://app.sandbox.midtrans.com";
/// The Core API's base URL in the sandbox.
pub const SANDBOX_API_URL: &str = "https://api.sandbox.midtrans.com";
/// Snap's base URL in production.
pub const PRODUCTION_SNAP_URL: &str = "https://app.midtrans.com";
/// The Core API's base URL in production.
pub const PRODUCTION_API_URL: &str = "https://api.midtrans.com";

/// How wablast talks to Midtrans. Its `Debug` never shows the server key.
#[derive(Clone, Debug)]
pub struct MidtransConfig {
    /// The merchant's server key (`WABLAST_MIDTRANS_SERVER_KEY`): signs
    /// requests and notifications; never stored, never logged.
    pub server_key: SecretString,
    /// The merchant's client key (`WABLAST_MIDTRANS_CLIENT_KEY`), for
    /// Snap's JavaScript in a browser.
    pub client_key: Option<String>,
    /// Production (`true`) or the sandbox.
    pub production: bool,
    /// Snap's base URL.
    pub snap_url: Url,
    /// The Core API's base URL.
    pub api_url: Url,
    /// Where Midtrans sends this installation's notifications
    /// (`<public url>/hooks/midtrans`), set on each transaction.
    pub notification_url: Option<String>,
    /// Where Snap sends the buyer back after paying (`callbacks.finish`):
    /// the console's wallet.
    pub finish_url: Option<String>,
    /// How long one request may take.
    pub timeout: Duration,
}

impl MidtransConfig {
    /// The sandbox or production with its own base URLs.
    pub fn new(server_key: SecretString, production: bool) -> Self {
        let (snap, api) = if production {
            (PRODUCTION_SNAP_URL, PRODUCTION_API_URL)
        } else {
            (SANDBOX_SNAP_URL, SANDBOX_API_URL)
        };
        Self {
            server_key,
            client_key: None,
            production,
            snap_url: Url::parse(snap).expect("a URL"),
            api_url: Url::parse(api).expect("a URL"),
            notification_url: None,
            finish_url: None,
            timeout: Duration::from_secs(15),
        }
    }
}

/// Why Midtrans did not answer as asked.
#[derive(Debug, thiserror::Error)]
pub enum MidtransError {
    /// It could not be reached, or did not answer in time.
    #[error("Midtrans is unreachable: {0}")]
    Unreachable(#[source] reqwest::Error),
    /// It refused the request.
    #[error("Midtrans answered {status}: {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// Its error messages.
        message: String,
    },
    /// Its answer is not what its documentation describes.
    #[error("Midtrans answered something unreadable: {0}")]
    Unreadable(String),
}

/// The order's part of a Snap transaction.
#[derive(Clone, Debug, Serialize)]
pub struct TransactionDetails {
    /// Our order id.
    pub order_id: String,
    /// Whole rupiah.
    pub gross_amount: u64,
}

/// One line of a Snap transaction.
#[derive(Clone, Debug, Serialize)]
pub struct ItemDetails {
    /// The item's id (a plan's id, `topup`).
    pub id: String,
    /// Its unit price in rupiah.
    pub price: u64,
    /// How many.
    pub quantity: u64,
    /// Its name (Midtrans keeps 50 characters).
    pub name: String,
}

/// The buyer.
#[derive(Clone, Debug, Serialize)]
pub struct CustomerDetails {
    /// Their name.
    pub first_name: String,
    /// Their email.
    pub email: String,
}

/// Where Snap sends the buyer back.
#[derive(Clone, Debug, Serialize)]
pub struct Callbacks {
    /// After the payment page (Midtrans adds `order_id`,
    /// `transaction_status`, ...).
    pub finish: String,
}

/// A Snap transaction to create.
#[derive(Clone, Debug, Serialize)]
pub struct SnapRequest {
    /// The order and its amount.
    pub transaction_details: TransactionDetails,
    /// What is bought (the lines add up to the amount).
    pub item_details: Vec<ItemDetails>,
    /// Who buys.
    pub customer_details: CustomerDetails,
    /// Where the buyer comes back to (the configured finish URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callbacks: Option<Callbacks>,
}

/// A Snap transaction created: the payment page.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct SnapTransaction {
    /// The page's token (for Snap's JavaScript).
    pub token: String,
    /// The page's URL.
    pub redirect_url: String,
}

/// `transaction_status` as Midtrans documents it.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TransactionStatus {
    /// A card payment captured (see `fraud_status`).
    Capture,
    /// Paid.
    Settlement,
    /// Waiting for the customer.
    Pending,
    /// Denied.
    Deny,
    /// Cancelled.
    Cancel,
    /// Not paid in time.
    Expire,
    /// Failed.
    Failure,
    /// Refunded in full.
    Refund,
    /// Refunded in part.
    PartialRefund,
    /// A card payment authorised, not captured yet.
    Authorize,
}

/// `fraud_status` as Midtrans documents it.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FraudStatus {
    /// Safe.
    Accept,
    /// Suspicious: waits for the merchant's decision.
    Challenge,
    /// Fraud.
    Deny,
}

/// One refund of a transaction.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Refund {
    /// How much, as `"25000.00"`.
    pub refund_amount: String,
}

/// A transaction as the status API (and a notification) describes it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Transaction {
    /// Our order id.
    pub order_id: String,
    /// Midtrans' transaction id.
    pub transaction_id: String,
    /// Where it is.
    pub transaction_status: TransactionStatus,
    /// The fraud check's verdict (card payments).
    pub fraud_status: Option<FraudStatus>,
    /// The amount, as `"150000.00"`.
    pub gross_amount: String,
    /// `"200"`, `"201"`, ...
    pub status_code: String,
    /// When it was paid, `"2026-12-07 10:00:00"` in Jakarta time.
    pub settlement_time: Option<String>,
    /// The refunded total, as `"25000.00"`.
    pub refund_amount: Option<String>,
    /// Each refund.
    #[serde(default)]
    pub refunds: Vec<Refund>,
}

impl Transaction {
    /// The transaction's amount in whole rupiah.
    pub fn amount(&self) -> Option<Rupiah> {
        Rupiah::parse_decimal(&self.gross_amount)
    }

    /// When it was paid (its settlement time, read in Jakarta time).
    pub fn paid_at(&self) -> Option<DateTime<Utc>> {
        let text = self.settlement_time.as_deref()?;
        let local = NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M:%S").ok()?;
        // Midtrans writes its times in WIB (UTC+7).
        Some(local.and_utc() - TimeDelta::hours(7))
    }

    /// What it means for the order: `None` for a refund whose amount is
    /// unreadable.
    pub fn report(&self) -> Option<PaymentReport> {
        Some(match self.transaction_status {
            TransactionStatus::Settlement => PaymentReport::Paid,
            TransactionStatus::Capture => match self.fraud_status {
                None | Some(FraudStatus::Accept) => PaymentReport::Paid,
                Some(FraudStatus::Challenge) => PaymentReport::Pending,
                Some(FraudStatus::Deny) => PaymentReport::Failed(FailureReason::Denied),
            },
            TransactionStatus::Pending | TransactionStatus::Authorize => PaymentReport::Pending,
            TransactionStatus::Deny => PaymentReport::Failed(FailureReason::Denied),
            TransactionStatus::Cancel => PaymentReport::Failed(FailureReason::Cancelled),
            TransactionStatus::Expire => PaymentReport::Failed(FailureReason::Expired),
            TransactionStatus::Failure => PaymentReport::Failed(FailureReason::Failed),
            TransactionStatus::Refund | TransactionStatus::PartialRefund => {
                let refunded = match &self.refund_amount {
                    Some(total) => Rupiah::parse_decimal(total)?,
                    None if !self.refunds.is_empty() => {
                        let mut sum = 0u64;
                        for refund in &self.refunds {
                            sum = sum.checked_add(
                                Rupiah::parse_decimal(&refund.refund_amount)?.value(),
                            )?;
                        }
                        Rupiah::new(sum)
                    }
                    // A full refund that does not say how much: all of it.
                    None if self.transaction_status == TransactionStatus::Refund => {
                        self.amount()?
                    }
                    None => return None,
                };
                PaymentReport::Refunded { refunded }
            }
        })
    }
}

/// A notification's fields that its signature covers.
#[derive(Clone, Debug, Deserialize)]
pub struct Notification {
    /// Our order id.
    pub order_id: String,
    /// `"200"`, `"201"`, ...
    pub status_code: String,
    /// As `"150000.00"`.
    pub gross_amount: String,
    /// Hex SHA-512 of the three above and the server key.
    pub signature_key: String,
}

/// The hex SHA-512 Midtrans signs with: `order_id + status_code +
/// gross_amount + server_key`.
pub fn signature(
    order_id: &str,
    status_code: &str,
    gross_amount: &str,
    server_key: &str,
) -> String {
    let mut digest = Sha512::new();
    digest.update(order_id.as_bytes());
    digest.update(status_code.as_bytes());
    digest.update(gross_amount.as_bytes());
    digest.update(server_key.as_bytes());
    hex::encode(digest.finalize())
}

/// The Midtrans client.
#[derive(Clone, Debug)]
pub struct Midtrans {
    config: MidtransConfig,
    http: reqwest::Client,
}

/// Midtrans' error answer.
#[derive(Deserialize)]
struct ErrorAnswer {
    #[serde(default)]
    error_messages: Vec<String>,
    status_message: Option<String>,
}

/// What the status API answers about the order, whatever it is.
#[derive(Deserialize)]
struct StatusCode {
    status_code: Option<String>,
}

impl Midtrans {
    /// A client for `config`.
    pub fn new(config: MidtransConfig) -> Result<Self, MidtransError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(MidtransError::Unreachable)?;
        Ok(Self { config, http })
    }

    /// Its configuration.
    pub fn config(&self) -> &MidtransConfig {
        &self.config
    }

    fn endpoint(base: &Url, path: &str) -> Result<Url, MidtransError> {
        let base = base.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}{path}")).map_err(|e| MidtransError::Unreadable(e.to_string()))
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request
            .basic_auth(self.config.server_key.expose_secret(), Some(""))
            .header(reqwest::header::ACCEPT, "application/json")
    }

    /// Creates a Snap transaction: the payment page of an order.
    pub async fn create_transaction(
        &self,
        request: &SnapRequest,
    ) -> Result<SnapTransaction, MidtransError> {
        let url = Self::endpoint(&self.config.snap_url, "/snap/v1/transactions")?;
        let mut builder = self.authorized(self.http.post(url)).json(request);
        if let Some(notification_url) = &self.config.notification_url {
            builder = builder.header("X-Override-Notification", notification_url);
        }
        let response = builder.send().await.map_err(MidtransError::Unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(MidtransError::Unreachable)?;
        if !status.is_success() {
            return Err(refused(status.as_u16(), &body));
        }
        serde_json::from_slice(&body).map_err(|e| MidtransError::Unreadable(e.to_string()))
    }

    /// The order's transaction as Midtrans has it; `None` when it has
    /// none (the customer never chose how to pay).
    pub async fn status(&self, order_id: &str) -> Result<Option<Transaction>, MidtransError> {
        // Our order ids are UUIDs: nothing to escape in a path.
        let url = Self::endpoint(&self.config.api_url, &format!("/v2/{order_id}/status"))?;
        let response = self
            .authorized(self.http.get(url))
            .send()
            .await
            .map_err(MidtransError::Unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(MidtransError::Unreachable)?;
        // Midtrans says "no such transaction" in the body's status_code,
        // with HTTP 404 or 200.
        let code = serde_json::from_slice::<StatusCode>(&body)
            .ok()
            .and_then(|c| c.status_code);
        if status == reqwest::StatusCode::NOT_FOUND || code.as_deref() == Some("404") {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(refused(status.as_u16(), &body));
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| MidtransError::Unreadable(e.to_string()))
    }

    /// Whether the notification is signed with this merchant's server key
    /// (compared in constant time).
    pub fn verify(&self, notification: &Notification) -> bool {
        let expected = signature(
            &notification.order_id,
            &notification.status_code,
            &notification.gross_amount,
            self.config.server_key.expose_secret(),
        );
        let given = notification.signature_key.trim().to_ascii_lowercase();
        expected.as_bytes().ct_eq(given.as_bytes()).into()
    }
}

fn refused(status: u16, body: &[u8]) -> MidtransError {
    let message = match serde_json::from_slice::<ErrorAnswer>(body) {
        Ok(answer) if !answer.error_messages.is_empty() => answer.error_messages.join("; "),
        Ok(ErrorAnswer {
            status_message: Some(message),
            ..
        }) => message,
        _ => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    };
    MidtransError::Refused { status, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Midtrans {
        Midtrans::new(MidtransConfig::new(
            SecretString::from("SB-Mid-server-key"),
            false,
        ))
        .unwrap()
    }

    #[test]
    fn a_notification_signed_with_the_server_key_verifies_and_another_does_not() {
        let signature_key = signature("order-1", "200", "150000.00", "SB-Mid-server-key");
        let good = Notification {
            order_id: "order-1".into(),
            status_code: "200".into(),
            gross_amount: "150000.00".into(),
            signature_key: signature_key.clone(),
        };
        assert!(client().verify(&good));
        let tampered = Notification {
            gross_amount: "1000.00".into(),
            ..good.clone()
        };
        assert!(!client().verify(&tampered));
        let other_key = Notification {
            signature_key: signature("order-1", "200", "150000.00", "another key"),
            ..good
        };
        assert!(!client().verify(&other_key));
    }

    #[test]
    fn statuses_map_as_midtrans_documents_them() {
        let transaction = |status: &str, fraud: Option<&str>| -> Transaction {
            serde_json::from_value(serde_json::json!({
                "order_id": "o", "transaction_id": "t", "transaction_status": status,
                "fraud_status": fraud, "gross_amount": "10000.00", "status_code": "200",
                "settlement_time": "2026-12-07 10:00:00"
            }))
            .unwrap()
        };
        assert_eq!(
            transaction("settlement", None).report(),
            Some(PaymentReport::Paid)
        );
        assert_eq!(
            transaction("capture", Some("accept")).report(),
            Some(PaymentReport::Paid)
        );
        assert_eq!(
            transaction("capture", Some("challenge")).report(),
            Some(PaymentReport::Pending)
        );
        assert_eq!(
            transaction("pending", None).report(),
            Some(PaymentReport::Pending)
        );
        assert_eq!(
            transaction("expire", None).report(),
            Some(PaymentReport::Failed(FailureReason::Expired))
        );
        assert_eq!(
            transaction("cancel", None).report(),
            Some(PaymentReport::Failed(FailureReason::Cancelled))
        );
        assert_eq!(
            transaction("deny", None).report(),
            Some(PaymentReport::Failed(FailureReason::Denied))
        );
        assert_eq!(
            transaction("refund", None).report(),
            Some(PaymentReport::Refunded {
                refunded: Rupiah::new(10_000)
            })
        );
        assert_eq!(
            transaction("settlement", None)
                .paid_at()
                .unwrap()
                .to_rfc3339(),
            "2026-12-07T03:00:00+00:00"
        );
    }
}
