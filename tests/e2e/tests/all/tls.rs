//! The https path (the default for real users) really verifies certificates:
//! a server with a self-signed certificate is refused, whatever it serves.

use actionbox_e2e::load_action;
use actionbox_runtime::{ApiKey, BaseUrl, IntegrationSettings, InvokeError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread")]
async fn self_signed_certificate_is_refused() {
    // A TLS server on loopback with a certificate no public root vouches for.
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let cert = certified.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicUsize::new(0));
    let (h, c) = (handshakes.clone(), completed.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            h.fetch_add(1, Ordering::Relaxed);
            if acceptor.accept(stream).await.is_ok() {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
    });

    let (_engine, action) = load_action().await;
    let base = BaseUrl::parse(&format!("https://localhost:{port}")).expect("url");
    let settings = IntegrationSettings::new(base, Some(ApiKey::new("TEST_tls_key").expect("key")));
    let report = action.invoke(&settings, "trackOrder", r#"{"order_id":"1001"}"#).await;
    match &report.outcome {
        Err(InvokeError::Upstream { message, status, .. }) => {
            assert!(message.contains("TLS"), "{message}");
            assert_eq!(*status, None);
        }
        other => panic!("expected an upstream TLS failure, got {other:?}"),
    }
    assert!(handshakes.load(Ordering::Relaxed) >= 1, "the client really tried TLS");
    assert_eq!(
        completed.load(Ordering::Relaxed),
        0,
        "no handshake was accepted, so the key was never sent"
    );
}
