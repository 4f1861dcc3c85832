//! Password hashing with Argon2id. Hashing is deliberately slow, so it runs on the blocking
//! pool and never stalls the async workers that serve other requests. And it is deliberately
//! big (19 MiB a hash): as many run at once as there are cores, the rest wait their turn. More
//! would not finish sooner, and a storm of logins would hold hundreds of those buffers at once
//! (the blocking pool has 512 threads): the process stood at 1.2 GiB after 65 logins.

use std::sync::Arc;

use anyhow::Context;
use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
    password_hash::{SaltString, rand_core::OsRng},
};
use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct PasswordHashing {
    params: Params,
    /// A hash of a random password, verified against when an email is unknown so that a
    /// failed login takes as long whether or not the account exists.
    decoy_hash: String,
    /// One permit per core.
    slots: Arc<Semaphore>,
}

impl PasswordHashing {
    pub fn new(memory_kib: u32, iterations: u32) -> anyhow::Result<Self> {
        let params =
            Params::new(memory_kib, iterations, 1, None).map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let decoy_hash = hash_with(&params, "decoy password that matches nothing")?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self { params, decoy_hash, slots: Arc::new(Semaphore::new(cores)) })
    }

    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let params = self.params.clone();
        let _slot = self.slots.acquire().await.context("hashing slots")?;
        tokio::task::spawn_blocking(move || hash_with(&params, &password)).await.context("hashing task")?
    }

    /// Whether `password` matches `stored`; with no stored hash, spends the same time and fails.
    pub async fn verify(&self, password: String, stored: Option<String>) -> anyhow::Result<bool> {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.decoy_hash.clone());
        let params = self.params.clone();
        let _slot = self.slots.acquire().await.context("hashing slots")?;
        let matches = tokio::task::spawn_blocking(move || -> anyhow::Result<bool> {
            let parsed = PasswordHash::new(&hash).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
            Ok(argon2(&params).verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await
        .context("verifying task")??;
        Ok(known && matches)
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_with(params: &Params, password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2(params)
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hashing = PasswordHashing::new(64, 1).unwrap();
        let hash = hashing.hash("correct horse battery".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(hashing.verify("correct horse battery".into(), Some(hash.clone())).await.unwrap());
        assert!(!hashing.verify("wrong horse battery".into(), Some(hash)).await.unwrap());
        assert!(!hashing.verify("decoy password that matches nothing".into(), None).await.unwrap());
    }
}
