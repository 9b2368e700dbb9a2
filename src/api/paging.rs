//! What every list shares: `limit` (1–200, default 50) and the `next`
//! cursor passed back as `after`.

use crate::{
    domain::{MAX_PAGE, Rule, Violation, Violations},
    error::ApiError,
};

/// `limit` of a list: 1–200, 50 when absent.
pub(super) fn page_limit(limit: Option<i64>) -> Result<u64, ApiError> {
    const DEFAULT: u64 = 50;
    let Some(limit) = limit else {
        return Ok(DEFAULT);
    };
    u64::try_from(limit)
        .ok()
        .filter(|limit| (1..=MAX_PAGE).contains(limit))
        .ok_or_else(|| {
            Violations(vec![Violation::new(
                "limit",
                Rule::OutOfRange {
                    min: 1,
                    max: MAX_PAGE,
                },
            )])
            .into()
        })
}
