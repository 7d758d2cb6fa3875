//! The console's inbox, auto-replies and active hours, in Debian's Chromium
//! (`console/e2e/inbox.mjs`) against the whole system with the simulator:
//! a customer writes, the owner sees it arrive live, reads and answers it;
//! makes an auto-reply rule (trying it in the test box first) that answers
//! the customer's next message; sets the active hours and the override.
//!
//! Also: the cases the console's test box is checked against
//! (`console/src/lib/autoReply.cases.json`) are the server's own decisions.

use reqwest::StatusCode;
use serde_json::json;

use crate::app::Client;
use crate::campaigns::grant_plan;
use crate::console::{Browser, console_dir, plan, ready_number};

/// The customer who writes to the shop.
const CUSTOMER: &str = "+6281311112222";

/// A message from `from` to the simulator session `id`.
async fn inbound(owner: &Client, id: &str, from: &str, text: &str) {
    let (status, body) = owner
        .post(
            &format!("/api/v1/sessions/{id}/simulator/inbound"),
            json!({"from": from, "text": text}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// An owner with a plan and two ready numbers answers a customer in the
/// browser, sees the unread count and the reply's statuses change live,
/// automates the answer to a question (the test box shows a match and a
/// non-match) and sees it answer and count, then sets the active hours
/// from a preset and pauses and resumes sending; the rule is deleted. Screenshots of every page
/// stay in `console/test-results/inbox/`; any console error fails it.
#[tokio::test]
async fn an_owner_answers_a_customer_and_automates_replies_in_the_browser() {
    // Arrange: an owner with a plan and a ready number.
    let Some((browser, app)) = Browser::with_app(|_| {}).await else {
        return;
    };
    let admin = app.admin().await;
    let owner = app.tenant("Toko Inbox").await;
    let plan = plan(&admin).await;
    grant_plan(&admin, &owner, &plan).await;
    let number = ready_number(&owner, "CS Jakarta 1", "+6281200000001").await;
    // A second number: the inbox is filtered by number.
    ready_number(&owner, "CS Bandung", "+6281200000002").await;

    // Act + Assert: the journey, answering its steps.
    browser
        .run(
            &app,
            "inbox.mjs",
            &[
                ("WABLAST_CONSOLE_EMAIL", &owner.email),
                ("WABLAST_CONSOLE_PASSWORD", "password-of-{name}"),
                ("WABLAST_CONSOLE_CUSTOMER", CUSTOMER),
            ],
            async |step, _data| match step {
                "inbox-open" => {
                    inbound(&owner, &number, CUSTOMER, "Halo kak, kaos hitam masih ada?").await;
                }
                "rule-saved" => {
                    inbound(&owner, &number, CUSTOMER, "Berapa harga kaos yang XL?").await;
                }
                other => panic!("unknown step {other}"),
            },
        )
        .await;

    // Assert: what the browser did is what the API holds.
    let (_, chats) = owner.get("/api/v1/chats").await;
    let chat = &chats["items"][0];
    assert_eq!(
        (chat["peer"].as_str(), chat["unread"].as_i64()),
        (Some(CUSTOMER), Some(0)),
        "{chats}"
    );
    let (_, sent) = owner
        .get(&format!(
            "/api/v1/messages?session_id={number}&direction=out"
        ))
        .await;
    let texts: Vec<&str> = sent["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert!(
        texts.contains(&"Masih ada, Kak. Mau ukuran apa?"),
        "the reply: {sent}"
    );
    assert!(
        texts.iter().any(|t| t.starts_with("Harga kaos polos")),
        "the auto-reply: {sent}"
    );
    let (_, schedule) = owner.get("/api/v1/schedule").await;
    assert_eq!(
        schedule,
        json!({
            "timezone": "Asia/Jakarta",
            "windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "18:00"}],
            "override": "none",
        })
    );
}

/// Every regex case of the console's test box is decided there as the
/// server's auto-responder decides it: refused when the server's compiler
/// refuses it, a match exactly when its regex matches.
#[test]
fn the_test_box_regex_cases_are_the_servers_decisions() {
    let path = console_dir().join("src/lib/autoReply.cases.json");
    let cases: Vec<(String, String, String, String)> =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("the cases")).expect("JSON");
    let regexes: Vec<&(String, String, String, String)> =
        cases.iter().filter(|c| c.0 == "regex").collect();
    assert!(regexes.len() > 100, "{} regex cases", regexes.len());
    for (_, pattern, text, expected) in regexes {
        let decided = match wablast_workflows::auto_replies::compile(pattern) {
            Err(_) => "invalid",
            Ok(regex) if regex.is_match(text) => "match",
            Ok(_) => "no_match",
        };
        assert_eq!(decided, expected, "{pattern:?} on {text:?}");
    }
}
