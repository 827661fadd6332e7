//! `RedisStore` on a Redis Cluster (`REDIS_CLUSTER_URLS`; in CI, three primaries on
//! 127.0.0.1:7001-7003 that `.ci/run` starts): keys spread over every node, scripts loaded
//! again after `SCRIPT FLUSH`, redirections followed while a slot moves, and a node that hangs
//! or stops fails only the operations on its own keys, in time, until it is back.
//!
//! These tests flush scripts, move a slot, pause and restart cluster nodes, so they live in
//! their own test binary (cargo runs test binaries one after another) and take a lock so that
//! they run one at a time. Guards put a moved slot back and restart a stopped node even if an
//! assertion fails.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)]

use std::{
    collections::HashSet,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant, SystemTime},
};

mod common;

use common::redis::{keys_per_node, nodes, Backend};
use webhook_monitor::dedupe::{Claim, DedupeStore, RedisStore, StoreError, Token};

/// One test at a time: they disturb the cluster.
static CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const OP_TIMEOUT: Duration = Duration::from_millis(300);
const TTL: Duration = Duration::from_secs(60);

/// A store on the cluster under a fresh prefix, with the prefix; `None` (and why) without a
/// cluster.
async fn store(test: &str) -> Option<(RedisStore, String)> {
    let prefix = format!(
        "webhook-monitor-test:{test}:{:032x}:",
        Token::random().get()
    );
    let store = common::redis::store(Backend::Cluster, &prefix).await?;
    Some((store.timeout(OP_TIMEOUT), prefix))
}

async fn claim(store: &RedisStore, key: &str, token: Token) -> Result<Claim, StoreError> {
    store.claim(key, token, TTL, SystemTime::now()).await
}

/// Claims `keys` (each must be new), then tells which node each landed on: the keys under
/// `prefix` on each node, by node URL.
async fn claim_all(
    store: &RedisStore,
    prefix: &str,
    keys: &[String],
    token: Token,
) -> Vec<(String, Vec<String>)> {
    for key in keys {
        let claimed = claim(store, key, token).await;
        assert!(
            matches!(claimed, Ok(Claim::Claimed { attempt: 1, .. })),
            "{key}: {claimed:?}"
        );
    }
    keys_per_node(Backend::Cluster, prefix)
        .await
        .into_iter()
        .map(|(url, stored)| {
            let stored = stored
                .into_iter()
                .map(|key| key.strip_prefix(prefix).unwrap().to_owned())
                .collect();
            (url, stored)
        })
        .collect()
}

/// The port of a node URL on 127.0.0.1, or `None` (and why) when the node is elsewhere: the
/// tests that stop a node run only on the loopback interface.
fn local_port(url: &str) -> Option<u16> {
    let rest = url.strip_prefix("redis://").unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, "6379"));
    if host != "127.0.0.1" && host != "localhost" {
        eprintln!("skipping: {url} is not on 127.0.0.1; this test stops a node");
        return None;
    }
    port.parse().ok()
}

/// Whether the node at `port` answers and sees its cluster as `ok`.
fn cluster_ok(port: u16) -> bool {
    common::redis::cli(port, &["cluster", "info"])
        .is_some_and(|info| info.contains("cluster_state:ok"))
}

/// Polls `check` for at most 10 s.
fn wait_until(check: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A cluster node stopped by a test: how to start it again (its own directory and cluster
/// config file, so it rejoins with its slots), which [`Drop`] does if the test did not.
struct StoppedNode {
    port: u16,
    dir: String,
    config_file: String,
}

impl StoppedNode {
    fn stop(port: u16) -> Self {
        let config = |name: &str| {
            let answer = common::redis::cli(port, &["config", "get", name]).unwrap();
            answer.lines().nth(1).unwrap().to_owned()
        };
        let node = Self {
            port,
            dir: config("dir"),
            config_file: config("cluster-config-file"),
        };
        common::redis::cli(port, &["shutdown", "nosave"]);
        assert!(
            wait_until(|| common::redis::cli(port, &["ping"]).is_none()),
            "node {port} did not stop"
        );
        node
    }

    /// Starts the node and waits until every node sees the cluster `ok` again.
    fn start(&self, ports: &[u16]) -> bool {
        let started = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--cluster-enabled", "yes"])
            .args([
                "--cluster-config-file",
                &self.config_file,
                "--dir",
                &self.dir,
            ])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "yes"])
            .stdout(Stdio::null())
            .status();
        started.is_ok_and(|s| s.success()) && wait_until(|| ports.iter().all(|&p| cluster_ok(p)))
    }
}

impl Drop for StoppedNode {
    fn drop(&mut self) {
        if common::redis::cli(self.port, &["ping"]).is_none() && !self.start(&[self.port]) {
            eprintln!("could not restart the cluster node on port {}", self.port);
        }
    }
}

/// The node URLs, their ports on 127.0.0.1, and the URL of the node the test disturbs (the
/// last); `None` (and why) when there is no local cluster.
fn local_cluster() -> Option<(Vec<String>, Vec<u16>, String)> {
    let urls = Backend::Cluster.urls()?;
    let ports = urls
        .iter()
        .map(|url| local_port(url))
        .collect::<Option<Vec<_>>>()?;
    assert!(ports.len() >= 3, "this test needs three nodes: {urls:?}");
    assert!(
        ports.iter().all(|&p| cluster_ok(p)),
        "REDIS_CLUSTER_URLS is set but the cluster is not ok"
    );
    let target = urls.last().unwrap().clone();
    Some((urls, ports, target))
}

/// The keys on the node at `target` and the keys on every other node.
fn split(per_node: Vec<(String, Vec<String>)>, target: &str) -> (Vec<String>, Vec<String>) {
    let (theirs, others): (Vec<_>, Vec<_>) =
        per_node.into_iter().partition(|(url, _)| url == target);
    let flat =
        |v: Vec<(String, Vec<String>)>| v.into_iter().flat_map(|(_, k)| k).collect::<Vec<_>>();
    (flat(theirs), flat(others))
}

#[tokio::test]
async fn keys_spread_over_every_node() {
    let Some((store, prefix)) = store("spread").await else {
        return;
    };
    let _one_at_a_time = CLUSTER.lock().await;
    let keys: Vec<String> = (0..300).map(|i| format!("orders:id:evt_{i}")).collect();
    let per_node = claim_all(&store, &prefix, &keys, Token::random()).await;
    let counts: Vec<(&str, usize)> = per_node
        .iter()
        .map(|(url, k)| (url.as_str(), k.len()))
        .collect();
    eprintln!("300 deliveries claimed, keys per node: {counts:?}");
    assert!(per_node.len() >= 3, "{counts:?}");
    assert!(
        counts.iter().all(|&(_, n)| n > 0),
        "a node holds no key: {counts:?}"
    );
    let stored: HashSet<&String> = per_node.iter().flat_map(|(_, k)| k).collect();
    assert_eq!(
        counts.iter().map(|(_, n)| n).sum::<usize>(),
        300,
        "{counts:?}"
    );
    assert_eq!(
        stored,
        keys.iter().collect(),
        "each key on exactly one node"
    );
}

#[tokio::test]
async fn scripts_flushed_from_every_node_are_loaded_again() {
    let Some((store, prefix)) = store("noscript").await else {
        return;
    };
    let _one_at_a_time = CLUSTER.lock().await;
    let flush = || async {
        for (url, mut node) in nodes(Backend::Cluster).await {
            let _: () = redis::cmd("SCRIPT")
                .arg("FLUSH")
                .query_async(&mut node)
                .await
                .unwrap();
            assert_eq!(cached_scripts(&mut node).await, 0, "{url}");
        }
    };
    let keys: Vec<String> = (0..30).map(|i| format!("evt_{i}")).collect();
    let (a, b) = (Token::random(), Token::random());

    // Each operation first runs on nodes that do not know its script.
    flush().await;
    let per_node = claim_all(&store, &prefix, &keys, a).await;
    assert!(per_node.iter().all(|(_, k)| !k.is_empty()), "{per_node:?}");
    flush().await;
    for key in &keys {
        assert!(store.renew(key, a, TTL).await.unwrap(), "renew {key}");
    }
    flush().await;
    for key in &keys[..15] {
        assert!(
            store
                .complete(key, a, TTL, SystemTime::now())
                .await
                .unwrap(),
            "complete {key}"
        );
    }
    flush().await;
    for key in &keys[15..] {
        assert!(store.release(key, a, TTL).await.unwrap(), "release {key}");
    }
    for (i, key) in keys.iter().enumerate() {
        let again = claim(&store, key, b).await.unwrap();
        if i < 15 {
            assert!(
                matches!(again, Claim::Done { attempts: 1, .. }),
                "{key}: {again:?}"
            );
        } else {
            assert!(
                matches!(again, Claim::Claimed { attempt: 2, .. }),
                "{key}: {again:?}"
            );
        }
    }
    for (url, mut node) in nodes(Backend::Cluster).await {
        let cached = cached_scripts(&mut node).await;
        eprintln!("{url}: {cached} scripts cached again");
        assert!(cached > 0, "{url}");
    }
}

/// `number_of_cached_scripts` in the node's `INFO memory`.
async fn cached_scripts(node: &mut redis::aio::MultiplexedConnection) -> usize {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(node)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("number_of_cached_scripts:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A node that hangs (`CLIENT PAUSE 3000 ALL`: it holds every client's commands for 3 s, as a
/// hung node would, and keeps its place in the cluster): operations on its keys fail with a
/// timeout instead of hanging, operations on the other nodes' keys go on, even on nodes that
/// lost their scripts meanwhile; once it answers again, so do its keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_node_times_out_on_its_own_keys_and_the_others_go_on() {
    let Some((_, ports, target)) = local_cluster() else {
        return;
    };
    let Some((store, prefix)) = store("hung").await else {
        return;
    };
    let _one_at_a_time = CLUSTER.lock().await;
    let keys: Vec<String> = (0..60).map(|i| format!("evt_{i}")).collect();
    let token = Token::random();
    let (theirs, others) = split(claim_all(&store, &prefix, &keys, token).await, &target);
    assert!(
        !theirs.is_empty() && !others.is_empty(),
        "{theirs:?} {others:?}"
    );
    let port = local_port(&target).unwrap();

    common::redis::cli(port, &["client", "pause", "3000", "all"]).unwrap();
    let paused = Instant::now();
    for key in &theirs[..2] {
        let started = Instant::now();
        let err = store
            .renew(key, token, TTL)
            .await
            .expect_err("the node hangs");
        let elapsed = started.elapsed();
        eprintln!("renew on the hung node: {err} after {elapsed:?}");
        assert!(err.to_string().contains("timed out after 300ms"), "{err}");
        assert!(
            elapsed < OP_TIMEOUT + Duration::from_millis(200),
            "{elapsed:?}"
        );
    }
    for key in &others {
        assert!(store.renew(key, token, TTL).await.unwrap(), "renew {key}");
    }
    // Nor do nodes that lost their scripts meanwhile wait for the hung one.
    for &other in ports.iter().filter(|&&p| p != port) {
        common::redis::cli(other, &["script", "flush"]).unwrap();
    }
    for key in &others {
        let renewed = store.renew(key, token, TTL).await;
        assert!(
            matches!(renewed, Ok(true)),
            "renew {key} after SCRIPT FLUSH: {renewed:?}"
        );
    }
    let err = claim(&store, &theirs[0], Token::random()).await;
    assert!(err.is_err(), "{err:?}");
    assert!(
        paused.elapsed() < Duration::from_millis(2500),
        "the node hung throughout"
    );

    // Back (a PING waits for the pause to end): every operation on its keys works again.
    assert!(
        tokio::task::spawn_blocking(move || wait_until(
            || common::redis::cli(port, &["ping"]).is_some()
        ))
        .await
        .unwrap()
    );
    for key in &theirs {
        assert!(store.renew(key, token, TTL).await.unwrap(), "renew {key}");
        let copy = claim(&store, key, Token::random()).await;
        assert!(
            matches!(copy, Ok(Claim::InFlight { attempts: 1 })),
            "{key}: {copy:?}"
        );
        assert!(
            store
                .complete(key, token, TTL, SystemTime::now())
                .await
                .unwrap(),
            "{key}"
        );
    }
}

/// A node that stops (`SHUTDOWN NOSAVE`) and restarts after a few seconds, well within the
/// cluster's node timeout (so the cluster stays `ok`): operations on its keys fail fast with a
/// [`StoreError`], operations on the other nodes' keys go on; once it is back (empty: the nodes
/// keep no data, nor scripts), the same store works on its keys again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_fails_its_own_keys_fast_until_it_is_back() {
    let Some((_, ports, target)) = local_cluster() else {
        return;
    };
    let Some((store, prefix)) = store("stopped").await else {
        return;
    };
    let _one_at_a_time = CLUSTER.lock().await;
    let test = async {
        let keys: Vec<String> = (0..60).map(|i| format!("evt_{i}")).collect();
        let token = Token::random();
        let (theirs, others) = split(claim_all(&store, &prefix, &keys, token).await, &target);
        assert!(
            !theirs.is_empty() && !others.is_empty(),
            "{theirs:?} {others:?}"
        );
        let port = local_port(&target).unwrap();

        let stopped = tokio::task::spawn_blocking(move || StoppedNode::stop(port))
            .await
            .unwrap();
        let down = Instant::now();
        for round in 0..3 {
            for key in &theirs[..2] {
                let started = Instant::now();
                let err = store
                    .renew(key, token, TTL)
                    .await
                    .expect_err("the node is down");
                let elapsed = started.elapsed();
                eprintln!("down, round {round}: renew failed after {elapsed:?}: {err}");
                // Failed, not timed out.
                assert!(!err.to_string().contains("timed out"), "{err}");
                assert!(elapsed < OP_TIMEOUT, "{elapsed:?}");
            }
            for key in &others {
                assert!(store.renew(key, token, TTL).await.unwrap(), "renew {key}");
            }
        }
        let down_for = down.elapsed();
        assert!(down_for < Duration::from_secs(5), "{down_for:?}");

        let stopped = tokio::task::spawn_blocking(move || {
            let back = stopped.start(&ports);
            (stopped, back)
        });
        let (_stopped, back) = stopped.await.unwrap();
        assert!(back, "the node did not rejoin the cluster");

        // Back, and empty: its keys are new, the others' still claimed.
        for key in &theirs {
            let again = claim(&store, key, Token::random()).await;
            assert!(
                matches!(again, Ok(Claim::Claimed { attempt: 1, .. })),
                "{key}: {again:?}"
            );
        }
        for key in &others {
            let copy = claim(&store, key, Token::random()).await;
            assert!(
                matches!(copy, Ok(Claim::InFlight { attempts: 1 })),
                "{key}: {copy:?}"
            );
        }
    };
    tokio::time::timeout(Duration::from_secs(60), test)
        .await
        .expect("the test finished within 60 s");
}

/// A slot that moves to another node while the store is connected (as in a resharding; here an
/// empty slot, moved by hand): redis-rs's cluster client follows the `ASK` redirection while
/// the slot migrates and the `MOVED` one after, so the store's operations on it succeed.
#[tokio::test]
async fn moved_and_ask_redirections_are_followed() {
    let Some((urls, ports, _)) = local_cluster() else {
        return;
    };
    let Some((store, prefix)) = store("moved").await else {
        return;
    };
    let _one_at_a_time = CLUSTER.lock().await;
    let cli = |node: usize, args: &[&str]| {
        common::redis::cli(ports[node], args)
            .unwrap()
            .trim()
            .to_owned()
    };
    // A key whose slot holds nothing else, so that the slot can move without its keys.
    let mut candidates = (0..).map(|i| format!("evt_{i}"));
    let (key, full, slot, from) = loop {
        let key = candidates.next().unwrap();
        let full = format!("{prefix}{key}");
        let slot = cli(0, &["cluster", "keyslot", &full]);
        let from = owner(&ports, &slot);
        if cli(from, &["cluster", "countkeysinslot", &slot]) == "0" {
            break (key, full, slot, from);
        }
    };
    let to = (from + 1) % ports.len();
    let node_of = |per_node: &[(String, Vec<String>)]| {
        let url = &per_node.iter().find(|(_, k)| !k.is_empty())?.0;
        urls.iter().position(|u| u == url)
    };
    let ids: Vec<String> = (0..ports.len())
        .map(|n| cli(n, &["cluster", "myid"]))
        .collect();
    let restore = RestoreSlot {
        ports: ports.clone(),
        ids: ids.clone(),
        slot: slot.clone(),
        owner: from,
        moved_to: to,
        key: full,
    };

    // Migrating: the old owner answers `ASK`, the client asks the new one.
    assert_eq!(
        cli(to, &["cluster", "setslot", &slot, "importing", &ids[from]]),
        "OK"
    );
    assert_eq!(
        cli(from, &["cluster", "setslot", &slot, "migrating", &ids[to]]),
        "OK"
    );
    let token = Token::random();
    let claimed = claim_all(&store, &prefix, std::slice::from_ref(&key), token).await;
    assert_eq!(node_of(&claimed), Some(to), "{claimed:?}");

    // Moved: every node says so, and the old owner answers `MOVED`.
    for node in new_owner_first(to, from, ports.len()) {
        assert_eq!(
            cli(node, &["cluster", "setslot", &slot, "node", &ids[to]]),
            "OK"
        );
    }
    let copy = claim(&store, &key, Token::random()).await;
    assert!(
        matches!(copy, Ok(Claim::InFlight { attempts: 1 })),
        "{copy:?}"
    );
    assert!(store
        .complete(&key, token, TTL, SystemTime::now())
        .await
        .unwrap());

    // The slot goes back, empty, the same way; the store follows again.
    drop(restore);
    let back = claim_all(&store, &prefix, &[key], Token::random()).await;
    assert_eq!(node_of(&back), Some(from), "{back:?}");
}

/// Which of the nodes on `ports` serves `slot`, as the first node's `CLUSTER NODES` says.
fn owner(ports: &[u16], slot: &str) -> usize {
    let slot: u16 = slot.parse().unwrap();
    let nodes = common::redis::cli(ports[0], &["cluster", "nodes"]).unwrap();
    let line = nodes
        .lines()
        .find(|line| {
            line.split(' ').skip(8).any(|range| {
                let (start, end) = range.split_once('-').unwrap_or((range, range));
                matches!(
                    (start.parse::<u16>(), end.parse::<u16>()),
                    (Ok(start), Ok(end)) if (start..=end).contains(&slot)
                )
            })
        })
        .unwrap();
    // `id host:port@bus-port …`
    let port: u16 = line.split([':', '@']).nth(1).unwrap().parse().unwrap();
    ports.iter().position(|&p| p == port).unwrap()
}

/// The order in which the nodes learn a slot's new owner: the new owner first (which bumps its
/// config epoch), the old one next, then the others.
fn new_owner_first(new: usize, old: usize, nodes: usize) -> impl Iterator<Item = usize> {
    [new, old]
        .into_iter()
        .chain((0..nodes).filter(move |&n| n != new && n != old))
}

/// A slot moved by a test: [`Drop`] deletes the test's key in it and gives it back to its
/// owner, from wherever the test stopped (stable, migrating or moved), so a failed assertion
/// leaves the cluster as it found it.
struct RestoreSlot {
    ports: Vec<u16>,
    ids: Vec<String>,
    slot: String,
    owner: usize,
    moved_to: usize,
    key: String,
}

impl Drop for RestoreSlot {
    fn drop(&mut self) {
        let cli = |node: usize, args: &[&str]| common::redis::cli(self.ports[node], args);
        let (owner, moved_to, slot) = (self.owner, self.moved_to, self.slot.as_str());
        // Errors are expected for the steps that do not apply (a node that does not hold the
        // key, a slot not migrating, a node that owns it already).
        for node in 0..self.ports.len() {
            cli(node, &["del", &self.key]);
            cli(node, &["cluster", "setslot", slot, "stable"]);
        }
        cli(
            owner,
            &["cluster", "setslot", slot, "importing", &self.ids[moved_to]],
        );
        cli(
            moved_to,
            &["cluster", "setslot", slot, "migrating", &self.ids[owner]],
        );
        for node in new_owner_first(owner, moved_to, self.ports.len()) {
            cli(
                node,
                &["cluster", "setslot", slot, "node", &self.ids[owner]],
            );
        }
    }
}
