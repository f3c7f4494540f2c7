//! Query parameters and list cursors.
//!
//! The edge already checked the query against the route's parameter list;
//! the core checks it again with the same function (it costs nothing and the
//! core must not depend on the edge for correctness), then reads the values.
//! Cursors are opaque to clients: base64url of the last item's key.

use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use schemas::problem::FieldError;
use schemas::query::check_query;

use crate::context::RequestCtx;
use crate::error::ApiError;

/// The page size when `?limit` is absent.
pub(crate) const DEFAULT_LIMIT: u32 = 50;

/// A request's checked query parameters.
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// Checks `raw` against the matched route's parameters.
    pub(crate) fn parse(ctx: &RequestCtx, raw: Option<&str>) -> Result<Self, ApiError> {
        let raw = raw.unwrap_or("");
        let allowed = ctx.route().map_or(&[][..], |r| r.query);
        check_query(raw, allowed).map_err(ApiError::Validation)?;
        Ok(Self(
            form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }

    /// A parameter's value.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A parameter parsed as `T`; a value that does not parse is a 400
    /// naming `query.<name>`.
    pub(crate) fn parsed<T: FromStr>(&self, name: &str, message: &str) -> Result<Option<T>, ApiError> {
        self.get(name)
            .map(|v| v.parse::<T>().map_err(|_| invalid(name, message)))
            .transpose()
    }

    /// `?limit`, already range-checked by [`check_query`].
    pub(crate) fn limit(&self) -> Result<u32, ApiError> {
        Ok(self
            .parsed::<u32>("limit", "must be a whole number from 1 to 500")?
            .unwrap_or(DEFAULT_LIMIT))
    }

    /// `?cursor`, decoded and parsed as the list's key type.
    pub(crate) fn cursor<T: FromStr>(&self) -> Result<Option<T>, ApiError> {
        let Some(cursor) = self.get("cursor") else {
            return Ok(None);
        };
        let bad = || invalid("cursor", "must be a cursor from a previous page of this list");
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        text.parse::<T>().map(Some).map_err(|_| bad())
    }
}

fn invalid(name: &str, message: &str) -> ApiError {
    ApiError::Validation(vec![FieldError::new(format!("query.{name}"), message)])
}

/// A page of `listed`, with the cursor after its last item when there is
/// more; `key` is what the list is ordered by.
pub(crate) fn page<T>(listed: crate::store::Listed<T>, key: impl Fn(&T) -> String) -> schemas::api::Page<T> {
    let next_cursor = match (listed.more, listed.items.last()) {
        (true, Some(last)) => Some(cursor_after(&key(last))),
        _ => None,
    };
    schemas::api::Page {
        items: listed.items,
        next_cursor,
    }
}

/// The cursor that continues after `key`.
pub(crate) fn cursor_after(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key.as_bytes())
}
