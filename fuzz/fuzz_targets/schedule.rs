//! Beat schedule documents: `validate_document` on arbitrary JSON (what the API checks before
//! storing), then, for a valid one, beat's own reading of it and its plan at a few times.
#![no_main]

use std::time::Duration;

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use maestro_contract::schedule::{Schedule, validate_document};
use mongodb::bson::Bson;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let valid = validate_document(&doc).is_ok();
    let Ok(Bson::Document(mut d)) = Bson::try_from(doc) else {
        return;
    };
    if !d.contains_key("_id") {
        d.insert("_id", "s-1");
    }
    let parsed = Schedule::from_document(&d);
    if valid {
        assert!(
            parsed.is_ok(),
            "valid for the API, refused by beat: {:?}",
            parsed.err()
        );
    }
    let Ok(s) = parsed else { return };
    for secs in [0i64, 1_800_000_000, 253_402_300_799] {
        let now: DateTime<Utc> = DateTime::from_timestamp(secs, 0).expect("valid");
        let _ = s.plan(now, Duration::from_secs(60));
        let _ = s.cadence.next_after(now);
    }
});
