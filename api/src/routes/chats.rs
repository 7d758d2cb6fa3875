//! The inbox: one chat per session and peer, the latest first, and
//! marking a chat read.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wablast_domain::types::SessionId;
use wablast_projections::queries::chats::{self, ChatView};
use wablast_projections::queries::history::HistoryCursor;

use crate::auth::Caller;
use crate::consistency::After;
use crate::error::ErrorBody;
use crate::extract::{Path, Query};
use crate::list::{List, ListParams};
use crate::{ApiError, AppState};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_chats))
        .routes(routes!(read_chat))
}

/// The projections the inbox reads.
const READS: &[&str] = &["chats", "messages", "inbound"];

/// Which chats to list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChatParams {
    /// Rows per page: 1 to 500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page; none for the first page.
    pub cursor: Option<String>,
    /// One session's chats.
    pub session_id: Option<Uuid>,
    /// The chats with this peer: a number in any form, or a chat id.
    #[param(example = "+6281234567890")]
    pub peer: Option<String>,
}

/// A conversation of one session with one peer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Chat {
    /// Its id.
    pub id: Uuid,
    /// The session.
    pub session_id: Uuid,
    /// The other side: E.164, or the chat id the driver gave when it could
    /// not tell the number.
    #[schema(example = "+6281234567890")]
    pub peer: String,
    /// The latest message's text (or caption), sent or received; null for
    /// an attachment without one, or a campaign's message not sent yet.
    pub last_message: Option<String>,
    /// The latest message (`GET /api/v1/messages/{id}`).
    pub last_message_id: Uuid,
    /// `in` (received) or `out` (sent).
    #[schema(example = "in")]
    pub last_direction: String,
    /// When it was queued or received.
    pub last_at: DateTime<Utc>,
    /// Messages received since the chat was last read.
    pub unread: i64,
}

impl From<ChatView> for Chat {
    fn from(v: ChatView) -> Self {
        Self {
            id: v.id,
            session_id: v.session_id,
            peer: v.peer,
            last_message: v.last_message,
            last_message_id: v.last_message_id,
            last_direction: v.last_direction,
            last_at: v.last_at,
            unread: v.unread,
        }
    }
}

/// The tenant's chats (one per session and peer), the latest first, with
/// their unread counts.
#[utoipa::path(get, path = "/api/v1/chats", tag = "messages",
    security(("bearer" = []), ("api_key" = [])),
    params(ChatParams),
    responses(
        (status = 200, description = "A page of chats, the latest first", body = List<Chat>),
        (status = 400, description = "Bad limit, cursor, session_id or peer", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn list_chats(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Query(params): Query<ChatParams>,
) -> Result<axum::Json<List<Chat>>, ApiError> {
    let page = ListParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .page::<HistoryCursor>()?;
    let peer = params
        .peer
        .as_deref()
        .map(super::messages::parse_peer)
        .transpose()?;
    after.wait(&state.db, READS).await?;
    let paged = chats::list(
        &state.db,
        caller.tenant_id,
        params.session_id.map(SessionId::from_uuid),
        peer.as_deref(),
        &page,
    )
    .await?;
    Ok(axum::Json(List::from_paged(paged, Chat::from)))
}

/// Marks a chat read: its messages received so far no longer count as
/// unread.
#[utoipa::path(post, path = "/api/v1/chats/{id}/read", tag = "messages",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The chat")),
    responses(
        (status = 204, description = "Read"),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such chat in the caller's tenant", body = ErrorBody),
    ))]
async fn read_chat(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    after.wait(&state.db, READS).await?;
    if chats::mark_read(&state.db, caller.tenant_id, id, Utc::now()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("chat"))
    }
}
