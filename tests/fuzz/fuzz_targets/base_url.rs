//! Arbitrary integration settings text: base URLs and keys parse or are refused, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(url) = actionbox_runtime::BaseUrl::parse(text) {
        // Whatever is accepted prints to something that parses the same.
        let again = actionbox_runtime::BaseUrl::parse(&url.to_string()).expect("printed base URL parses");
        assert_eq!(url, again);
    }
    if let Ok(key) = actionbox_runtime::ApiKey::new(text) {
        assert_eq!(key.to_string(), "[redacted]");
    }
});
