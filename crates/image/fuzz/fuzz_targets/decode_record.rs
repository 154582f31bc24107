//! Feeds arbitrary bytes to the header parser and the record decoder.
//!
//! Run with `cargo +nightly fuzz run decode_record` from `crates/image`.
//! Any panic is a bug: both functions must reject every malformed input
//! with an error. A record that decodes must also survive the JSON round
//! trip unchanged.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use stasis_image::format::parse_header;
use stasis_image::{decode_record_file, encode_record_json};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz-input");
    let _ = parse_header(data, path);

    if let Ok((kind, value)) = decode_record_file(data, path) {
        let encoded = encode_record_json(kind, &value).expect("a decoded record encodes again");
        let (kind_again, value_again) =
            decode_record_file(&encoded, path).expect("an encoded record decodes again");
        assert_eq!(kind, kind_again);
        assert_eq!(value, value_again);
    }
});
