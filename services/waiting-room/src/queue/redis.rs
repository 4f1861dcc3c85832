//! The queue in Redis, for real infrastructure: it outlives the service's process and every
//! replica shares it. A room is six keys under `<redis_prefix>:waiting-room:{<event id>}:`
//! (the braces keep them in one cluster slot):
//!
//! - `early`: sorted set, buyers who joined before the opening, scored by order of arrival;
//! - `waiting`: sorted set, buyers with a position, scored by it (`ahead` is one `ZCOUNT`);
//! - `admitted`: sorted set, admitted buyers scored by when their admission expires;
//! - `unused`: sorted set, the admitted buyers who have not ordered yet, scored the same (what
//!   the cap of automatic admission counts);
//! - `pos`: hash, every buyer's position (kept after admission, for their place's answer);
//! - `state`: hash, `draw` (absent, `closing`, `done`), `seq`, `last` (the last position
//!   given), `admitted` (the total), `expired` (admissions that ran out unused, counted), and
//!   `credit`/`credit_at` (the rate's unspent allowance).
//!
//! Every change is one Lua script, so it is atomic against every other replica: `ZPOPMIN`
//! inside the admission script hands each place out once.

use eventhive_domain::{EventId, UserId};
use eventhive_platform::async_trait::async_trait;
use redis::{Script, aio::ConnectionManager};

use super::{AdmitLimit, QueueCounts, QueueStore, Standing};

/// Shared by the scripts that read or change a place: KEYS are early, waiting, admitted,
/// state, pos, unused.
const STANDING_LUA: &str = r"
local function standing(buyer, now)
  local expiry = redis.call('ZSCORE', KEYS[3], buyer)
  if expiry then
    local position = tonumber(redis.call('HGET', KEYS[5], buyer) or '0')
    if tonumber(expiry) > now then return {'admitted', position, tonumber(expiry)} end
    return {'expired', position, 0}
  end
  local position = redis.call('ZSCORE', KEYS[2], buyer)
  if position then
    return {'waiting', tonumber(position), redis.call('ZCOUNT', KEYS[2], '-inf', '(' .. position)}
  end
  if redis.call('ZSCORE', KEYS[1], buyer) then return {'early', 0, 0} end
  return false
end
local function close()
  if not redis.call('HGET', KEYS[4], 'draw') then
    redis.call('HSET', KEYS[4], 'draw', 'closing', 'last', redis.call('ZCARD', KEYS[1]))
  end
end
";

const STANDING_READ_LUA: &str = r"
local s = standing(ARGV[1], tonumber(ARGV[2]))
if not s then return false end
return {0, s[1], s[2], s[3]}
";

const JOIN_LUA: &str = r"
local buyer, now, opens = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local s = standing(buyer, now)
if s then
  if s[1] ~= 'expired' then return {0, s[1], s[2], s[3]} end
  redis.call('ZREM', KEYS[3], buyer)
  if redis.call('ZREM', KEYS[6], buyer) == 1 then redis.call('HINCRBY', KEYS[4], 'expired', 1) end
end
if (not redis.call('HGET', KEYS[4], 'draw')) and now < opens then
  redis.call('ZADD', KEYS[1], redis.call('HINCRBY', KEYS[4], 'seq', 1), buyer)
  return {1, 'early', 0, 0}
end
close()
local position = redis.call('HINCRBY', KEYS[4], 'last', 1)
redis.call('ZADD', KEYS[2], position, buyer)
redis.call('HSET', KEYS[5], buyer, position)
s = standing(buyer, now)
return {1, s[1], s[2], s[3]}
";

const CLOSE_LUA: &str = r"
close()
if redis.call('HGET', KEYS[4], 'draw') ~= 'closing' then return {'done'} end
local early = redis.call('ZRANGE', KEYS[1], 0, -1)
table.insert(early, 1, 'closing')
return early
";

const PLACE_DRAWN_LUA: &str = r"
if redis.call('HGET', KEYS[4], 'draw') ~= 'closing' then return 0 end
for i = 1, #ARGV do
  redis.call('ZADD', KEYS[2], i, ARGV[i])
  redis.call('HSET', KEYS[5], ARGV[i], i)
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[4], 'draw', 'done')
return 1
";

const ADMIT_LUA: &str = r"
local now, rate, cap, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('HGET', KEYS[4], 'draw') ~= 'done' then return {} end
local burst = math.max(1, rate / 30)
local credit = tonumber(redis.call('HGET', KEYS[4], 'credit') or '')
local at = tonumber(redis.call('HGET', KEYS[4], 'credit_at') or '')
if credit and at then
  credit = math.min(burst, credit + rate * math.max(0, now - at) / 60000)
else
  credit = burst
end
local n = math.floor(credit)
if cap >= 0 then
  n = math.min(n, cap - redis.call('ZCOUNT', KEYS[6], '(' .. now, '+inf'))
end
local admitted = {}
if n > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[2], n)
  for i = 1, #popped, 2 do
    redis.call('ZADD', KEYS[3], now + ttl, popped[i])
    redis.call('ZADD', KEYS[6], now + ttl, popped[i])
    admitted[#admitted + 1] = popped[i]
  end
end
redis.call('HSET', KEYS[4], 'credit', tostring(credit - #admitted), 'credit_at', ARGV[1])
if #admitted > 0 then redis.call('HINCRBY', KEYS[4], 'admitted', #admitted) end
return admitted
";

const COUNT_EXPIRED_LUA: &str = r"
local counted = redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', ARGV[1])
if counted > 0 then return {counted, redis.call('HINCRBY', KEYS[4], 'expired', counted)} end
return {0, tonumber(redis.call('HGET', KEYS[4], 'expired') or '0')}
";

struct Scripts {
    standing: Script,
    join: Script,
    close: Script,
    place_drawn: Script,
    admit: Script,
    count_expired: Script,
}

pub struct RedisQueue {
    connection: ConnectionManager,
    prefix: String,
    scripts: Scripts,
}

/// What the standing scripts answer: (joined now, kind, position, ahead or expiry).
type Answer = (i64, String, i64, i64);

fn standing(answer: &Answer) -> anyhow::Result<Standing> {
    let (_, kind, position, detail) = answer;
    Ok(match kind.as_str() {
        "early" => Standing::Early,
        "waiting" => Standing::Waiting { position: *position, ahead: *detail },
        "admitted" => Standing::Admitted { position: *position, expires_at_ms: *detail },
        "expired" => Standing::Expired { position: *position },
        other => anyhow::bail!("the queue script answered an unknown standing {other:?}"),
    })
}

fn buyer(text: &str) -> anyhow::Result<UserId> {
    UserId::parse(text).map_err(|_| anyhow::anyhow!("the queue holds a malformed buyer id {text:?}"))
}

impl RedisQueue {
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let connection = ConnectionManager::new(client).await?;
        let with_standing = |body: &str| Script::new(&format!("{STANDING_LUA}\n{body}"));
        Ok(Self {
            connection,
            prefix: prefix.to_owned(),
            scripts: Scripts {
                standing: with_standing(STANDING_READ_LUA),
                join: with_standing(JOIN_LUA),
                close: with_standing(CLOSE_LUA),
                place_drawn: Script::new(PLACE_DRAWN_LUA),
                admit: Script::new(ADMIT_LUA),
                count_expired: Script::new(COUNT_EXPIRED_LUA),
            },
        })
    }

    /// The room's keys, in the order every script takes them: early, waiting, admitted, state,
    /// pos, unused.
    fn keys(&self, event: EventId) -> [String; 6] {
        ["early", "waiting", "admitted", "state", "pos", "unused"]
            .map(|key| format!("{}:waiting-room:{{{event}}}:{key}", self.prefix))
    }

    fn invocation<'a>(&self, script: &'a Script, event: EventId) -> redis::ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        for key in self.keys(event) {
            invocation.key(key);
        }
        invocation
    }
}

#[async_trait]
impl QueueStore for RedisQueue {
    async fn join(
        &self,
        event: EventId,
        buyer: UserId,
        now_ms: i64,
        opens_at_ms: i64,
    ) -> anyhow::Result<(bool, Standing)> {
        let answer: Answer = self
            .invocation(&self.scripts.join, event)
            .arg(buyer.to_string())
            .arg(now_ms)
            .arg(opens_at_ms)
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok((answer.0 == 1, standing(&answer)?))
    }

    async fn standing(&self, event: EventId, buyer: UserId, now_ms: i64) -> anyhow::Result<Option<Standing>> {
        let answer: Option<Answer> = self
            .invocation(&self.scripts.standing, event)
            .arg(buyer.to_string())
            .arg(now_ms)
            .invoke_async(&mut self.connection.clone())
            .await?;
        answer.as_ref().map(standing).transpose()
    }

    async fn close_early(&self, event: EventId) -> anyhow::Result<Option<Vec<UserId>>> {
        let answer: Vec<String> =
            self.invocation(&self.scripts.close, event).invoke_async(&mut self.connection.clone()).await?;
        match answer.split_first() {
            Some((state, early)) if state == "closing" => {
                Ok(Some(early.iter().map(|b| buyer(b)).collect::<Result<_, _>>()?))
            }
            _ => Ok(None),
        }
    }

    async fn place_drawn(&self, event: EventId, drawn: &[UserId]) -> anyhow::Result<()> {
        let mut invocation = self.invocation(&self.scripts.place_drawn, event);
        for buyer in drawn {
            invocation.arg(buyer.to_string());
        }
        let _: i64 = invocation.invoke_async(&mut self.connection.clone()).await?;
        Ok(())
    }

    async fn admit(&self, event: EventId, now_ms: i64, limit: AdmitLimit) -> anyhow::Result<Vec<UserId>> {
        let admitted: Vec<String> = self
            .invocation(&self.scripts.admit, event)
            .arg(now_ms)
            .arg(limit.per_minute)
            .arg(limit.outstanding_at_most.map_or(-1, |cap| cap.max(0)))
            .arg(limit.ttl_ms)
            .invoke_async(&mut self.connection.clone())
            .await?;
        admitted.iter().map(|b| buyer(b)).collect()
    }

    async fn counts(&self, event: EventId, now_ms: i64) -> anyhow::Result<QueueCounts> {
        let [early, waiting, _, state, _, unused] = self.keys(event);
        let (early, waiting, total, outstanding, expired): (i64, i64, Option<i64>, i64, Option<i64>) = redis::pipe()
            .zcard(&early)
            .zcard(&waiting)
            .hget(&state, "admitted")
            .zcount(&unused, format!("({now_ms}"), "+inf")
            .hget(&state, "expired")
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(QueueCounts {
            queued: early + waiting,
            admitted_total: total.unwrap_or(0),
            outstanding,
            expired_total: expired.unwrap_or(0),
        })
    }

    async fn count_expired(&self, event: EventId, before_ms: i64) -> anyhow::Result<(i64, i64)> {
        let (counted, total): (i64, i64) = self
            .invocation(&self.scripts.count_expired, event)
            .arg(before_ms)
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok((counted, total))
    }

    async fn mark_used(&self, event: EventId, buyer: UserId) -> anyhow::Result<()> {
        let [.., unused] = self.keys(event);
        let _: i64 =
            redis::cmd("ZREM").arg(unused).arg(buyer.to_string()).query_async(&mut self.connection.clone()).await?;
        Ok(())
    }

    async fn ping(&self) -> anyhow::Result<()> {
        let _: String = redis::cmd("PING").query_async(&mut self.connection.clone()).await?;
        Ok(())
    }
}
