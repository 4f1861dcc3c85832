//! Admission tokens: what the waiting room hands an admitted buyer, and what ticketing checks
//! before it holds tickets for an event with a waiting room. A token is bound to one buyer,
//! one event and an expiry, and signed with the room's Ed25519 key, so whoever has the public
//! half verifies it without asking the waiting room.
//!
//! Format: `base64url(claims ‖ signature)`, no padding; claims = `0x01` ‖ event id (16 bytes)
//! ‖ buyer id (16 bytes) ‖ expiry (Unix milliseconds, 8 bytes big-endian); signature = Ed25519
//! over the claims.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};

use crate::{EventId, UserId};

/// The header that carries a token on `POST /v1/orders`.
pub const HEADER: &str = "Admission-Token";

const FORMAT_VERSION: u8 = 1;
const CLAIMS_LEN: usize = 1 + 16 + 16 + 8;
const SIGNATURE_LEN: usize = 64;

/// What a token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    pub event_id: EventId,
    pub buyer_id: UserId,
    /// Unix milliseconds; the token is worthless from then on.
    pub expires_at_ms: i64,
}

/// Why a token is refused; every reason answers the same (`admission-required`), the reason
/// is for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no admission token")]
    Missing,
    #[error("the admission token is not genuine")]
    Forged,
    #[error("the admission token has expired")]
    Expired,
    #[error("the admission token is for another buyer or event")]
    NotYours,
}

impl Admission {
    fn claims(&self) -> [u8; CLAIMS_LEN] {
        let mut claims = [0u8; CLAIMS_LEN];
        claims[0] = FORMAT_VERSION;
        claims[1..17].copy_from_slice(self.event_id.as_uuid().as_bytes());
        claims[17..33].copy_from_slice(self.buyer_id.as_uuid().as_bytes());
        claims[33..].copy_from_slice(&self.expires_at_ms.to_be_bytes());
        claims
    }

    /// The token, signed with `key`.
    pub fn sign(&self, key: &SigningKey) -> String {
        let claims = self.claims();
        let mut token = Vec::with_capacity(CLAIMS_LEN + SIGNATURE_LEN);
        token.extend_from_slice(&claims);
        token.extend_from_slice(key.pair.sign(&claims).as_ref());
        URL_SAFE_NO_PAD.encode(token)
    }

    /// Checks `token` (absent: `Missing`) for `buyer_id` and `event_id` at `now_ms` against the
    /// room's public key (raw, base64url).
    pub fn verify(
        token: Option<&str>,
        public_key: &str,
        event_id: EventId,
        buyer_id: UserId,
        now_ms: i64,
    ) -> Result<Admission, Refusal> {
        let token = token.map(str::trim).filter(|t| !t.is_empty()).ok_or(Refusal::Missing)?;
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| Refusal::Forged)?;
        let key = URL_SAFE_NO_PAD.decode(public_key).map_err(|_| Refusal::Forged)?;
        if bytes.len() != CLAIMS_LEN + SIGNATURE_LEN || bytes[0] != FORMAT_VERSION {
            return Err(Refusal::Forged);
        }
        let (claims, signature) = bytes.split_at(CLAIMS_LEN);
        UnparsedPublicKey::new(&ED25519, key).verify(claims, signature).map_err(|_| Refusal::Forged)?;
        let uuid = |range: std::ops::Range<usize>| uuid::Uuid::from_slice(&claims[range]).map_err(|_| Refusal::Forged);
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&claims[33..]);
        let admission = Admission {
            event_id: EventId::from_uuid(uuid(1..17)?),
            buyer_id: UserId::from_uuid(uuid(17..33)?),
            expires_at_ms: i64::from_be_bytes(expiry),
        };
        if admission.event_id != event_id || admission.buyer_id != buyer_id {
            return Err(Refusal::NotYours);
        }
        if admission.expires_at_ms <= now_ms {
            return Err(Refusal::Expired);
        }
        Ok(admission)
    }
}

/// A room's signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl SigningKey {
    /// A fresh key, as PKCS#8 (base64url), to be stored.
    pub fn generate() -> Result<String, KeyError> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).map_err(|_| KeyError)?;
        Ok(URL_SAFE_NO_PAD.encode(pkcs8.as_ref()))
    }

    /// The key stored as PKCS#8 (base64url).
    pub fn from_pkcs8(stored: &str) -> Result<Self, KeyError> {
        let der = URL_SAFE_NO_PAD.decode(stored).map_err(|_| KeyError)?;
        Ed25519KeyPair::from_pkcs8(&der).map(|pair| Self { pair }).map_err(|_| KeyError)
    }

    /// The raw public key, base64url: what verifiers are given.
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.pair.public_key().as_ref())
    }
}

#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the admission signing key is invalid")]
pub struct KeyError;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_pkcs8(&SigningKey::generate().unwrap()).unwrap()
    }

    #[test]
    fn a_token_is_accepted_only_for_its_buyer_event_and_time() {
        let key = key();
        let public = key.public_key();
        let admission = Admission { event_id: EventId::new(), buyer_id: UserId::new(), expires_at_ms: 2_000 };
        let token = admission.sign(&key);
        let check = |token: Option<&str>, event, buyer, now| Admission::verify(token, &public, event, buyer, now);
        assert_eq!(check(Some(&token), admission.event_id, admission.buyer_id, 1_999), Ok(admission));
        assert_eq!(check(Some(&token), admission.event_id, admission.buyer_id, 2_000), Err(Refusal::Expired));
        assert_eq!(check(Some(&token), EventId::new(), admission.buyer_id, 0), Err(Refusal::NotYours));
        assert_eq!(check(Some(&token), admission.event_id, UserId::new(), 0), Err(Refusal::NotYours));
        assert_eq!(check(None, admission.event_id, admission.buyer_id, 0), Err(Refusal::Missing));
        let other = admission.sign(&self::key());
        assert_eq!(check(Some(&other), admission.event_id, admission.buyer_id, 0), Err(Refusal::Forged));
        let mut tampered = URL_SAFE_NO_PAD.decode(&token).unwrap();
        tampered[40] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(tampered);
        assert_eq!(check(Some(&tampered), admission.event_id, admission.buyer_id, 0), Err(Refusal::Forged));
        assert_eq!(check(Some("not a token"), admission.event_id, admission.buyer_id, 0), Err(Refusal::Forged));
    }
}
