//! Rate limits: a token bucket per key (client IP, user), refilled at `rate` per second and
//! holding at most `2 × rate` (the burst). With Redis, buckets live there so that every gateway
//! replica draws from the same bucket; without it, in this process's memory. If Redis fails the
//! request goes through: a limiter outage must not become an API outage.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use redis::{Script, aio::ConnectionManager};

/// Whether a request may go ahead, and if not, when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny { retry_after: Duration },
}

pub enum RateLimiter {
    Memory(MemoryBuckets),
    Redis { connection: ConnectionManager, script: Script, prefix: String },
}

impl RateLimiter {
    pub fn in_memory() -> Self {
        Self::Memory(MemoryBuckets::default())
    }

    pub async fn redis(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let connection = ConnectionManager::new(client).await?;
        Ok(Self::Redis { connection, script: Script::new(TOKEN_BUCKET_LUA), prefix: prefix.to_owned() })
    }

    /// Takes one token from `key`'s bucket. `rate` 0 means unlimited.
    pub async fn check(&self, key: &str, rate: u32) -> Decision {
        if rate == 0 {
            return Decision::Allow;
        }
        match self {
            Self::Memory(buckets) => buckets.take(key, rate, Instant::now()),
            Self::Redis { connection, script, prefix } => {
                let result: redis::RedisResult<(i64, i64)> = script
                    .key(format!("{prefix}:ratelimit:{key}"))
                    .arg(rate)
                    .arg(rate.saturating_mul(2))
                    .invoke_async(&mut connection.clone())
                    .await;
                match result {
                    Ok((1, _)) => Decision::Allow,
                    Ok((_, retry_ms)) => {
                        Decision::Deny { retry_after: Duration::from_millis(u64::try_from(retry_ms).unwrap_or(1000)) }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "rate limiter unavailable; letting the request through");
                        Decision::Allow
                    }
                }
            }
        }
    }

    pub async fn is_healthy(&self) -> bool {
        match self {
            Self::Memory(_) => true,
            Self::Redis { connection, .. } => {
                redis::cmd("PING").query_async::<String>(&mut connection.clone()).await.is_ok()
            }
        }
    }
}

/// A token bucket in Redis. Time comes from the Redis server, so replicas with skewed clocks
/// agree. Returns {1, 0} when allowed, {0, milliseconds until a token} otherwise.
const TOKEN_BUCKET_LUA: &str = r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local allowed = 0
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {allowed, retry}
";

pub struct MemoryBuckets {
    buckets: Mutex<Buckets>,
    /// Buckets above this count are swept of full ones, bounding memory under many clients.
    sweep_above: usize,
}

#[derive(Default)]
struct Buckets {
    by_key: HashMap<String, Bucket>,
    /// The sweep runs at most once a second: above the bound, a sweep on every request would
    /// cost a pass over every bucket per request.
    swept_at: Option<Instant>,
}

/// A bucket remembers its own rate: a sweep refills each bucket at its rate, not at the rate of
/// the request that triggered the sweep (which used to drop an emptied per-user bucket as full
/// whenever a per-IP request, at a higher rate, swept — and so reset the user's limit).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    rate: f64,
}

impl Bucket {
    fn tokens_at(&self, now: Instant) -> f64 {
        (self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * self.rate).min(self.rate * 2.0)
    }
}

impl Default for MemoryBuckets {
    fn default() -> Self {
        Self::sweeping_above(100_000)
    }
}

impl MemoryBuckets {
    fn sweeping_above(sweep_above: usize) -> Self {
        Self { buckets: Mutex::new(Buckets::default()), sweep_above }
    }

    fn take(&self, key: &str, rate: u32, now: Instant) -> Decision {
        let rate = f64::from(rate);
        let burst = rate * 2.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = buckets.swept_at.is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1));
        if buckets.by_key.len() > self.sweep_above && due {
            buckets.by_key.retain(|_, bucket| bucket.tokens_at(now) < bucket.rate * 2.0);
            buckets.swept_at = Some(now);
        }
        let bucket = buckets.by_key.entry(key.to_owned()).or_insert(Bucket { tokens: burst, at: now, rate });
        bucket.tokens = bucket.tokens_at(now);
        bucket.at = now;
        bucket.rate = rate;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Decision::Allow
        } else {
            Decision::Deny { retry_after: Duration::from_secs_f64((1.0 - bucket.tokens) / rate) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_the_rate() {
        let buckets = MemoryBuckets::default();
        let start = Instant::now();
        for _ in 0..10 {
            assert_eq!(buckets.take("ip", 5, start), Decision::Allow);
        }
        let Decision::Deny { retry_after } = buckets.take("ip", 5, start) else { panic!("burst exceeded") };
        assert!(retry_after <= Duration::from_millis(200));
        assert_eq!(buckets.take("other", 5, start), Decision::Allow);
        assert_eq!(buckets.take("ip", 5, start + Duration::from_millis(200)), Decision::Allow);
    }

    #[test]
    fn a_sweep_refills_each_bucket_at_its_own_rate() {
        let buckets = MemoryBuckets::sweeping_above(1);
        let start = Instant::now();
        // A user at 1 request a second spends their burst.
        assert_eq!(buckets.take("user:u", 1, start), Decision::Allow);
        assert_eq!(buckets.take("user:u", 1, start), Decision::Allow);
        assert!(matches!(buckets.take("user:u", 1, start), Decision::Deny { .. }));
        // A request at a high per-IP rate sweeps; at its rate the user's bucket would look
        // full and be dropped, handing the user a fresh burst.
        let later = start + Duration::from_millis(100);
        assert_eq!(buckets.take("ip:1", 1000, later), Decision::Allow);
        assert!(
            matches!(buckets.take("user:u", 1, later), Decision::Deny { .. }),
            "the user's limit survived the sweep"
        );
    }
}
