//! How a resource's timestamps are written in JSON.
//!
//! Exactly chrono's own serde form (RFC 3339, UTC as `Z`, as many fractional digits as the value
//! needs: none, 3, 6 or 9), written in one piece. chrono's `Serialize` prints through
//! `Serializer::collect_str`, which in serde_json escapes and appends each of the twenty-odd pieces
//! the formatter writes separately; a page of twenty patients has forty timestamps, and that was
//! about a twentieth of the server's time under list patients (BENCHMARKS.md).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

/// `#[serde(serialize_with = "timestamp::rfc3339")]` on a `DateTime<Utc>` field.
pub fn rfc3339<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    // `AutoSi` with `Z` is the form chrono's `Serialize` writes (its `FormatIso8601`).
    serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[derive(serde::Serialize)]
    struct Ours(#[serde(serialize_with = "rfc3339")] DateTime<Utc>);

    #[test]
    fn writes_what_chrono_writes() {
        let second = Utc.with_ymd_and_hms(2026, 12, 6, 23, 59, 59).unwrap();
        let cases = [
            second,
            second + chrono::Duration::milliseconds(120),
            second + chrono::Duration::microseconds(123_456),
            second + chrono::Duration::nanoseconds(1),
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap(),
            // A leap second, which chrono keeps in the nanoseconds.
            Utc.from_utc_datetime(
                &chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
                    .unwrap()
                    .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
                    .unwrap(),
            ),
        ];
        for at in cases {
            let chrono_form = serde_json::to_string(&at).unwrap();
            assert_eq!(serde_json::to_string(&Ours(at)).unwrap(), chrono_form, "{at:?}");
        }
        assert_eq!(serde_json::to_string(&Ours(second)).unwrap(), "\"2026-12-06T23:59:59Z\"");
    }
}
