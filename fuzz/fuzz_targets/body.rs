//! The body JSON decode alone: `[args, kwargs, embed]` under a valid Celery header table.
#![no_main]

use std::sync::LazyLock;

use lapin::BasicProperties;
use libfuzzer_sys::fuzz_target;
use maestro_broker::TaskMessage;

static PROPS: LazyLock<BasicProperties> = LazyLock::new(|| {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_headers(maestro_fuzz::celery_headers())
});

fuzz_target!(|body: &[u8]| {
    if let Ok(msg) = TaskMessage::decode(&PROPS, body) {
        assert!(msg.args.get().trim_start().starts_with('['));
        assert!(msg.kwargs.get().trim_start().starts_with('{'));
        // What decoded re-encodes to a body that decodes to the same arguments.
        let again =
            TaskMessage::decode(&PROPS, &msg.encode_body()).expect("re-encoded body decodes");
        assert_eq!(again.args.get(), msg.args.get());
        assert_eq!(again.kwargs.get(), msg.kwargs.get());
        assert_eq!(again.embed, msg.embed);
    }
});
