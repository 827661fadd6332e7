//! Redis for the tests: one node (`REDIS_URL`) or a Redis Cluster (`REDIS_CLUSTER_URLS`, node
//! URLs separated by commas), each skipped with the reason printed when its variable is unset.

use redis::aio::MultiplexedConnection;
use webhook_monitor::dedupe::RedisStore;

/// Where a test's stores connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One Redis, at `REDIS_URL`.
    Node,
    /// A Redis Cluster, at the node URLs in `REDIS_CLUSTER_URLS`.
    Cluster,
}

impl Backend {
    /// The backend's node URLs, or `None` (and why, printed) when its variable is not set.
    pub fn urls(self) -> Option<Vec<String>> {
        let var = match self {
            Self::Node => "REDIS_URL",
            Self::Cluster => "REDIS_CLUSTER_URLS",
        };
        match std::env::var(var) {
            Ok(urls) => Some(urls.split(',').map(str::to_owned).collect()),
            Err(_) => {
                eprintln!("skipped on {self:?}: {var} is not set (CI sets it)");
                None
            }
        }
    }
}

/// A store on `backend` with the key prefix `prefix`, or `None` (and why) without it.
pub async fn store(backend: Backend, prefix: &str) -> Option<RedisStore> {
    let urls = backend.urls()?;
    let store = match backend {
        Backend::Node => RedisStore::connect(&urls[0]).await,
        Backend::Cluster => RedisStore::connect_cluster(&urls).await,
    };
    let store = store.unwrap_or_else(|e| panic!("{backend:?} at {urls:?} does not answer: {e}"));
    Some(store.key_prefix(prefix.to_owned()))
}

/// A plain connection to each of `backend`'s nodes, with its URL: one for a node, one per node
/// of a cluster (each sees only the keys of its own slots).
pub async fn nodes(backend: Backend) -> Vec<(String, MultiplexedConnection)> {
    let mut nodes = Vec::new();
    for url in backend.urls().unwrap_or_default() {
        let connection = redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("{url} does not answer: {e}"));
        nodes.push((url, connection));
    }
    nodes
}

/// The keys under `prefix` on each of `backend`'s nodes, with the node's URL.
pub async fn keys_per_node(backend: Backend, prefix: &str) -> Vec<(String, Vec<String>)> {
    let mut keys = Vec::new();
    for (url, mut connection) in nodes(backend).await {
        let found: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut connection)
            .await
            .unwrap();
        keys.push((url, found));
    }
    keys
}
