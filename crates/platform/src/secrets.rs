//! The deployment's secret key, and what is made from it: keyed hashes (an idempotency
//! fingerprint of a card that nobody can brute-force without the key), encryption at rest
//! (private signing keys in the databases), and the short-lived tokens services present to
//! each other (a port reached from outside answers nothing without one).
//!
//! The key comes from `EVENTHIVE_SECRET_KEY` or, as Kubernetes mounts secrets, the file named
//! by `EVENTHIVE_SECRET_KEY_FILE`: at least 32 random bytes, base64. `eventhive serve` refuses
//! to start without it; `eventhive dev` makes one in its data directory. A key being replaced
//! goes in `EVENTHIVE_PREVIOUS_SECRET_KEY(_FILE)`: what it sealed still opens, and
//! `eventhive keys rotate` seals everything again with the current key.
//!
//! Each use gets a key of its own, derived from the secret key with HMAC-SHA256 and the use's
//! name, so that a value made for one purpose is worthless for another.

use std::{
    path::Path,
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use ring::{aead, digest, hmac, rand::SecureRandom};

use crate::config::{ConfigError, SecretText, Settings};

/// Metadata key of the token one service presents to another.
pub const SERVICE_TOKEN: &str = "x-eventhive-service-token";
/// How long a service token is accepted after it was made.
const SERVICE_TOKEN_TTL_SECS: u64 = 300;
/// How a sealed value starts, to tell it from a value stored before sealing existed.
const SEALED: &str = "sealed:v1:";
/// The fewest bytes a secret key may have.
const MIN_KEY_BYTES: usize = 32;

/// One secret key, with a short id that sealed values name it by.
#[derive(Clone)]
struct MasterKey {
    id: String,
    bytes: Vec<u8>,
}

impl MasterKey {
    fn parse(text: &str, variable: &str) -> Result<Self, ConfigError> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .map_err(|_| ConfigError::new(variable, "must be base64"))?;
        if bytes.len() < MIN_KEY_BYTES {
            return Err(ConfigError::new(variable, format!("must be at least {MIN_KEY_BYTES} bytes")));
        }
        let id = digest::digest(&digest::SHA256, &bytes).as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self { id, bytes })
    }

    /// The key for one purpose.
    fn derive(&self, purpose: &str) -> [u8; 32] {
        let root = hmac::Key::new(hmac::HMAC_SHA256, &self.bytes);
        let tag = hmac::sign(&root, format!("eventhive:{purpose}").as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(&tag.as_ref()[..32]);
        key
    }
}

/// The current secret key and, while one is being replaced, the previous one.
#[derive(Clone)]
pub struct Secrets {
    current: MasterKey,
    previous: Option<MasterKey>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").field("current", &self.current.id).finish_non_exhaustive()
    }
}

impl Secrets {
    /// The keys the settings name. A missing current key is an error naming the variable.
    pub fn load(settings: &Settings) -> Result<Self, ConfigError> {
        let current = read(
            settings.secret_key.as_ref().map(SecretText::expose),
            settings.secret_key_file.as_deref(),
            "secret_key",
        )?
        .ok_or_else(|| {
            ConfigError::new("secret_key", "is not set (nor EVENTHIVE_SECRET_KEY_FILE): see docs/security.md")
        })?;
        let previous = read(
            settings.previous_secret_key.as_ref().map(SecretText::expose),
            settings.previous_secret_key_file.as_deref(),
            "previous_secret_key",
        )?;
        Ok(Self { current, previous })
    }

    /// For `eventhive dev` and tests: with no key configured, the one in `data_dir/secret.key`,
    /// made on first use. Never used by `serve`.
    pub fn ensure_local_key(settings: &mut Settings) -> anyhow::Result<()> {
        if settings.secret_key.is_some() || settings.secret_key_file.is_some() {
            return Ok(());
        }
        let path = settings.data_dir.join("secret.key");
        if !path.exists() {
            std::fs::create_dir_all(&settings.data_dir).context("creating the data directory")?;
            write_private(&path, &Self::new_key_text()?)?;
        }
        settings.secret_key_file = Some(path);
        Ok(())
    }

    /// A new random secret key, as the settings take it (`eventhive keys generate`).
    pub fn new_key_text() -> anyhow::Result<String> {
        let mut bytes = [0u8; 32];
        ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| anyhow::anyhow!("no randomness"))?;
        Ok(STANDARD.encode(bytes))
    }

    /// A keyed hash of `data` for `purpose` (hex): equal inputs give equal hashes, and without
    /// the key the input cannot be guessed from the hash.
    pub fn keyed_hash(&self, purpose: &str, data: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.current.derive(purpose));
        hex(hmac::sign(&key, data).as_ref())
    }

    /// Encrypts `plaintext` for storage (ChaCha20-Poly1305, a random nonce, `purpose` bound in).
    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> anyhow::Result<String> {
        let key = aead_key(&self.current, purpose)?;
        let mut nonce = [0u8; aead::NONCE_LEN];
        ring::rand::SystemRandom::new().fill(&mut nonce).map_err(|_| anyhow::anyhow!("no randomness"))?;
        let mut sealed = plaintext.to_vec();
        key.seal_in_place_append_tag(aead::Nonce::assume_unique_for_key(nonce), aead::Aad::from(purpose), &mut sealed)
            .map_err(|_| anyhow::anyhow!("sealing failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{SEALED}{}:{}", self.current.id, URL_SAFE_NO_PAD.encode(out)))
    }

    /// Decrypts what [`Self::seal`] made, with whichever key sealed it. A value stored before
    /// sealing existed is returned as it is, marked as not sealed with the current key, so the
    /// caller seals it again.
    pub fn open(&self, purpose: &str, stored: &str) -> anyhow::Result<Opened> {
        let Some(rest) = stored.strip_prefix(SEALED) else {
            return Ok(Opened { plaintext: stored.as_bytes().to_vec(), current: false });
        };
        let (id, body) = rest.split_once(':').context("a sealed value without its key id")?;
        let master =
            [Some(&self.current), self.previous.as_ref()].into_iter().flatten().find(|key| key.id == id).with_context(
                || format!("sealed with key {id}, which is neither the current nor the previous secret key"),
            )?;
        let bytes = URL_SAFE_NO_PAD.decode(body).context("a sealed value that is not base64")?;
        anyhow::ensure!(bytes.len() > aead::NONCE_LEN, "a sealed value too short");
        let (nonce, sealed) = bytes.split_at(aead::NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| anyhow::anyhow!("bad nonce"))?;
        let mut buffer = sealed.to_vec();
        let plaintext = aead_key(master, purpose)?
            .open_in_place(nonce, aead::Aad::from(purpose), &mut buffer)
            .map_err(|_| anyhow::anyhow!("a sealed value does not open: altered, or sealed for another purpose"))?;
        Ok(Opened { plaintext: plaintext.to_vec(), current: master.id == self.current.id })
    }

    /// A token that says "a service of this deployment", good for five minutes.
    pub fn service_token(&self) -> String {
        let expires = unix_now() + SERVICE_TOKEN_TTL_SECS;
        format!("v1.{expires}.{}", service_tag(&self.current, expires))
    }

    /// Whether `token` was made by a service holding the current or the previous key, and has
    /// not expired.
    pub fn verify_service_token(&self, token: &str) -> bool {
        let mut parts = token.split('.');
        let (Some("v1"), Some(expires), Some(tag), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Ok(expires) = expires.parse::<u64>() else { return false };
        let now = unix_now();
        if expires < now || expires > now + SERVICE_TOKEN_TTL_SECS + 60 {
            return false;
        }
        [Some(&self.current), self.previous.as_ref()].into_iter().flatten().any(|key| {
            // A MAC compared in constant time (hmac::verify), not as strings.
            let Ok(tag) = decode_hex(tag) else { return false };
            let mac = hmac::Key::new(hmac::HMAC_SHA256, &key.derive("service-token"));
            hmac::verify(&mac, expires.to_string().as_bytes(), &tag).is_ok()
        })
    }
}

/// A decrypted value, and whether the current key sealed it.
pub struct Opened {
    pub plaintext: Vec<u8>,
    pub current: bool,
}

fn read(text: Option<&str>, file: Option<&Path>, name: &str) -> Result<Option<MasterKey>, ConfigError> {
    match (text, file) {
        (Some(text), _) => MasterKey::parse(text, name).map(Some),
        (None, Some(path)) => {
            let variable = format!("{name}_file");
            let text = std::fs::read_to_string(path)
                .map_err(|error| ConfigError::new(&variable, format!("cannot read {}: {error}", path.display())))?;
            MasterKey::parse(&text, &variable).map(Some)
        }
        (None, None) => Ok(None),
    }
}

fn aead_key(master: &MasterKey, purpose: &str) -> anyhow::Result<aead::LessSafeKey> {
    let unbound = aead::UnboundKey::new(&aead::CHACHA20_POLY1305, &master.derive(&format!("seal:{purpose}")))
        .map_err(|_| anyhow::anyhow!("bad sealing key"))?;
    Ok(aead::LessSafeKey::new(unbound))
}

fn service_tag(master: &MasterKey, expires: u64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &master.derive("service-token"));
    hex(hmac::sign(&key, expires.to_string().as_bytes()).as_ref())
}

fn decode_hex(text: &str) -> Result<Vec<u8>, ()> {
    if !text.len().is_multiple_of(2) {
        return Err(());
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2).ok_or(())?, 16).map_err(|_| ())).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(current: &str, previous: Option<&str>) -> Secrets {
        let settings = Settings {
            secret_key: Some(STANDARD.encode(current.repeat(32)).into()),
            previous_secret_key: previous.map(|p| STANDARD.encode(p.repeat(32)).into()),
            ..Settings::default()
        };
        Secrets::load(&settings).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_and_purpose_only() {
        let a = secrets("a", None);
        let sealed = a.seal("signing-key", b"private").unwrap();
        assert!(!sealed.contains("private"));
        let opened = a.open("signing-key", &sealed).unwrap();
        assert_eq!((opened.plaintext.as_slice(), opened.current), (b"private".as_slice(), true));
        assert!(a.open("another-purpose", &sealed).is_err());
        assert!(secrets("b", None).open("signing-key", &sealed).is_err());
        // After a rotation, the previous key still opens it, marked for sealing again.
        let rotated = secrets("b", Some("a"));
        assert!(!rotated.open("signing-key", &sealed).unwrap().current);
        // A value from before sealing existed comes back as it was, to be sealed.
        assert!(!a.open("signing-key", "plain").unwrap().current);
    }

    #[test]
    fn service_tokens_verify_under_the_same_key_only() {
        let a = secrets("a", None);
        let token = a.service_token();
        assert!(a.verify_service_token(&token));
        assert!(!secrets("b", None).verify_service_token(&token));
        assert!(secrets("b", Some("a")).verify_service_token(&token));
        assert!(!a.verify_service_token("v1.99999999999.00"));
        assert!(!a.verify_service_token(""));
    }

    #[test]
    fn keyed_hashes_differ_by_key_and_purpose() {
        let (a, b) = (secrets("a", None), secrets("b", None));
        assert_eq!(a.keyed_hash("p", b"x"), a.keyed_hash("p", b"x"));
        assert_ne!(a.keyed_hash("p", b"x"), b.keyed_hash("p", b"x"));
        assert_ne!(a.keyed_hash("p", b"x"), a.keyed_hash("q", b"x"));
    }

    #[test]
    fn a_short_key_is_refused_by_name() {
        let mut settings = Settings { secret_key: Some(STANDARD.encode([7u8; 16]).into()), ..Settings::default() };
        assert_eq!(Secrets::load(&settings).unwrap_err().variable, "EVENTHIVE_SECRET_KEY");
        settings.secret_key = None;
        assert_eq!(Secrets::load(&settings).unwrap_err().variable, "EVENTHIVE_SECRET_KEY");
    }
}
