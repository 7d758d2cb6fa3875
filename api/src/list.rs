//! Lists: `?limit=` (default 50, max 500) and an opaque `?cursor=`,
//! answered as `{"items": [...], "next_cursor": "..."|null}`.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wablast_projections::queries::{Cursor, Page, Paged};

use crate::ApiError;

/// Which page of a list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Rows per page: 1 to 500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page; none for the first page.
    pub cursor: Option<String>,
}

impl ListParams {
    /// The page asked for; a cursor this list did not hand out is a 400.
    pub fn page<C: Cursor>(&self) -> Result<Page<C>, ApiError> {
        if self.limit == Some(0) {
            return Err(ApiError::validation("limit must be between 1 and 500"));
        }
        Page::parse(self.limit, self.cursor.as_deref())
            .map_err(|err| ApiError::validation(err.to_string()))
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T> {
    /// The rows.
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> List<T> {
    /// A page whose items are turned into their API form.
    pub fn from_paged<U>(paged: Paged<U>, f: impl FnMut(U) -> T) -> Self {
        let Paged { items, next_cursor } = paged;
        Self {
            items: items.into_iter().map(f).collect(),
            next_cursor,
        }
    }
}
