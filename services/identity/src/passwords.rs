//! Password hashing with Argon2id. Hashing is deliberately slow, so it runs on the blocking
//! pool and never stalls the async workers that serve other requests. And it is deliberately
//! big (19 MiB of working memory a hash): as many run at once as there are cores, the rest wait
//! their turn, and each runs in a working memory of its own that is kept and reused.
//!
//! Reused, because letting Argon2 allocate it per hash cost far more than 19 MiB: glibc's malloc
//! raises its mmap threshold past a big block once one is freed, so the next 19 MiB came from
//! the heap and stayed there. A storm of 50 logins left the process at 900 MiB (105 MiB with the
//! threshold pinned); earlier, with no bound on hashes at once, it stood at 1.2 GiB after 65.

use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::{Output, ParamsString, Salt, SaltString, rand_core::OsRng},
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
    /// The working memories of the hashes that are not running; one per permit at most.
    memories: Arc<Mutex<Vec<Vec<Block>>>>,
}

impl PasswordHashing {
    pub fn new(memory_kib: u32, iterations: u32) -> anyhow::Result<Self> {
        let params =
            Params::new(memory_kib, iterations, 1, None).map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let salt = SaltString::generate(&mut OsRng);
        let decoy_hash = hash_in(&mut Vec::new(), &params, "decoy password that matches nothing", salt.as_salt())?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self { params, decoy_hash, slots: Arc::new(Semaphore::new(cores)), memories: Arc::default() })
    }

    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let params = self.params.clone();
        self.in_a_slot(move |memory| {
            let salt = SaltString::generate(&mut OsRng);
            hash_in(memory, &params, &password, salt.as_salt())
        })
        .await
    }

    /// Whether `password` matches `stored`; with no stored hash, spends the same time and fails.
    pub async fn verify(&self, password: String, stored: Option<String>) -> anyhow::Result<bool> {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.decoy_hash.clone());
        let matches = self
            .in_a_slot(move |memory| {
                let stored = PasswordHash::new(&hash).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
                let (Some(salt), Some(expected)) = (stored.salt, stored.hash) else {
                    anyhow::bail!("the stored hash has no salt or no output");
                };
                // The stored hash's own parameters: it may predate today's settings.
                let params = Params::try_from(&stored).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
                let computed = output_in(memory, &params, &password, salt)?;
                // `Output`'s equality is constant-time.
                Ok(computed == expected)
            })
            .await?;
        Ok(known && matches)
    }

    /// Runs `work` on the blocking pool once a permit is free, in a kept working memory. The
    /// permit and the memory go with the work, not with the caller: a caller that gives up (its
    /// deadline passed) leaves the hash to finish in its slot and the memory to come back,
    /// rather than freeing the slot for one more hash, and one more memory, at once.
    async fn in_a_slot<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let slot = self.slots.clone().acquire_owned().await.context("hashing slots")?;
        let memories = self.memories.clone();
        tokio::task::spawn_blocking(move || {
            let mut memory = memories.lock().unwrap_or_else(PoisonError::into_inner).pop().unwrap_or_default();
            let answer = work(&mut memory);
            memories.lock().unwrap_or_else(PoisonError::into_inner).push(memory);
            drop(slot);
            answer
        })
        .await
        .context("hashing task")?
    }
}

/// The PHC string of `password` hashed with `params` and `salt`, in `memory`.
fn hash_in(memory: &mut Vec<Block>, params: &Params, password: &str, salt: Salt<'_>) -> anyhow::Result<String> {
    let output = output_in(memory, params, password, salt)?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?,
        salt: Some(salt),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Argon2id's output for `password`, `params` and `salt`, computed in `memory` (grown to what
/// `params` need, never shrunk).
fn output_in(memory: &mut Vec<Block>, params: &Params, password: &str, salt: Salt<'_>) -> anyhow::Result<Output> {
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let salt = salt.decode_b64(&mut salt_bytes).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let length = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    Output::init_with(length, |out| {
        argon2
            .hash_password_into_with_memory(password.as_bytes(), salt, out, &mut memory[..blocks])
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
}

#[cfg(test)]
mod tests {
    use argon2::{PasswordHasher, PasswordVerifier};

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

    /// Hashes made by the argon2 crate's own hasher (as every stored one was, and with other
    /// parameters than today's) verify here, and ours verify there: the same PHC strings.
    #[tokio::test]
    async fn hashes_agree_with_the_argon2_crates_own() {
        let hashing = PasswordHashing::new(64, 1).unwrap();
        let bigger = Params::new(128, 2, 1, None).unwrap();
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, bigger)
            .hash_password(b"older account", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(hashing.verify("older account".into(), Some(theirs.clone())).await.unwrap());
        assert!(!hashing.verify("older acount".into(), Some(theirs)).await.unwrap());

        let ours = hashing.hash("new account".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(64, 1, 1, None).unwrap());
        assert!(argon2.verify_password(b"new account", &parsed).is_ok());
    }

    #[tokio::test]
    async fn working_memories_are_kept_one_per_slot_and_reused() {
        let hashing = PasswordHashing::new(64, 1).unwrap();
        let many = (0..16).map(|n| hashing.hash(format!("password {n}")));
        futures::future::join_all(many).await.into_iter().for_each(|hash| assert!(hash.is_ok()));
        let kept = hashing.memories.lock().unwrap().len();
        let slots = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!((1..=slots).contains(&kept), "{kept} working memories kept for {slots} slots");
    }
}
