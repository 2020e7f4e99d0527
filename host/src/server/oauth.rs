//! OAuth 2.1 access tokens for remote MCP: the JWTs of one authorization
//! server the operator trusts (`--oauth-issuer URL --oauth-jwks FILE`).
//!
//! The MCP endpoint is a resource server (MCP authorization, RFC 9728): it
//! never issues tokens, it only checks them. A token is accepted when
//! - its signature verifies with a key of the operator's JWKS file, chosen by
//!   `kid`, with the one algorithm that key is for (asymmetric only: a JWKS
//!   with a shared secret is refused at start, and `alg: none` or `HS256`
//!   never verifies — the key, not the token, names the algorithm);
//! - `iss` is the configured issuer exactly;
//! - `aud` is this endpoint's own URL exactly — a string, or a list of that
//!   one URL (RFC 8707). A token minted for another resource, even by the same
//!   issuer and even one that also names this one, is refused: this server
//!   never becomes a place where a token for something else is spent, and it
//!   never passes a token on (actions see only their integration's key);
//! - `exp` is present and not past, `nbf` (when present) not in the future,
//!   both with [`CLOCK_LEEWAY_SECS`];
//! - its `scope` claim (space-separated, RFC 9068) is read into [`Scopes`];
//!   whether they cover a request is the endpoint's question.
//!
//! Why a token was refused is said in words that contain nothing of the token.

use anyhow::{bail, Context, Result};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// The scope that lists tools (and discovers the server).
pub const SCOPE_LIST: &str = "actions:list";
/// The scope that calls tools (and lists them).
pub const SCOPE_CALL: &str = "actions:call";
/// Every scope this resource server knows, as RFC 9728 `scopes_supported`.
pub const SCOPES_SUPPORTED: [&str; 2] = [SCOPE_LIST, SCOPE_CALL];

/// Seconds of clock difference allowed on `exp` and `nbf`.
pub const CLOCK_LEEWAY_SECS: u64 = 60;
/// Largest JWKS file read, in bytes: a few keys are a few KiB.
const MAX_JWKS_BYTES: u64 = 256 * 1024;
/// Most keys kept from a JWKS file: each token is checked against one key
/// (by `kid`), but the set is searched per request.
const MAX_KEYS: usize = 64;
/// Longest token looked at, in bytes; real access tokens are ~1 KiB.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// One verification key of the issuer.
struct IssuerKey {
    /// The JWK `kid`, matched against the token header's.
    kid: Option<String>,
    /// The only algorithm a token verified with this key may use.
    algorithm: Algorithm,
    key: DecodingKey,
}

/// The authorization server the operator trusts, and its public keys.
pub struct TokenIssuer {
    issuer: String,
    keys: Vec<IssuerKey>,
}

/// The scopes a token grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(BTreeSet<String>);

impl Scopes {
    /// Scopes from an RFC 6749 space-separated list.
    pub fn parse(list: &str) -> Self {
        Self(list.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect())
    }

    /// Whether `scope` is among them.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }
}

/// Why a token was refused: words for `error_description`, free of the
/// token's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejected {
    /// Not a JWT, or too long to be one.
    Malformed,
    /// Its `kid` names no key of the issuer (or names none when the issuer
    /// has several).
    UnknownKey,
    /// Signature, algorithm or key type do not verify.
    BadSignature,
    /// `exp` is past (or missing).
    Expired,
    /// `nbf` is in the future.
    NotYetValid,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// `aud` is not exactly this resource.
    WrongAudience,
    /// A required claim is missing or has the wrong type.
    BadClaims,
}

impl TokenRejected {
    /// The RFC 6750 `error_description`, safe to send and to log.
    pub fn description(self) -> &'static str {
        match self {
            Self::Malformed => "the token is not a JWT access token",
            Self::UnknownKey => "the token's kid names no key of the trusted issuer",
            Self::BadSignature => "the token's signature does not verify with the trusted issuer's keys",
            Self::Expired => "the token has expired; get a new one from the authorization server",
            Self::NotYetValid => "the token is not valid yet (nbf)",
            Self::WrongIssuer => "the token was issued by another authorization server",
            Self::WrongAudience => "the token was issued for another resource (aud); request one for this MCP URL",
            Self::BadClaims => "the token lacks a required claim (iss, aud, exp) or one has the wrong type",
        }
    }
}

/// The claims this server reads; the library checks `exp`/`nbf`/`iss`.
#[derive(Deserialize)]
struct Claims {
    aud: Value,
    #[serde(default)]
    scope: Option<String>,
}

impl TokenIssuer {
    /// Trust tokens of `issuer` signed with the keys in the JWKS file `jwks`.
    pub fn load(issuer: &str, jwks: &Path) -> Result<Self> {
        if issuer.trim().is_empty() || issuer.trim() != issuer {
            bail!("--oauth-issuer must be the issuer URL exactly as its tokens' `iss` claim says it");
        }
        let file = std::fs::File::open(jwks).with_context(|| format!("cannot open --oauth-jwks {}", jwks.display()))?;
        let mut text = String::new();
        use std::io::Read;
        file.take(MAX_JWKS_BYTES + 1)
            .read_to_string(&mut text)
            .with_context(|| format!("cannot read --oauth-jwks {}", jwks.display()))?;
        if text.len() as u64 > MAX_JWKS_BYTES {
            bail!(
                "--oauth-jwks {} is larger than {} KiB; it should hold the issuer's public keys only",
                jwks.display(),
                MAX_JWKS_BYTES / 1024
            );
        }
        Self::from_jwks(issuer, &text).with_context(|| format!("--oauth-jwks {}", jwks.display()))
    }

    /// Trust tokens of `issuer` signed with the keys of the JWKS document `text`.
    pub fn from_jwks(issuer: &str, text: &str) -> Result<Self> {
        let set: JwkSet = serde_json::from_str(text)
            .context("not a JWKS document ({\"keys\": [...]}, RFC 7517); fetch it from the issuer's jwks_uri")?;
        if set.keys.is_empty() {
            bail!("the key set is empty");
        }
        if set.keys.len() > MAX_KEYS {
            bail!("the key set has {} keys; at most {MAX_KEYS} are read", set.keys.len());
        }
        let keys = set
            .keys
            .iter()
            .enumerate()
            .map(|(i, jwk)| issuer_key(jwk).with_context(|| format!("key {} (kid {:?})", i + 1, jwk.common.key_id)))
            .collect::<Result<Vec<_>>>()?;
        if keys.len() > 1 && keys.iter().any(|k| k.kid.is_none()) {
            bail!("with several keys, each needs a `kid` so a token can say which one signed it");
        }
        Ok(Self {
            issuer: issuer.to_string(),
            keys,
        })
    }

    /// The issuer, as RFC 9728 `authorization_servers` names it.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Whether `token` has the shape of a JWS (three base64url parts), so a
    /// caller can tell it from other bearer tokens.
    pub fn looks_like_jwt(token: &str) -> bool {
        token.len() <= MAX_TOKEN_BYTES
            && token.split('.').count() == 3
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    }

    /// The scopes `token` grants on the resource `audience`, or why it grants
    /// nothing.
    pub fn verify(&self, token: &str, audience: &str) -> Result<Scopes, TokenRejected> {
        if !Self::looks_like_jwt(token) {
            return Err(TokenRejected::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRejected::Malformed)?;
        let key = match &header.kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid.as_str())),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
        .ok_or(TokenRejected::UnknownKey)?;
        if header.alg != key.algorithm {
            return Err(TokenRejected::BadSignature);
        }
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = CLOCK_LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        // `aud` is checked below, exactly: the library accepts any overlap.
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => TokenRejected::Expired,
                K::ImmatureSignature => TokenRejected::NotYetValid,
                K::InvalidIssuer => TokenRejected::WrongIssuer,
                K::MissingRequiredClaim(_) | K::Json(_) => TokenRejected::BadClaims,
                K::InvalidSignature | K::InvalidAlgorithm | K::InvalidAlgorithmName | K::InvalidKeyFormat => {
                    TokenRejected::BadSignature
                }
                _ => TokenRejected::Malformed,
            }
        })?;
        let for_this_resource = match &data.claims.aud {
            Value::String(aud) => aud == audience,
            Value::Array(auds) => auds.len() == 1 && auds[0].as_str() == Some(audience),
            _ => false,
        };
        if !for_this_resource {
            return Err(TokenRejected::WrongAudience);
        }
        Ok(Scopes::parse(data.claims.scope.as_deref().unwrap_or("")))
    }
}

/// The verification key of `jwk`, bound to the one algorithm it is for.
fn issuer_key(jwk: &Jwk) -> Result<IssuerKey> {
    let declared = jwk.common.key_algorithm;
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => match declared {
            None | Some(KeyAlgorithm::RS256) => Algorithm::RS256,
            Some(KeyAlgorithm::RS384) => Algorithm::RS384,
            Some(KeyAlgorithm::RS512) => Algorithm::RS512,
            Some(KeyAlgorithm::PS256) => Algorithm::PS256,
            Some(KeyAlgorithm::PS384) => Algorithm::PS384,
            Some(KeyAlgorithm::PS512) => Algorithm::PS512,
            Some(other) => bail!("an RSA key cannot be for {other:?}"),
        },
        AlgorithmParameters::EllipticCurve(ec) => match (&ec.curve, declared) {
            (EllipticCurve::P256, None | Some(KeyAlgorithm::ES256)) => Algorithm::ES256,
            (EllipticCurve::P384, None | Some(KeyAlgorithm::ES384)) => Algorithm::ES384,
            (curve, alg) => {
                bail!("EC keys on {curve:?} for {alg:?} are not supported; use P-256 (ES256) or P-384 (ES384)")
            }
        },
        AlgorithmParameters::OctetKeyPair(_) => match declared {
            None | Some(KeyAlgorithm::EdDSA) => Algorithm::EdDSA,
            Some(other) => bail!("an OKP key cannot be for {other:?}"),
        },
        AlgorithmParameters::OctetKey(_) => bail!(
            "a shared secret (kty \"oct\") cannot be in the JWKS of a resource server: whoever holds it could mint \
             tokens; publish the issuer's public keys only"
        ),
    };
    let key = DecodingKey::from_jwk(jwk).context("the key's parameters are not valid")?;
    Ok(IssuerKey {
        kid: jwk.common.key_id.clone(),
        algorithm,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://issuer.test";

    #[test]
    fn a_shared_secret_in_the_key_set_is_refused_at_start() {
        let jwks = r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}"#;
        let e = TokenIssuer::from_jwks(ISSUER, jwks).err().expect("refused");
        assert!(format!("{e:#}").contains("shared secret"), "{e:#}");
    }

    #[test]
    fn several_keys_each_need_a_kid() {
        let key = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
        let jwks = format!(r#"{{"keys": [{key}, {key}]}}"#);
        let e = TokenIssuer::from_jwks(ISSUER, &jwks).err().expect("refused");
        assert!(format!("{e:#}").contains("kid"), "{e:#}");
        assert!(TokenIssuer::from_jwks(ISSUER, &format!(r#"{{"keys": [{key}]}}"#)).is_ok());
    }

    #[test]
    fn what_is_not_a_jwt_is_malformed_and_never_parsed() {
        let key = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
        let issuer = TokenIssuer::from_jwks(ISSUER, &format!(r#"{{"keys": [{key}]}}"#)).expect("loads");
        for token in ["", "abx_1_secret", "a.b", "a.b.c.d", "a b.c.d", &"a.".repeat(5000)] {
            assert_eq!(
                issuer.verify(token, "https://r"),
                Err(TokenRejected::Malformed),
                "{token:.20}"
            );
        }
        // `alg: none` with an empty signature: the key says ES256.
        let none = "eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2lzc3Vlci50ZXN0In0.";
        assert!(issuer.verify(none, "https://r").is_err());
    }

    #[test]
    fn scopes_are_a_space_separated_set() {
        let s = Scopes::parse("actions:list  actions:call other");
        assert!(s.contains(SCOPE_LIST) && s.contains(SCOPE_CALL) && s.contains("other"));
        assert!(!s.contains("actions"));
        assert!(!Scopes::parse("").contains(""));
    }
}
