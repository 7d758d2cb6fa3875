//! `admin`: not built yet (issue #5).

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}
