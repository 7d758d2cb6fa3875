//! A local Midtrans: Snap's `POST /snap/v1/transactions` and the Core
//! API's `GET /v2/{order_id}/status`, both behind Basic auth with the
//! server key, answering as Midtrans documents; and the HTTP notifications
//! Midtrans sends (to the `X-Override-Notification` URL of each
//! transaction), signed as it signs them: `signature_key` = hex SHA-512 of
//! `order_id + status_code + gross_amount + server_key`.
//!
//! Its `redirect_url` is a page of its own with a button that pays: the
//! transaction settles, the notification goes out, and the browser goes
//! back to the transaction's `callbacks.finish`.
//!
//! A test moves a transaction along (`set_status`) and sends its
//! notification (`notify`), a notification with a wrong signature
//! (`notify_with_bad_signature`), or one whose status says another amount
//! (`set_amount`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha2::{Digest, Sha512};

/// The server key the local Midtrans accepts.
pub const SERVER_KEY: &str = "SB-Mid-server-TEST-local-key";

/// One transaction as the local Midtrans keeps it.
#[derive(Clone, Debug)]
pub struct Transaction {
    /// Our order id.
    pub order_id: String,
    /// Its transaction id.
    pub transaction_id: String,
    /// The amount Snap was asked for (whole rupiah).
    pub gross_amount: u64,
    /// The amount its status reports (differs when a test says so).
    pub reported_amount: u64,
    /// `transaction_status`, once the customer chose how to pay.
    pub status: Option<String>,
    /// `fraud_status`.
    pub fraud_status: Option<String>,
    /// The refunded total, for `refund` and `partial_refund`.
    pub refund_amount: Option<u64>,
    /// Where its notifications go (`X-Override-Notification`).
    pub notification_url: Option<String>,
    /// The Snap request's body.
    pub request: Value,
    /// When Snap opened it (whole seconds): its `transaction_time`, and
    /// its `settlement_time` once paid (Midtrans writes both in WIB).
    pub opened_at: DateTime<Utc>,
}

/// A time as Midtrans writes it: WIB (GMT+7), `YYYY-MM-DD HH:MM:SS`.
fn wib(at: DateTime<Utc>) -> String {
    (at + TimeDelta::hours(7))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

#[derive(Default)]
struct Books {
    transactions: HashMap<String, Transaction>,
    snap_requests: usize,
    status_requests: usize,
    /// Answer Snap with this status instead (a gateway failing).
    snap_fails_with: Option<u16>,
    /// Each payment page's order.
    tokens: HashMap<String, String>,
    /// Where it listens.
    base_url: String,
}

/// A local Midtrans on 127.0.0.1.
#[derive(Clone)]
pub struct LocalMidtrans {
    /// `http://127.0.0.1:<port>`: both the Snap and the Core API base.
    pub base_url: String,
    books: Arc<Mutex<Books>>,
    http: reqwest::Client,
}

fn authorized(headers: &HeaderMap) -> bool {
    use base64::Engine as _;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{SERVER_KEY}:"))
    );
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected)
}

fn denied() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"error_messages": ["Access denied due to unauthorized transaction, please check client or server key"]})),
    )
        .into_response()
}

/// The hex SHA-512 Midtrans signs notifications with.
pub fn signature(order_id: &str, status_code: &str, gross_amount: &str) -> String {
    let mut digest = Sha512::new();
    digest.update(format!("{order_id}{status_code}{gross_amount}{SERVER_KEY}").as_bytes());
    hex::encode(digest.finalize())
}

/// `status_code` of a `transaction_status`, as Midtrans documents them.
fn status_code(status: &str) -> &'static str {
    match status {
        "pending" => "201",
        "deny" => "202",
        "expire" => "407",
        _ => "200",
    }
}

impl Transaction {
    /// The transaction as the status API (and a notification) describes
    /// it.
    pub fn status_body(&self) -> Value {
        let status = self.status.clone().unwrap_or_else(|| "pending".to_owned());
        let code = status_code(&status);
        let gross = format!("{}.00", self.reported_amount);
        let mut body = json!({
            "status_code": code,
            "status_message": "Success, transaction is found",
            "transaction_id": self.transaction_id,
            "order_id": self.order_id,
            "merchant_id": "G000000001",
            "gross_amount": gross,
            "currency": "IDR",
            "payment_type": "bank_transfer",
            "transaction_time": wib(self.opened_at),
            "transaction_status": status,
            "fraud_status": self.fraud_status.clone().unwrap_or_else(|| "accept".to_owned()),
            "va_numbers": [{"bank": "bca", "va_number": "12345678901"}],
            "signature_key": signature(&self.order_id, code, &gross),
        });
        if matches!(
            status.as_str(),
            "settlement" | "capture" | "refund" | "partial_refund"
        ) {
            body["settlement_time"] = json!(wib(self.opened_at));
        }
        if let Some(refunded) = self.refund_amount {
            body["refund_amount"] = json!(format!("{refunded}.00"));
            body["refunds"] = json!([{"refund_chargeback_id": 1, "refund_amount": format!("{refunded}.00"),
                "created_at": wib(self.opened_at), "reason": "customer request", "refund_key": "r-1"}]);
        }
        body
    }
}

async fn create(
    State(books): State<Arc<Mutex<Books>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authorized(&headers) {
        return denied();
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error_messages": ["invalid JSON"]})),
        )
            .into_response();
    };
    let mut books = books.lock().unwrap();
    books.snap_requests += 1;
    if let Some(status) = books.snap_fails_with {
        return (
            StatusCode::from_u16(status).unwrap(),
            axum::Json(json!({"error_messages": ["Sorry, something went wrong"]})),
        )
            .into_response();
    }
    let order_id = request["transaction_details"]["order_id"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let Some(gross_amount) = request["transaction_details"]["gross_amount"].as_u64() else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error_messages": ["transaction_details.gross_amount is required"]})),
        )
            .into_response();
    };
    // Midtrans refuses item_details that do not add up to the amount.
    let items: u64 = request["item_details"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| i["price"].as_u64().unwrap_or(0) * i["quantity"].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(gross_amount);
    if order_id.is_empty() || items != gross_amount {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error_messages": ["transaction_details.gross_amount is not equal to the sum of item_details"]}))).into_response();
    }
    if books.transactions.contains_key(&order_id) {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"error_messages": ["transaction_details.order_id has already been taken"]}),
            ),
        )
            .into_response();
    }
    let token = uuid::Uuid::new_v4().to_string();
    let token_order = order_id.clone();
    books.transactions.insert(
        order_id.clone(),
        Transaction {
            order_id,
            transaction_id: uuid::Uuid::new_v4().to_string(),
            gross_amount,
            reported_amount: gross_amount,
            status: None,
            fraud_status: None,
            refund_amount: None,
            opened_at: Utc::now().trunc_subsecs(0),
            notification_url: headers
                .get("x-override-notification")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            request,
        },
    );
    books.tokens.insert(token.clone(), token_order);
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "token": token,
            "redirect_url": format!("{}/snap/v4/redirection/{token}", books.base_url),
        })),
    )
        .into_response()
}

/// The payment page (`redirect_url`): the order and a button that pays.
async fn page(State(books): State<Arc<Mutex<Books>>>, Path(token): Path<String>) -> Response {
    let books = books.lock().unwrap();
    let Some(transaction) = books
        .tokens
        .get(&token)
        .and_then(|o| books.transactions.get(o))
    else {
        return (StatusCode::NOT_FOUND, "no such payment page").into_response();
    };
    axum::response::Html(format!(
        "<!doctype html><html lang=\"id\"><head><meta charset=\"utf-8\"><link rel=\"icon\" href=\"data:,\"><title>Midtrans (lokal)</title></head>\
         <body><h1>Midtrans (lokal)</h1><p>Pesanan {order}</p><p>Rp {amount}</p>\
         <form method=\"post\" action=\"/snap/v4/redirection/{token}/pay\"><button type=\"submit\">Bayar sekarang</button></form>\
         </body></html>",
        order = transaction.order_id,
        amount = transaction.gross_amount,
    ))
    .into_response()
}

/// The buyer pays on the page: the transaction settles, Midtrans notifies,
/// and the buyer goes back to the finish URL.
async fn pay(State(books): State<Arc<Mutex<Books>>>, Path(token): Path<String>) -> Response {
    let transaction = {
        let mut books = books.lock().unwrap();
        let Some(order_id) = books.tokens.get(&token).cloned() else {
            return (StatusCode::NOT_FOUND, "no such payment page").into_response();
        };
        let transaction = books
            .transactions
            .get_mut(&order_id)
            .expect("a transaction");
        transaction.status = Some("settlement".to_owned());
        transaction.clone()
    };
    if let Some(url) = &transaction.notification_url {
        let _ = reqwest::Client::new()
            .post(url)
            .json(&transaction.status_body())
            .send()
            .await;
    }
    let finish = transaction.request["callbacks"]["finish"]
        .as_str()
        .unwrap_or("/")
        .to_owned();
    let separator = if finish.contains('?') { '&' } else { '?' };
    axum::response::Redirect::to(&format!(
        "{finish}{separator}order_id={}&status_code=200&transaction_status=settlement",
        transaction.order_id
    ))
    .into_response()
}

async fn status(
    State(books): State<Arc<Mutex<Books>>>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
) -> Response {
    if !authorized(&headers) {
        return denied();
    }
    let mut books = books.lock().unwrap();
    books.status_requests += 1;
    match books.transactions.get(&order_id) {
        Some(transaction) if transaction.status.is_some() => {
            axum::Json(transaction.status_body()).into_response()
        }
        _ => (
            StatusCode::NOT_FOUND,
            axum::Json(
                json!({"status_code": "404", "status_message": "Transaction doesn't exist."}),
            ),
        )
            .into_response(),
    }
}

impl LocalMidtrans {
    /// Starts it on a free port.
    pub async fn start() -> Self {
        let books: Arc<Mutex<Books>> = Arc::default();
        let app = Router::new()
            .route("/snap/v1/transactions", post(create))
            .route("/snap/v4/redirection/{token}", get(page))
            .route("/snap/v4/redirection/{token}/pay", post(pay))
            .route("/v2/{order_id}/status", get(status))
            .with_state(books.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let base_url = format!("http://{}", listener.local_addr().expect("an address"));
        books.lock().unwrap().base_url = base_url.clone();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base_url,
            books,
            http: reqwest::Client::new(),
        }
    }

    /// The transaction of an order.
    pub fn transaction(&self, order_id: &str) -> Transaction {
        self.books
            .lock()
            .unwrap()
            .transactions
            .get(order_id)
            .cloned()
            .expect("a Snap transaction for the order")
    }

    /// How many Snap and status requests it answered.
    pub fn requests(&self) -> (usize, usize) {
        let books = self.books.lock().unwrap();
        (books.snap_requests, books.status_requests)
    }

    /// Snap answers `status` from now on.
    pub fn fail_snap_with(&self, status: u16) {
        self.books.lock().unwrap().snap_fails_with = Some(status);
    }

    /// The transaction is now in `status` (`settlement`, `pending`, ...).
    pub fn set_status(&self, order_id: &str, status: &str) {
        let mut books = self.books.lock().unwrap();
        let transaction = books
            .transactions
            .get_mut(order_id)
            .expect("a Snap transaction for the order");
        transaction.status = Some(status.to_owned());
    }

    /// Its status reports `amount` rupiah from now on.
    pub fn set_amount(&self, order_id: &str, amount: u64) {
        let mut books = self.books.lock().unwrap();
        books
            .transactions
            .get_mut(order_id)
            .expect("a Snap transaction")
            .reported_amount = amount;
    }

    /// It was refunded, `refunded` rupiah in all.
    pub fn refund(&self, order_id: &str, refunded: u64) {
        let mut books = self.books.lock().unwrap();
        let transaction = books
            .transactions
            .get_mut(order_id)
            .expect("a Snap transaction");
        transaction.refund_amount = Some(refunded);
        transaction.status = Some(
            if refunded >= transaction.gross_amount {
                "refund"
            } else {
                "partial_refund"
            }
            .to_owned(),
        );
    }

    /// Sends its notification as Midtrans does; returns the answer's status
    /// and body.
    pub async fn notify(&self, order_id: &str) -> (u16, Value) {
        let transaction = self.transaction(order_id);
        let body = transaction.status_body();
        self.post(&transaction, body).await
    }

    /// Sends its notification with a wrong `signature_key` (signed with
    /// another key).
    pub async fn notify_with_bad_signature(&self, order_id: &str) -> (u16, Value) {
        let transaction = self.transaction(order_id);
        let mut body = transaction.status_body();
        let mut digest = Sha512::new();
        digest.update(
            format!("{order_id}200{}.00another-key", transaction.reported_amount).as_bytes(),
        );
        body["signature_key"] = json!(hex::encode(digest.finalize()));
        body["transaction_status"] = json!("settlement");
        self.post(&transaction, body).await
    }

    async fn post(&self, transaction: &Transaction, body: Value) -> (u16, Value) {
        let url = transaction
            .notification_url
            .clone()
            .expect("the transaction names its notification URL (X-Override-Notification)");
        let response = self
            .http
            .post(url)
            .json(&body)
            .send()
            .await
            .expect("notification sent");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }
}
