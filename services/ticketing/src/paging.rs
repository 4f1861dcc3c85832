//! Keyset pages of a buyer's orders and tickets: newest first, continued below the last id
//! of the page before (UUIDv7 ids sort by time), with an opaque token instead of an offset.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use eventhive_domain::rules::PageSize;
use eventhive_platform::FieldError;

use crate::error::TicketingError;

/// Which page a list request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Page {
    pub size: PageSize,
    /// The id to continue below.
    pub after: String,
}

impl Page {
    /// From a request's page size (0: the default) and page token (empty: the first page).
    pub(crate) fn from_wire(page_size: i64, page_token: &str) -> Result<Self, TicketingError> {
        let size = PageSize::from_wire(page_size)?;
        if page_token.is_empty() {
            // Above every UUID.
            return Ok(Self { size, after: "g".into() });
        }
        let invalid = || TicketingError::from(FieldError::new("page_token", "is not a page token this API gave out"));
        let bytes = URL_SAFE_NO_PAD.decode(page_token).map_err(|_| invalid())?;
        let id = String::from_utf8(bytes).map_err(|_| invalid())?;
        uuid::Uuid::parse_str(&id).map_err(|_| invalid())?;
        Ok(Self { size, after: id })
    }

    /// How many rows to read: one more than the page holds, to know whether another follows.
    pub(crate) fn probe(&self) -> i64 {
        self.size.get() + 1
    }

    /// The page's rows (the probe row dropped) and the token of the next page, if any.
    pub(crate) fn split<T>(&self, mut rows: Vec<T>, id: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
        let limit = usize::try_from(self.size.get()).unwrap_or(0);
        if rows.len() > limit {
            rows.truncate(limit);
            let token = rows.last().map(|last| URL_SAFE_NO_PAD.encode(id(last)));
            (rows, token)
        } else {
            (rows, None)
        }
    }
}
