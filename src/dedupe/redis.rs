//! [`RedisStore`]: the fleet-wide [`DedupeStore`], on redis-rs's managed connection to one Redis
//! or its cluster connection to a Redis Cluster.

use std::{
    fmt,
    sync::{Arc, LazyLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ::redis::{aio::ConnectionManager, cluster::ClusterClient, Client, Cmd, RedisError, Value};

use super::{Claim, DedupeStore, StoreError, StoreFuture, Token};
use crate::redis_link::{Addr, ConnectError, Connection, Lua, DEFAULT_TIMEOUT};

/// The key prefix when none is set.
const DEFAULT_PREFIX: &str = "webhook-monitor:";
/// Times and TTLs are capped at this many milliseconds (see `clamp_millis`).
const MAX_MILLIS: u64 = 1 << 53;
/// The most arguments a script call has: the verb, the script, the key count, the key, and
/// three arguments (an owner token, a time, a TTL).
const MAX_ARGS: usize = 7;

/// Claims a key. `KEYS[1]`: the key. `ARGV`: token (32 hex digits), now (ms since the epoch),
/// in-flight TTL (ms). Returns `{code, attempts, ms}`: `{0, attempt, first_seen}` claimed,
/// `{1, attempts, 0}` in flight, `{2, attempts, completed}` done.
const CLAIM_LUA: &str = r"
local v = redis.call('HMGET', KEYS[1], 's', 't', 'a', 'f', 'c')
local state = v[1]
if state == 'f' then
  local a = tonumber(v[3])
  if not a then return redis.error_reply('webhook-monitor: malformed in-flight entry') end
  return {1, a, 0}
elseif state == 'd' then
  local a, c = tonumber(v[3]), tonumber(v[5])
  if not (a and c) then return redis.error_reply('webhook-monitor: malformed done entry') end
  return {2, a, c}
end
local attempt, first = 1, ARGV[2]
if state == 'r' then
  local a = tonumber(v[3])
  if not (a and tonumber(v[4])) then
    return redis.error_reply('webhook-monitor: malformed released entry')
  end
  attempt, first = a + 1, v[4]
elseif state or redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.error_reply('webhook-monitor: unknown entry at key')
end
redis.call('HSET', KEYS[1], 's', 'f', 't', ARGV[1], 'a', attempt, 'f', first)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {0, attempt, tonumber(first)}
";

/// Completes a claim. `KEYS[1]`: the key. `ARGV`: token, now (ms), window (ms). Returns 1 if the
/// token owned the live claim (the entry is now done), 0 otherwise (nothing changed).
const COMPLETE_LUA: &str = r"
local v = redis.call('HMGET', KEYS[1], 's', 't')
if v[1] ~= 'f' or v[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 's', 'd', 'c', ARGV[2])
redis.call('HDEL', KEYS[1], 't')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// Releases a claim. `KEYS[1]`: the key. `ARGV`: token, window (ms). Returns 1 if the token owned
/// the live claim (the entry is now released, history kept), 0 otherwise (nothing changed).
const RELEASE_LUA: &str = r"
local v = redis.call('HMGET', KEYS[1], 's', 't')
if v[1] ~= 'f' or v[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 's', 'r')
redis.call('HDEL', KEYS[1], 't')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// Renews a claim. `KEYS[1]`: the key. `ARGV`: token, in-flight TTL (ms). Returns 1 if the token
/// owned the live claim (its TTL starts again), 0 otherwise (nothing changed).
const RENEW_LUA: &str = r"
local v = redis.call('HMGET', KEYS[1], 's', 't')
if v[1] ~= 'f' or v[2] ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

static CLAIM: LazyLock<Lua> = LazyLock::new(|| Lua::new(CLAIM_LUA));
static COMPLETE: LazyLock<Lua> = LazyLock::new(|| Lua::new(COMPLETE_LUA));
static RELEASE: LazyLock<Lua> = LazyLock::new(|| Lua::new(RELEASE_LUA));
static RENEW: LazyLock<Lua> = LazyLock::new(|| Lua::new(RENEW_LUA));

/// A [`DedupeStore`] in Redis, shared by every instance of an application (feature `redis`):
/// one Redis, or a Redis Cluster.
///
/// On one Redis, built on [redis-rs](https://docs.rs/redis)'s [`ConnectionManager`]: one
/// multiplexed connection, shared by every clone of the store, that reconnects on its own after
/// Redis restarts. On a cluster, built on redis-rs's
/// [`ClusterConnection`](::redis::cluster_async::ClusterConnection) (see
/// [Redis Cluster](#redis-cluster)). Each operation is one Lua script, so it is atomic across
/// the fleet and costs one round trip (`EVALSHA`; after Redis lost its script cache, the first
/// call per script sends the script's source instead, with `EVAL`, once).
///
/// # Storage
///
/// A delivery's key is stored at `prefix + key` (see [`key_prefix`](Self::key_prefix)) as a
/// small hash, whose Redis TTL is the state's lifetime:
///
/// | state     | fields                               | TTL                                             |
/// |-----------|--------------------------------------|-------------------------------------------------|
/// | in flight | owner token, attempts, first seen    | `in_flight_ttl`, renewed while the handler runs |
/// | released  | attempts, first seen                 | the `window` given to release                   |
/// | done      | attempts, first seen, completed at   | the `window` given to complete                  |
///
/// The times stored are the `now` values the layer passes (milliseconds since the Unix epoch),
/// so every instance reads back the same first-seen and completed-at times; expiry is Redis's
/// own (`PEXPIRE`), so no instance's clock decides when a claim lapses. Keys are hashes of 3 or
/// 4 short fields (Redis's compact listpack encoding): about 150–190 bytes per key in Redis 7
/// with a 60-byte key name.
///
/// History lives only as long as its entry: a released entry remembers the attempt count and
/// first-seen time for its window, but a claim whose owner died expires after `in_flight_ttl`
/// together with that history, so the next claim counts as attempt 1 again.
///
/// # Redis Cluster
///
/// [`connect_cluster`](Self::connect_cluster) and
/// [`from_cluster_client`](Self::from_cluster_client) use redis-rs's cluster client: one
/// connection per node, each command sent to the primary that serves its key's slot.
///
/// - **Keys and slots.** Every operation is one script on exactly one key, so no operation
///   can span two slots (no `CROSSSLOT` error). A key's slot is the CRC16 of its whole name,
///   prefix included, so the deliveries of one route spread over every primary like any
///   others. There is deliberately no hash tag: no operation touches two keys, and a tag per
///   route would put a busy route's whole dedupe load on one node. Keep `{` out of the key
///   prefix and the route names: Redis hashes only the part between the first `{` and the
///   next `}` of a key name, so braces there would put those keys in one slot.
/// - **Scripts.** Each node has its own script cache. A node that does not know a script (a
///   new node, a restart, a replica promoted, `SCRIPT FLUSH`) answers `NOSCRIPT` to `EVALSHA`;
///   the store then sends the same call with the script's source (`EVAL`), to the key's node
///   only, which caches the script for the next calls: once per script and node. (redis-rs's
///   own [`Script`](::redis::Script) would load it with `SCRIPT LOAD`, which the cluster
///   client sends to every node: while one node hangs, every `NOSCRIPT` on the others would
///   wait for it and time out.)
/// - **Failover and resharding.** The cluster client follows `MOVED` and `ASK` redirections
///   (and reloads its slot map after a `MOVED`), reconnects to nodes that dropped and
///   rediscovers the topology from the nodes it knows; all of that within the operation's
///   [`timeout`](Self::timeout). While a primary is unreachable, operations on its keys fail
///   with a [`StoreError`] and operations on other nodes' keys go on; once the node is back,
///   or a replica took its slots over, its keys work again. Redis replicates asynchronously,
///   so a claim or completion the old primary acknowledged just before it failed can be lost
///   in a failover: a copy arriving then may be processed again.
///
/// # Failures
///
/// Every operation is bounded by [`timeout`](Self::timeout) (default 1 s). A refused
/// connection, a timeout, a script error or an unexpected stored value is a [`StoreError`]
/// (then the route's store-failure policy applies), never a panic. While Redis is down,
/// operations fail fast with the connection error; once it is back, the same store works again.
///
/// An operation that timed out may still have been applied by Redis: a claim that timed out
/// can hold the key until its `in_flight_ttl` expires unless the same token releases it, which
/// the layer does (on a fail-open route after the handler, on a fail-closed one at once).
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use webhook_monitor::dedupe::RedisStore;
///
/// # async fn run() -> Result<(), webhook_monitor::dedupe::StoreError> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379/")
///     .await?
///     .key_prefix("myapp:dedupe:")
///     .timeout(Duration::from_millis(250));
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    connection: Connection,
    prefix: Arc<str>,
    timeout: Duration,
    /// Where the store connected, for `Debug` (never a password).
    addr: Addr,
}

impl RedisStore {
    /// Connects to the Redis at `url`, such as `"redis://127.0.0.1:6379/"` (see
    /// [redis-rs's URL format](https://docs.rs/redis/1/redis/#connection-parameters)).
    ///
    /// Fails if the URL is invalid or Redis does not accept the connection within 1 s. The
    /// connection reconnects on demand after that: while Redis is unreachable each operation
    /// makes one fresh attempt (bounded by 1 s) and fails fast.
    ///
    /// `rediss://` (TLS) needs one of redis-rs's TLS features, such as `tokio-rustls-comp`,
    /// enabled by the application's own `redis` dependency.
    pub async fn connect(url: impl AsRef<str>) -> Result<Self, StoreError> {
        let client = Client::open(url.as_ref()).map_err(|e| StoreError::new(Error::Connect(e)))?;
        Self::from_client(client).await
    }

    /// Connects with a [`redis::Client`](::redis::Client), as [`connect`](Self::connect) does:
    /// for settings a URL cannot carry, build the client from a
    /// [`redis::ConnectionInfo`](::redis::ConnectionInfo).
    pub async fn from_client(client: Client) -> Result<Self, StoreError> {
        let (connection, addr) = Connection::node(client).await.map_err(connect_error)?;
        Ok(Self {
            addr,
            ..Self::with(connection)
        })
    }

    /// Uses an existing managed connection, as configured by its owner (reconnection,
    /// timeouts). Does no I/O.
    pub fn from_connection_manager(connection: ConnectionManager) -> Self {
        Self::with(Connection::Node(connection))
    }

    /// Connects to the Redis Cluster that `urls` are nodes of, such as
    /// `["redis://127.0.0.1:7001/", "redis://127.0.0.1:7002/"]` (one is enough: the client
    /// discovers the others; more help when one is down). See [Redis Cluster](#redis-cluster)
    /// for how keys, scripts and failovers work there.
    ///
    /// Fails if a URL is invalid, none is given, or the cluster does not answer within 1 s.
    /// Each connection attempt to a node is bounded by 1 s, and in one operation the client
    /// follows at most 3 redirections or reconnections, 10 to 100 ms apart, so that operations
    /// on a stopped node's keys fail fast.
    ///
    /// As with [`connect`](Self::connect), `rediss://` needs one of redis-rs's TLS features.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use webhook_monitor::dedupe::RedisStore;
    ///
    /// # async fn run() -> Result<(), webhook_monitor::dedupe::StoreError> {
    /// let nodes = std::env::var("REDIS_CLUSTER_URLS")
    ///     .unwrap_or_else(|_| "redis://127.0.0.1:7001/,redis://127.0.0.1:7002/".to_owned());
    /// let store = RedisStore::connect_cluster(nodes.split(','))
    ///     .await?
    ///     .key_prefix("myapp:dedupe:")
    ///     .timeout(Duration::from_millis(250));
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_cluster(
        urls: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<Self, StoreError> {
        let (connection, addr) = Connection::cluster(urls).await.map_err(connect_error)?;
        Ok(Self {
            addr,
            ..Self::with(connection)
        })
    }

    /// Connects to a Redis Cluster with a [`ClusterClient`](::redis::cluster::ClusterClient)
    /// configured by its owner (credentials, TLS, timeouts, retries: see
    /// [`ClusterClientBuilder`](::redis::cluster::ClusterClientBuilder)).
    ///
    /// Fails if the cluster does not answer within 1 s. `Debug` shows no node addresses for a
    /// store built this way (the client does not tell them).
    ///
    /// redis-rs's default retries wait 1.28 s at least, longer than the store's
    /// [`timeout`](Self::timeout): with them, an operation on a stopped node's keys ends with
    /// the timeout rather than at once. [`connect_cluster`](Self::connect_cluster) uses
    /// `retries(3)`, `min_retry_wait(10)` and `max_retry_wait(100)`.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use redis::cluster::ClusterClient;
    /// use webhook_monitor::dedupe::RedisStore;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = ClusterClient::builder(["redis://10.0.0.1:6379/", "redis://10.0.0.2:6379/"])
    ///     .username("webhooks")
    ///     .password(std::env::var("REDIS_PASSWORD")?)
    ///     .connection_timeout(Duration::from_millis(500))
    ///     .build()?;
    /// let store = RedisStore::from_cluster_client(client).await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn from_cluster_client(client: ClusterClient) -> Result<Self, StoreError> {
        let connection = Connection::cluster_client(client).await;
        Ok(Self::with(connection.map_err(connect_error)?))
    }

    fn with(connection: Connection) -> Self {
        Self {
            connection,
            prefix: DEFAULT_PREFIX.into(),
            timeout: DEFAULT_TIMEOUT,
            addr: Addr::Unknown,
        }
    }

    /// Prepends `prefix` to every key, so applications sharing a Redis keep apart.
    ///
    /// Default: `"webhook-monitor:"`.
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().into();
        self
    }

    /// Fails an operation that takes longer than `timeout` with a [`StoreError`], so a hung
    /// Redis does not hold the request.
    ///
    /// Default: 1 s.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.prefix.len() + key.len());
        full.push_str(&self.prefix);
        full.push_str(key);
        full
    }

    /// Runs `script` on `key` (under the prefix) with the arguments `args` writes, bounded by
    /// the timeout.
    async fn run(
        &self,
        op: &'static str,
        script: &Lua,
        key: &str,
        args: impl Fn(&mut Cmd),
    ) -> Result<Value, StoreError> {
        let key = self.key(key);
        // Sized up front, as redis-rs's own script calls are: growing the command's buffers
        // argument by argument cost about 1,400 instructions per call (callgrind).
        let call = |verb: &str, script: &str| {
            let mut cmd = Cmd::with_capacity(MAX_ARGS, verb.len() + script.len() + key.len() + 64);
            cmd.arg(verb).arg(script).arg(1).arg(&key);
            args(&mut cmd);
            cmd
        };
        let mut connection = self.connection.clone();
        let attempt = script.run(&mut connection, call);
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => Err(StoreError::new(Error::Redis { op, source })),
            Err(_) => Err(StoreError::new(Error::TimedOut {
                op,
                after: self.timeout,
            })),
        }
    }
}

/// A connection that could not be made, as a [`StoreError`].
fn connect_error(error: ConnectError) -> StoreError {
    StoreError::new(match error {
        ConnectError::Redis(e) => Error::Connect(e),
        ConnectError::TimedOut => Error::TimedOut {
            op: "connect",
            after: DEFAULT_TIMEOUT,
        },
    })
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("RedisStore");
        self.addr.debug_into(&mut s);
        s.field("key_prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl DedupeStore for RedisStore {
    fn claim<'a>(
        &'a self,
        key: &'a str,
        token: Token,
        in_flight_ttl: Duration,
        now: SystemTime,
    ) -> StoreFuture<'a, Claim> {
        StoreFuture::new(async move {
            let now = millis_since_epoch(now)?;
            let token = token_arg(token);
            let value = self
                .run("claim", &CLAIM, key, |call| {
                    call.arg(token.as_str())
                        .arg(now)
                        .arg(ttl_millis(in_flight_ttl));
                })
                .await?;
            parse_claim(&value).ok_or_else(|| malformed("claim", &value))
        })
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        token: Token,
        window: Duration,
        now: SystemTime,
    ) -> StoreFuture<'a, bool> {
        StoreFuture::new(async move {
            let now = millis_since_epoch(now)?;
            let token = token_arg(token);
            let value = self
                .run("complete", &COMPLETE, key, |call| {
                    call.arg(token.as_str()).arg(now).arg(ttl_millis(window));
                })
                .await?;
            parse_bool(&value).ok_or_else(|| malformed("complete", &value))
        })
    }

    fn release<'a>(
        &'a self,
        key: &'a str,
        token: Token,
        window: Duration,
    ) -> StoreFuture<'a, bool> {
        StoreFuture::new(async move {
            let token = token_arg(token);
            let value = self
                .run("release", &RELEASE, key, |call| {
                    call.arg(token.as_str()).arg(ttl_millis(window));
                })
                .await?;
            parse_bool(&value).ok_or_else(|| malformed("release", &value))
        })
    }

    fn renew<'a>(
        &'a self,
        key: &'a str,
        token: Token,
        in_flight_ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        StoreFuture::new(async move {
            let token = token_arg(token);
            let value = self
                .run("renew", &RENEW, key, |call| {
                    call.arg(token.as_str()).arg(ttl_millis(in_flight_ttl));
                })
                .await?;
            parse_bool(&value).ok_or_else(|| malformed("renew", &value))
        })
    }
}

/// The token as Redis stores it: 32 lowercase hex digits, as `{:032x}` prints it, without
/// allocating: about 1,100 fewer instructions per call than `format!`.
fn token_arg(token: Token) -> hex::Buffer<16> {
    let mut hex = hex::Buffer::new();
    hex.format(&token.get().to_be_bytes());
    hex
}

fn millis_since_epoch(now: SystemTime) -> Result<u64, StoreError> {
    let since = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| StoreError::new(Error::ClockBeforeEpoch))?;
    Ok(clamp_millis(since.as_millis()))
}

/// A TTL in ms, at least 1 (Redis deletes a key given a TTL of 0).
fn ttl_millis(ttl: Duration) -> u64 {
    clamp_millis(ttl.as_millis().max(1))
}

/// Caps milliseconds at 2^53 (about 285,000 years), where Lua's doubles are still exact and
/// Redis's expiry arithmetic cannot overflow.
fn clamp_millis(ms: u128) -> u64 {
    u64::try_from(ms).map_or(MAX_MILLIS, |ms| ms.min(MAX_MILLIS))
}

fn to_time(ms: i64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_millis(u64::try_from(ms).ok()?))
}

fn parse_claim(value: &Value) -> Option<Claim> {
    let Value::Array(items) = value else {
        return None;
    };
    let [Value::Int(code), Value::Int(attempts), Value::Int(ms)] = items.as_slice() else {
        return None;
    };
    let attempts = u32::try_from(*attempts).ok().filter(|&a| a >= 1)?;
    match code {
        0 => Some(Claim::Claimed {
            attempt: attempts,
            first_seen: to_time(*ms)?,
        }),
        1 => Some(Claim::InFlight { attempts }),
        2 => Some(Claim::Done {
            attempts,
            completed_at: to_time(*ms)?,
        }),
        _ => None,
    }
}

fn parse_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Int(0) => Some(false),
        Value::Int(1) => Some(true),
        _ => None,
    }
}

fn malformed(op: &'static str, value: &Value) -> StoreError {
    StoreError::new(Error::Malformed {
        op,
        value: format!("{value:?}"),
    })
}

/// What went wrong, inside a [`StoreError`].
#[derive(Debug)]
enum Error {
    Connect(RedisError),
    Redis {
        op: &'static str,
        source: RedisError,
    },
    TimedOut {
        op: &'static str,
        after: Duration,
    },
    Malformed {
        op: &'static str,
        value: String,
    },
    ClockBeforeEpoch,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "cannot connect to redis: {e}"),
            Self::Redis { op, source } => write!(f, "redis {op} failed: {source}"),
            Self::TimedOut { op, after } => write!(f, "redis {op} timed out after {after:?}"),
            Self::Malformed { op, value } => write!(f, "redis {op}: unexpected reply {value}"),
            Self::ClockBeforeEpoch => f.write_str("the clock is before the Unix epoch"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect(e) | Self::Redis { source: e, .. } => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    const WINDOW: Duration = Duration::from_secs(60);
    const IN_FLIGHT: Duration = Duration::from_secs(30);

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_700_000_000_123) + Duration::from_secs(secs)
    }

    /// Where a test's store connects.
    #[derive(Debug, Clone, Copy)]
    enum Backend {
        /// One Redis, at `REDIS_URL`.
        Node,
        /// A Redis Cluster, at the comma-separated node URLs in `REDIS_CLUSTER_URLS`.
        Cluster,
    }

    impl Backend {
        fn of(store: &RedisStore) -> Self {
            match store.connection {
                Connection::Node(_) => Self::Node,
                Connection::Cluster(_) => Self::Cluster,
            }
        }
    }

    /// A store on `backend`, or `None` (with the reason printed) when its variable is not set.
    async fn connect(backend: Backend, test: &str) -> Option<RedisStore> {
        let var = match backend {
            Backend::Node => "REDIS_URL",
            Backend::Cluster => "REDIS_CLUSTER_URLS",
        };
        let Ok(urls) = std::env::var(var) else {
            eprintln!("skipping {test} on {backend:?}: {var} is not set");
            return None;
        };
        let store = match backend {
            Backend::Node => RedisStore::connect(urls.as_str()).await,
            Backend::Cluster => RedisStore::connect_cluster(urls.split(',')).await,
        };
        Some(store.unwrap_or_else(|e| panic!("{var}={urls} does not answer: {e}")))
    }

    /// A store on `backend` under a fresh random prefix, or `None` (with the reason printed)
    /// when its variable is not set.
    async fn store(backend: Backend, test: &str) -> Option<RedisStore> {
        let store = connect(backend, test).await?;
        Some(store.key_prefix(unique_prefix(test)))
    }

    /// Runs each test (an `async fn(RedisStore)` below) on one Redis and on a Redis Cluster:
    /// `node::test` and `cluster::test`, each skipped (with the reason printed) when its
    /// variable is not set.
    macro_rules! on_each_backend {
        ($(#[$test:meta] $name:ident,)*) => {
            on_each_backend!(@ node, Node, $(#[$test] $name,)*);
            on_each_backend!(@ cluster, Cluster, $(#[$test] $name,)*);
        };
        (@ $module:ident, $backend:ident, $(#[$test:meta] $name:ident,)*) => {
            mod $module {
                $(
                    #[$test]
                    async fn $name() {
                        let backend = super::Backend::$backend;
                        if let Some(store) = super::store(backend, stringify!($name)).await {
                            super::$name(store).await;
                        }
                    }
                )*
            }
        };
    }

    on_each_backend! {
        #[tokio::test] claim_complete_release_state_machine,
        #[tokio::test] release_keeps_history_for_the_retry,
        #[tokio::test] entries_expire_with_their_ttl,
        #[tokio::test] stored_layout_and_ttls,
        #[tokio::test] prefixes_keep_applications_apart,
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)] two_stores_racing_for_one_key_claim_it_once,
        #[tokio::test] foreign_or_corrupt_values_are_errors,
    }

    fn unique_prefix(test: &str) -> String {
        format!(
            "webhook-monitor-test:{test}:{:032x}:",
            Token::random().get()
        )
    }

    #[test]
    fn store_is_a_shareable_dedupe_store() {
        fn assert_bounds<T: Clone + Send + Sync + 'static>() {}
        assert_bounds::<RedisStore>();
        fn as_dyn(store: RedisStore) -> Arc<dyn DedupeStore> {
            Arc::new(store)
        }
        let _ = as_dyn;
    }

    #[test]
    fn tokens_are_stored_as_32_lowercase_hex_digits() {
        for n in [0, 1, 0xabc, u128::MAX >> 4, u128::MAX, fastrand::u128(..)] {
            let token = Token::from_u128(n);
            assert_eq!(token_arg(token).as_str(), format!("{n:032x}"));
        }
    }

    #[test]
    fn millisecond_conversions_clamp_instead_of_failing() {
        assert_eq!(ttl_millis(Duration::ZERO), 1);
        assert_eq!(ttl_millis(Duration::from_micros(1500)), 1);
        assert_eq!(ttl_millis(Duration::from_millis(200)), 200);
        assert_eq!(ttl_millis(Duration::MAX), MAX_MILLIS);
        assert_eq!(millis_since_epoch(t(0)).unwrap(), 1_700_000_000_123);
        assert!(millis_since_epoch(UNIX_EPOCH - Duration::from_secs(1)).is_err());
        assert_eq!(to_time(1_700_000_000_123), Some(t(0)));
        assert_eq!(to_time(-1), None);
    }

    #[test]
    fn replies_other_than_the_scripts_are_rejected() {
        let int = Value::Int;
        let claim = |items: Vec<Value>| parse_claim(&Value::Array(items));
        assert_eq!(
            claim(vec![int(0), int(2), int(1_700_000_000_123)]),
            Some(Claim::Claimed {
                attempt: 2,
                first_seen: t(0)
            })
        );
        assert_eq!(
            claim(vec![int(1), int(3), int(0)]),
            Some(Claim::InFlight { attempts: 3 })
        );
        assert_eq!(claim(vec![int(3), int(1), int(0)]), None);
        assert_eq!(claim(vec![int(0), int(0), int(0)]), None);
        assert_eq!(claim(vec![int(0), int(1 << 40), int(0)]), None);
        assert_eq!(claim(vec![int(2), int(1), int(-5)]), None);
        assert_eq!(claim(vec![int(0), int(1)]), None);
        assert_eq!(parse_claim(&Value::Nil), None);
        assert_eq!(parse_claim(&Value::BulkString(b"0".to_vec())), None);
        assert_eq!(parse_bool(&int(1)), Some(true));
        assert_eq!(parse_bool(&int(0)), Some(false));
        assert_eq!(parse_bool(&int(2)), None);
        assert_eq!(parse_bool(&Value::Okay), None);
    }

    async fn claim_complete_release_state_machine(store: RedisStore) {
        let (first, second, third) = (Token::random(), Token::random(), Token::random());

        let claim = store.claim("evt_1", first, IN_FLIGHT, t(0)).await.unwrap();
        assert_eq!(
            claim,
            Claim::Claimed {
                attempt: 1,
                first_seen: t(0)
            }
        );
        let copy = store.claim("evt_1", second, IN_FLIGHT, t(1)).await.unwrap();
        assert_eq!(copy, Claim::InFlight { attempts: 1 });

        // Only the owner's token finalises.
        assert!(!store.complete("evt_1", second, WINDOW, t(2)).await.unwrap());
        assert!(!store.release("evt_1", second, WINDOW).await.unwrap());
        assert!(store.complete("evt_1", first, WINDOW, t(3)).await.unwrap());

        let done = store.claim("evt_1", third, IN_FLIGHT, t(4)).await.unwrap();
        assert_eq!(
            done,
            Claim::Done {
                attempts: 1,
                completed_at: t(3)
            }
        );
        // A done key is no longer owned by anyone.
        assert!(!store.complete("evt_1", first, WINDOW, t(5)).await.unwrap());
        assert!(!store.release("evt_1", first, WINDOW).await.unwrap());
        // Unknown keys have no owner either.
        assert!(!store
            .complete("evt_none", first, WINDOW, t(5))
            .await
            .unwrap());
        assert!(!store.release("evt_none", first, WINDOW).await.unwrap());
    }

    async fn release_keeps_history_for_the_retry(store: RedisStore) {
        let (first, second, third) = (Token::random(), Token::random(), Token::random());

        store.claim("evt_2", first, IN_FLIGHT, t(0)).await.unwrap();
        assert!(store.release("evt_2", first, WINDOW).await.unwrap());
        assert!(
            !store.release("evt_2", first, WINDOW).await.unwrap(),
            "released once"
        );

        let retry = store
            .claim("evt_2", second, IN_FLIGHT, t(60))
            .await
            .unwrap();
        assert_eq!(
            retry,
            Claim::Claimed {
                attempt: 2,
                first_seen: t(0)
            }
        );
        let copy = store.claim("evt_2", third, IN_FLIGHT, t(61)).await.unwrap();
        assert_eq!(copy, Claim::InFlight { attempts: 2 });
        assert!(!store.complete("evt_2", first, WINDOW, t(62)).await.unwrap());
        assert!(store
            .complete("evt_2", second, WINDOW, t(62))
            .await
            .unwrap());
        let done = store.claim("evt_2", third, IN_FLIGHT, t(63)).await.unwrap();
        assert_eq!(
            done,
            Claim::Done {
                attempts: 2,
                completed_at: t(62)
            }
        );
    }

    async fn entries_expire_with_their_ttl(store: RedisStore) {
        let short = Duration::from_millis(200);
        let wait = || tokio::time::sleep(Duration::from_millis(400));
        let (a, b, c) = (Token::random(), Token::random(), Token::random());

        // An abandoned claim becomes claimable again; its history goes with it.
        store.claim("in_flight", a, IN_FLIGHT, t(0)).await.unwrap();
        assert!(store.release("in_flight", a, WINDOW).await.unwrap());
        let second = store.claim("in_flight", b, short, t(1)).await.unwrap();
        assert!(matches!(second, Claim::Claimed { attempt: 2, .. }));
        wait().await;
        let after = store.claim("in_flight", c, IN_FLIGHT, t(2)).await.unwrap();
        assert_eq!(
            after,
            Claim::Claimed {
                attempt: 1,
                first_seen: t(2)
            }
        );
        assert!(!store.complete("in_flight", b, WINDOW, t(3)).await.unwrap());
        assert!(!store.release("in_flight", b, WINDOW).await.unwrap());

        // A done entry lasts its window, then the key is new.
        store.claim("done", a, IN_FLIGHT, t(0)).await.unwrap();
        assert!(store.complete("done", a, short, t(1)).await.unwrap());
        let dup = store.claim("done", b, IN_FLIGHT, t(1)).await.unwrap();
        assert!(matches!(dup, Claim::Done { attempts: 1, .. }));
        wait().await;
        let fresh = store.claim("done", c, IN_FLIGHT, t(2)).await.unwrap();
        assert!(matches!(fresh, Claim::Claimed { attempt: 1, .. }));

        // So does a released one.
        store.claim("released", a, IN_FLIGHT, t(0)).await.unwrap();
        assert!(store.release("released", a, short).await.unwrap());
        wait().await;
        let fresh = store.claim("released", b, IN_FLIGHT, t(2)).await.unwrap();
        assert_eq!(
            fresh,
            Claim::Claimed {
                attempt: 1,
                first_seen: t(2)
            }
        );
    }

    async fn stored_layout_and_ttls(store: RedisStore) {
        let key = format!("{}evt_3", store.prefix);
        let mut raw = store.connection.clone();
        let fields = |raw: &mut Connection| {
            let mut raw = raw.clone();
            let key = key.clone();
            async move {
                let mut map: Vec<(String, String)> = ::redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async(&mut raw)
                    .await
                    .unwrap();
                map.sort();
                let ttl: i64 = ::redis::cmd("PTTL")
                    .arg(&key)
                    .query_async(&mut raw)
                    .await
                    .unwrap();
                (map, ttl)
            }
        };
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let token = Token::from_u128(0xabc);

        store.claim("evt_3", token, IN_FLIGHT, t(0)).await.unwrap();
        let (map, ttl) = fields(&mut raw).await;
        assert_eq!(
            map,
            vec![
                pair("a", "1"),
                pair("f", "1700000000123"),
                pair("s", "f"),
                pair("t", "00000000000000000000000000000abc"),
            ]
        );
        assert!(ttl > 25_000 && ttl <= 30_000, "in-flight TTL {ttl}");

        assert!(store.release("evt_3", token, WINDOW).await.unwrap());
        let (map, ttl) = fields(&mut raw).await;
        assert_eq!(
            map,
            vec![pair("a", "1"), pair("f", "1700000000123"), pair("s", "r")]
        );
        assert!(ttl > 55_000 && ttl <= 60_000, "released TTL {ttl}");

        store.claim("evt_3", token, IN_FLIGHT, t(5)).await.unwrap();
        assert!(store
            .complete("evt_3", token, WINDOW * 2, t(7))
            .await
            .unwrap());
        let (map, ttl) = fields(&mut raw).await;
        assert_eq!(
            map,
            vec![
                pair("a", "2"),
                pair("c", "1700000007123"),
                pair("f", "1700000000123"),
                pair("s", "d"),
            ]
        );
        assert!(ttl > 115_000 && ttl <= 120_000, "done TTL {ttl}");
    }

    async fn prefixes_keep_applications_apart(one: RedisStore) {
        let other = one.clone().key_prefix(unique_prefix("prefix_other"));
        let (a, b) = (Token::random(), Token::random());
        assert!(matches!(
            one.claim("evt_4", a, IN_FLIGHT, t(0)).await.unwrap(),
            Claim::Claimed { .. }
        ));
        assert!(matches!(
            other.claim("evt_4", b, IN_FLIGHT, t(0)).await.unwrap(),
            Claim::Claimed { .. }
        ));
    }

    async fn two_stores_racing_for_one_key_claim_it_once(first: RedisStore) {
        let second = connect(Backend::of(&first), "race")
            .await
            .unwrap()
            .key_prefix(first.prefix.to_string());
        let start = Arc::new(tokio::sync::Barrier::new(50));
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let store = if i % 2 == 0 {
                    first.clone()
                } else {
                    second.clone()
                };
                let start = Arc::clone(&start);
                tokio::spawn(async move {
                    start.wait().await;
                    store
                        .claim("evt_race", Token::random(), IN_FLIGHT, t(0))
                        .await
                })
            })
            .collect();
        let mut claimed = 0;
        let mut in_flight = 0;
        for task in tasks {
            match task.await.unwrap().unwrap() {
                Claim::Claimed { attempt: 1, .. } => claimed += 1,
                Claim::InFlight { attempts: 1 } => in_flight += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((claimed, in_flight), (1, 49));
    }

    async fn foreign_or_corrupt_values_are_errors(store: RedisStore) {
        let mut raw = store.connection.clone();
        let key = |k: &str| format!("{}{k}", store.prefix);
        let token = Token::random();

        // A value of another type at the key.
        let _: () = ::redis::cmd("SET")
            .arg(key("string"))
            .arg("hello")
            .arg("PX")
            .arg(60_000)
            .query_async(&mut raw)
            .await
            .unwrap();
        // Hashes that are not ours, or were damaged.
        for (name, fields) in [
            ("foreign", vec![("x", "1")]),
            ("state", vec![("s", "zz")]),
            ("in_flight", vec![("s", "f"), ("a", "many")]),
            ("released", vec![("s", "r"), ("a", "1")]),
            ("done", vec![("s", "d"), ("a", "1"), ("c", "soon")]),
        ] {
            let mut cmd = ::redis::cmd("HSET");
            cmd.arg(key(name));
            for (field, value) in fields {
                cmd.arg(field).arg(value);
            }
            let _: i64 = cmd.query_async(&mut raw).await.unwrap();
            let _: i64 = ::redis::cmd("PEXPIRE")
                .arg(key(name))
                .arg(60_000)
                .query_async(&mut raw)
                .await
                .unwrap();
        }

        for name in [
            "string",
            "foreign",
            "state",
            "in_flight",
            "released",
            "done",
        ] {
            let err = store
                .claim(name, token, IN_FLIGHT, t(0))
                .await
                .expect_err(name);
            let message = err.to_string();
            assert!(message.contains("redis claim failed"), "{name}: {message}");
            assert!(std::error::Error::source(&err).is_some());
        }
        assert!(store.complete("string", token, WINDOW, t(0)).await.is_err());
        assert!(store.release("string", token, WINDOW).await.is_err());
        // Nothing was overwritten, and the connection still works.
        let kept: String = ::redis::cmd("GET")
            .arg(key("string"))
            .query_async(&mut raw)
            .await
            .unwrap();
        assert_eq!(kept, "hello");
        assert!(matches!(
            store.claim("fine", token, IN_FLIGHT, t(0)).await.unwrap(),
            Claim::Claimed { attempt: 1, .. }
        ));
    }

    #[tokio::test]
    async fn redis_down_at_construction_fails_fast() {
        let started = std::time::Instant::now();
        let err = RedisStore::connect("redis://127.0.0.1:1/")
            .await
            .expect_err("nothing listens on port 1");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(err.to_string().contains("cannot connect"), "{err}");
        assert!(RedisStore::connect("not a url").await.is_err());
    }

    #[tokio::test]
    async fn a_cluster_down_at_construction_fails_fast() {
        let started = std::time::Instant::now();
        let err = RedisStore::connect_cluster(["redis://127.0.0.1:1/", "redis://127.0.0.1:2/"])
            .await
            .expect_err("nothing listens on ports 1 and 2");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(err.to_string().contains("cannot connect"), "{err}");
        let err = RedisStore::connect_cluster(["redis://127.0.0.1:1/", "not a url"])
            .await
            .expect_err("not a url");
        assert!(err.to_string().contains("cannot connect"), "{err}");
        let none: [&str; 0] = [];
        let err = RedisStore::connect_cluster(none)
            .await
            .expect_err("no node");
        assert!(err.to_string().contains("cannot connect"), "{err}");
    }

    /// Reads one RESP command (an array of bulk strings) off the front of `buf`.
    fn take_command(buf: &mut Vec<u8>) -> Option<Vec<Vec<u8>>> {
        fn line(buf: &[u8], at: usize) -> Option<(usize, usize)> {
            let end = buf[at..].windows(2).position(|w| w == b"\r\n")? + at;
            let n = std::str::from_utf8(&buf[at + 1..end]).ok()?.parse().ok()?;
            Some((n, end + 2))
        }
        let (count, mut at) = line(buf, 0)?;
        let mut parts = Vec::with_capacity(count);
        for _ in 0..count {
            let (len, start) = line(buf, at)?;
            if buf.len() < start + len + 2 {
                return None;
            }
            parts.push(buf[start..start + len].to_vec());
            at = start + len + 2;
        }
        buf.drain(..at);
        Some(parts)
    }

    /// A fake Redis on 127.0.0.1: answers `+OK` to the connection handshake, `reply(command)`
    /// to the scripts (nothing when it returns `None`), and to `CLUSTER SLOTS` a slot map where
    /// it serves every slot, so that it also is a cluster of one node.
    async fn fake_redis(reply: fn(&[u8]) -> Option<&'static [u8]>) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let slots: Arc<[u8]> = format!(
            "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:{}\r\n",
            addr.port()
        )
        .into_bytes()
        .into();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let slots = Arc::clone(&slots);
                // Without tokio's io-util: readiness plus non-blocking reads and writes.
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0; 4096];
                    loop {
                        if socket.readable().await.is_err() {
                            return;
                        }
                        match socket.try_read(&mut chunk) {
                            Ok(0) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                            Err(_) => return,
                        }
                        while let Some(command) = take_command(&mut buf) {
                            let name = command[0].to_ascii_uppercase();
                            let mut answer: &[u8] = match name.as_slice() {
                                b"EVALSHA" | b"EVAL" | b"SCRIPT" => reply(&name).unwrap_or(b""),
                                b"CLUSTER" => &slots,
                                _ => b"+OK\r\n",
                            };
                            while !answer.is_empty() {
                                if socket.writable().await.is_err() {
                                    return;
                                }
                                match socket.try_write(answer) {
                                    Ok(n) => answer = &answer[n..],
                                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                                    Err(_) => return,
                                }
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    /// A store on the fake Redis at `addr`, through each constructor: one node, and a cluster.
    async fn fake_stores(addr: SocketAddr) -> [RedisStore; 2] {
        let url = format!("redis://{addr}/");
        [
            RedisStore::connect(&url).await.unwrap(),
            RedisStore::connect_cluster([&url]).await.unwrap(),
        ]
    }

    #[tokio::test]
    async fn a_hung_redis_is_a_timely_error() {
        let addr = fake_redis(|_| None).await;
        for store in fake_stores(addr).await {
            let store = store.timeout(Duration::from_millis(200));
            a_hung_store_is_a_timely_error(&store).await;
        }
    }

    async fn a_hung_store_is_a_timely_error(store: &RedisStore) {
        for op in ["claim", "complete", "release"] {
            let started = std::time::Instant::now();
            let result = match op {
                "claim" => store
                    .claim("k", Token::random(), IN_FLIGHT, t(0))
                    .await
                    .map(|_| ()),
                "complete" => store
                    .complete("k", Token::random(), WINDOW, t(0))
                    .await
                    .map(|_| ()),
                _ => store
                    .release("k", Token::random(), WINDOW)
                    .await
                    .map(|_| ()),
            };
            let elapsed = started.elapsed();
            let err = result.expect_err(op);
            assert_eq!(
                err.to_string(),
                format!("dedupe store unavailable: redis {op} timed out after 200ms")
            );
            assert!(
                elapsed >= Duration::from_millis(200) && elapsed < Duration::from_millis(700),
                "{op} on {store:?}: {elapsed:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_unexpected_reply_is_an_error() {
        let addr = fake_redis(|name| match name {
            b"EVALSHA" => Some(b"$2\r\nok\r\n"),
            _ => None,
        })
        .await;
        for store in fake_stores(addr).await {
            let store = store.timeout(Duration::from_millis(500));
            let err = store
                .claim("k", Token::random(), IN_FLIGHT, t(0))
                .await
                .unwrap_err();
            assert!(
                err.to_string().contains("redis claim: unexpected reply"),
                "{store:?}: {err}"
            );
            let err = store
                .complete("k", Token::random(), WINDOW, t(0))
                .await
                .unwrap_err();
            assert!(
                err.to_string().contains("redis complete: unexpected reply"),
                "{store:?}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn a_script_missing_from_redis_is_sent_with_the_call() {
        // `EVALSHA` finds no script; `EVAL` answers; `SCRIPT LOAD` would never be answered.
        let addr = fake_redis(|name| match name {
            b"EVALSHA" => Some(b"-NOSCRIPT No matching script. Please use EVAL.\r\n"),
            b"EVAL" => Some(b":1\r\n"),
            _ => None,
        })
        .await;
        for store in fake_stores(addr).await {
            let store = store.timeout(Duration::from_millis(500));
            let renewed = store.renew("k", Token::random(), IN_FLIGHT).await;
            assert!(matches!(renewed, Ok(true)), "{store:?}: {renewed:?}");
        }
    }

    #[tokio::test]
    async fn debug_shows_the_address_but_no_credentials() {
        let addr = fake_redis(|_| None).await;
        let store = RedisStore::connect(format!("redis://app:s3cret-pw@{addr}/3"))
            .await
            .unwrap()
            .key_prefix("myapp:dedupe:");
        let debug = format!("{store:?}");
        assert_eq!(
            debug,
            format!(
                "RedisStore {{ addr: \"{addr}\", key_prefix: \"myapp:dedupe:\", timeout: 1s, .. }}"
            )
        );
        assert!(!debug.contains("s3cret"));
    }

    #[tokio::test]
    async fn debug_shows_the_cluster_nodes_but_no_credentials() {
        let (a, b) = (fake_redis(|_| None).await, fake_redis(|_| None).await);
        let store = RedisStore::connect_cluster([
            format!("redis://app:s3cret-pw@{a}/"),
            format!("redis://app:s3cret-pw@{b}"),
        ])
        .await
        .unwrap()
        .key_prefix("myapp:dedupe:");
        let debug = format!("{store:?}");
        assert_eq!(
            debug,
            format!(
                "RedisStore {{ nodes: [\"{a}\", \"{b}\"], key_prefix: \"myapp:dedupe:\", \
                 timeout: 1s, .. }}"
            )
        );
        assert!(!debug.contains("s3cret"));
    }
}
