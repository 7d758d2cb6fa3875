//! Active hours: the default, a round trip, the override, bad input.

use reqwest::StatusCode;
use serde_json::json;

use crate::app::{TestApp, code};

#[tokio::test]
async fn a_schedule_never_set_is_jakarta_always_on() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;

    let (status, schedule) = budi.get("/api/v1/schedule").await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        schedule,
        json!({"timezone": "Asia/Jakarta", "windows": [], "override": "none"})
    );
}

#[tokio::test]
async fn active_hours_and_the_override_round_trip_per_tenant() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let siti = app.tenant("Toko Siti").await;
    let windows = json!([
        {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "18:00"},
        {"days": ["sat"], "start": "22:00", "end": "02:00"},
    ]);

    // Act
    let (status, set) = budi
        .put(
            "/api/v1/schedule",
            json!({"timezone": "Asia/Makassar", "windows": windows}),
        )
        .await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{set}");
    let expected = json!({"timezone": "Asia/Makassar", "windows": windows, "override": "none"});
    assert_eq!(set, expected);
    let (_, shown) = budi.get("/api/v1/schedule").await;
    assert_eq!(shown, expected);

    let (status, paused) = budi
        .post("/api/v1/schedule/override", json!({"mode": "pause"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["override"], "pause");
    assert_eq!(paused["windows"], windows);
    let (_, shown) = budi.get("/api/v1/schedule").await;
    assert_eq!(shown["override"], "pause");
    // Setting the hours keeps the override.
    let (_, set) = budi
        .put(
            "/api/v1/schedule",
            json!({"timezone": "Asia/Jakarta", "windows": []}),
        )
        .await;
    assert_eq!(
        set,
        json!({"timezone": "Asia/Jakarta", "windows": [], "override": "pause"})
    );
    for mode in ["activate", "none"] {
        let (status, body) = budi
            .post("/api/v1/schedule/override", json!({"mode": mode}))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["override"], mode);
    }
    let (_, shown) = budi.get("/api/v1/schedule").await;
    assert_eq!(
        shown,
        json!({"timezone": "Asia/Jakarta", "windows": [], "override": "none"})
    );

    // Another tenant's hours are its own.
    let (_, other) = siti.get("/api/v1/schedule").await;
    assert_eq!(
        other,
        json!({"timezone": "Asia/Jakarta", "windows": [], "override": "none"})
    );
}

#[tokio::test]
async fn bad_active_hours_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let window = |days: serde_json::Value, start: &str, end: &str| {
        json!([{"days": ["mon"], "start": "09:00", "end": "17:00"},
               {"days": days, "start": start, "end": end}])
    };

    for (body, field) in [
        (
            json!({"timezone": "Mars/Olympus", "windows": []}),
            "timezone",
        ),
        (
            json!({"timezone": "asia/jakarta", "windows": []}),
            "timezone",
        ),
        (
            json!({"timezone": "Asia/Jakarta", "windows": window(json!(["monday"]), "09:00", "17:00")}),
            "windows[1].days",
        ),
        (
            json!({"timezone": "Asia/Jakarta", "windows": window(json!([]), "09:00", "17:00")}),
            "windows[1].days",
        ),
        (
            json!({"timezone": "Asia/Jakarta", "windows": window(json!(["mon"]), "9:00", "17:00")}),
            "windows[1].start",
        ),
        (
            json!({"timezone": "Asia/Jakarta", "windows": window(json!(["mon"]), "09:00", "24:00")}),
            "windows[1].end",
        ),
        (
            json!({"timezone": "Asia/Jakarta",
                   "windows": vec![json!({"days": ["mon"], "start": "09:00", "end": "10:00"}); 101]}),
            "windows",
        ),
    ] {
        let (status, answer) = budi.put("/api/v1/schedule", body.clone()).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::BAD_REQUEST, "validation_failed"),
            "{field}: {answer}"
        );
        assert_eq!(answer["error"]["details"]["field"], field, "{answer}");
    }
    for body in [
        json!({"mode": "sleep"}),
        json!({}),
        json!({"mode": "pause", "until": "tomorrow"}),
    ] {
        let (status, answer) = budi.post("/api/v1/schedule/override", body.clone()).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::BAD_REQUEST, "validation_failed"),
            "{body}"
        );
    }

    // Nothing was set.
    let (_, shown) = budi.get("/api/v1/schedule").await;
    assert_eq!(
        shown,
        json!({"timezone": "Asia/Jakarta", "windows": [], "override": "none"})
    );
}
