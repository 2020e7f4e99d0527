//! Property tests over the integration settings the host parses.

use actionbox_runtime::deadline::{MAX_TIMEOUT_SECS, MIN_TIMEOUT_SECS};
use actionbox_runtime::{ActionTimeout, ApiKey, BaseUrl};
use proptest::prelude::*;

proptest! {
    #[test]
    fn base_url_parsing_never_panics(text in ".{0,80}") {
        let _ = BaseUrl::parse(&text);
    }

    #[test]
    fn accepted_base_urls_print_back_to_themselves(
        host in "[a-z]([a-z0-9-]{0,18}[a-z0-9])?(\\.[a-z]([a-z0-9-]{0,8}[a-z0-9])?){1,3}",
        port in prop::option::of(1u16..),
        prefix in "(/[a-z0-9_]{1,8}){0,3}",
    ) {
        let text = match port {
            Some(p) => format!("https://{host}:{p}{prefix}"),
            None => format!("https://{host}{prefix}"),
        };
        let parsed = BaseUrl::parse(&text).expect("valid https URL");
        let reparsed = BaseUrl::parse(&parsed.to_string()).expect("printed form parses");
        prop_assert_eq!(&parsed, &reparsed);
        prop_assert_eq!(parsed.non_public_scope(), actionbox_runtime::outbound::NonPublicScope::None);
        prop_assert_eq!(parsed.host, host);
    }

    #[test]
    fn plain_http_is_refused_for_public_hosts(host in "[a-z]{1,10}\\.(com|net|org)") {
        let url = format!("http://{host}");
        prop_assert!(BaseUrl::parse(&url).is_err());
    }

    #[test]
    fn timeout_accepts_exactly_10_to_180(secs in 0u64..1000) {
        let ok = ActionTimeout::from_secs(secs).is_ok();
        prop_assert_eq!(ok, (MIN_TIMEOUT_SECS..=MAX_TIMEOUT_SECS).contains(&secs));
    }

    #[test]
    fn api_keys_never_print(key in "[!-~]{1,60}") {
        let k = ApiKey::new(&key).expect("printable ASCII is a valid key");
        prop_assert_eq!(format!("{k}"), "[redacted]");
        prop_assert_eq!(format!("{k:?}"), "ApiKey([redacted])");
    }
}
