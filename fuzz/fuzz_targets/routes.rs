//! `MAESTRO_ROUTES` (`task=queue,...`) parsing: every accepted override is in the table.
#![no_main]

use libfuzzer_sys::fuzz_target;


fuzz_target!(|data: &[u8]| {
    let Ok(spec) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(table) = maestro_contract::routes::maestro_with(spec) {
        let mut last = std::collections::BTreeMap::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (t, q) = item.split_once('=').expect("accepted items are task=queue");
            last.insert(t.trim(), q.trim());
        }
        for (t, q) in last {
            assert_eq!(table.queue_for(t), Some(q));
            assert!(table.has_queue(q));
        }
    }
});
