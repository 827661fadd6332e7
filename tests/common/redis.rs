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

/// A TCP proxy on loopback to `target` (`host:port`) that forwards both ways until the flag it
/// returns is set, then holds every byte it gets (a Redis that stops answering) until it is
/// cleared.
pub async fn stalling_proxy(
    target: &str,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::{atomic::AtomicBool, Arc};
    let target = tokio::net::lookup_host(target)
        .await
        .unwrap()
        .next()
        .unwrap();
    let stall = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let flag = Arc::clone(&stall);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                continue;
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(pump(client_read, server_write, Arc::clone(&flag)));
            tokio::spawn(pump(server_read, client_write, Arc::clone(&flag)));
        }
    });
    (addr, stall)
}

/// Copies `from` to `to`, holding what it reads while `stall` is set.
async fn pump(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    stall: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0; 16 << 10];
    while let Ok(n @ 1..) = from.read(&mut buf).await {
        while stall.load(std::sync::atomic::Ordering::Relaxed) {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// `host:port` of a `redis://` URL.
pub fn host_port(url: &str) -> String {
    match redis::Client::open(url)
        .unwrap()
        .get_connection_info()
        .addr()
    {
        redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        other => panic!("not TCP: {other:?}"),
    }
}

/// Runs `redis-cli` against the Redis on 127.0.0.1 at `port`: its output, or `None` when it
/// could not run or failed.
pub fn cli(port: u16, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
