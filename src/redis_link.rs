//! The Redis connection that [`RedisStore`](crate::dedupe::RedisStore) and
//! [`RedisHistory`](crate::history::RedisHistory) share the making of (feature `redis`): one
//! managed connection to one Redis, or redis-rs's cluster connection, behind one
//! [`ConnectionLike`], and Lua scripts sent with `EVALSHA`, then `EVAL` where a node lost them.

use std::{fmt, future::Future, sync::Arc, time::Duration};

use ::redis::{
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
    Client, Cmd, ConnectionAddr, ErrorKind, IntoConnectionInfo, Pipeline, RedisError, RedisFuture,
    RedisResult, Script, ServerErrorKind, Value,
};

/// The per-operation timeout when none is set; also bounds each connection attempt.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Redirections (`MOVED`, `ASK`) and reconnections the cluster client of [`connect_cluster`]
/// follows in one operation before it gives up.
const CLUSTER_RETRIES: u32 = 3;
/// The least and the most the cluster client waits before a retry, in ms. redis-rs's defaults
/// (1,280 ms at least) outlast an operation's timeout: an operation on a stopped node's keys
/// would time out instead of failing fast (measured: 1.3 s to 2.6 s per operation).
const CLUSTER_RETRY_WAIT_MS: [u64; 2] = [10, 100];

/// The connection: to one Redis, or to a Redis Cluster. Cheap to clone (both are handles).
#[derive(Clone)]
pub(crate) enum Connection {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Where a connection goes, as `Debug` shows it.
#[derive(Clone)]
pub(crate) enum Addr {
    /// The owner was given a connection.
    Unknown,
    /// `host:port` or the socket path of one Redis.
    Node(Arc<str>),
    /// The cluster nodes the owner was given, as `host:port`.
    Cluster(Arc<[String]>),
}

impl Addr {
    /// Adds the address to a `Debug` struct: never a password.
    pub(crate) fn debug_into(&self, s: &mut fmt::DebugStruct<'_, '_>) {
        match self {
            Self::Unknown => {}
            Self::Node(addr) => {
                s.field("addr", addr);
            }
            Self::Cluster(nodes) => {
                s.field("nodes", nodes);
            }
        }
    }
}

/// A connection could not be made.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// An invalid URL, or Redis refused.
    Redis(RedisError),
    /// No answer within [`DEFAULT_TIMEOUT`].
    TimedOut,
}

impl Connection {
    /// Connects to one Redis with `client`. No retries inside one reconnection: an operation
    /// that finds the connection down triggers a fresh attempt, so errors come fast while Redis
    /// is down and the first operation after it is back succeeds.
    pub(crate) async fn node(client: Client) -> Result<(Self, Addr), ConnectError> {
        let addr = show_addr(client.get_connection_info().addr());
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(DEFAULT_TIMEOUT))
            .set_response_timeout(None);
        let connection =
            within_connect_timeout(ConnectionManager::new_with_config(client, config)).await?;
        Ok((Self::Node(connection), Addr::Node(addr.into())))
    }

    /// Connects to the Redis Cluster that `urls` are nodes of, with bounded retries (see
    /// [`CLUSTER_RETRIES`]).
    pub(crate) async fn cluster(
        urls: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<(Self, Addr), ConnectError> {
        let nodes = urls
            .into_iter()
            .map(|url| url.as_ref().into_connection_info())
            .collect::<Result<Vec<_>, _>>()
            .map_err(ConnectError::Redis)?;
        let addrs = nodes.iter().map(|node| show_addr(node.addr())).collect();
        let client = ClusterClient::builder(nodes)
            .connection_timeout(DEFAULT_TIMEOUT)
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(CLUSTER_RETRY_WAIT_MS[0])
            .max_retry_wait(CLUSTER_RETRY_WAIT_MS[1])
            .build()
            .map_err(ConnectError::Redis)?;
        Ok((Self::cluster_client(client).await?, Addr::Cluster(addrs)))
    }

    /// Connects with a cluster client configured by its owner.
    pub(crate) async fn cluster_client(client: ClusterClient) -> Result<Self, ConnectError> {
        Ok(Self::Cluster(
            within_connect_timeout(client.get_async_connection()).await?,
        ))
    }

    /// Whether commands on keys of different hash slots must go in different pipelines.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

/// An address as `Debug` shows it: `host:port` or a socket path, never credentials.
fn show_addr(addr: &ConnectionAddr) -> String {
    match addr {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        ConnectionAddr::Unix(path) => path.display().to_string(),
        _ => "(other)".to_owned(),
    }
}

/// Awaits a connection for at most [`DEFAULT_TIMEOUT`].
async fn within_connect_timeout<T>(
    connecting: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, ConnectError> {
    match tokio::time::timeout(DEFAULT_TIMEOUT, connecting).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(ConnectError::Redis(e)),
        Err(_) => Err(ConnectError::TimedOut),
    }
}

/// Every operation goes through this one path, to one Redis or to the cluster.
impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Node(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Node(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Node(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

/// A Lua script: its source, for `EVAL`, and its SHA-1, for `EVALSHA`.
pub(crate) struct Lua {
    pub(crate) source: &'static str,
    pub(crate) hash: String,
}

impl Lua {
    pub(crate) fn new(source: &'static str) -> Self {
        let hash = Script::new(source).get_hash().to_owned();
        Self { source, hash }
    }

    /// Runs the script: `call(verb, script)` builds the command (`EVALSHA` and the hash, or
    /// `EVAL` and the source, then the keys and arguments).
    ///
    /// A refused connection sent nothing: the manager is reconnecting now, so one more try on
    /// the fresh connection is safe, and succeeds once Redis is back. A node that lost its
    /// script cache (a restart, a new node, `SCRIPT FLUSH`) gets the source with the call, to
    /// that node only, which caches it. (redis-rs's own [`Script`] would load it with
    /// `SCRIPT LOAD`, which the cluster client sends to every node: while one node hangs, every
    /// `NOSCRIPT` on the others would wait for it.)
    pub(crate) async fn run(
        &self,
        connection: &mut Connection,
        call: impl Fn(&str, &str) -> Cmd,
    ) -> RedisResult<Value> {
        let evalsha = call("EVALSHA", &self.hash);
        let result = match evalsha.query_async(connection).await {
            Err(e) if e.is_connection_refusal() => evalsha.query_async(connection).await,
            other => other,
        };
        match result {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                call("EVAL", self.source).query_async(connection).await
            }
            other => other,
        }
    }
}
