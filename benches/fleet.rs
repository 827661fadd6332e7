//! The fleet history in Redis (feature `redis`): what `RedisHistory` asks of Redis per batch
//! and what the fleet watchers ask per tick (`INFO commandstats`), what the reporter's worker
//! spends per report with the history on and off (this process's CPU time, Redis's excluded),
//! and what the history's keys weigh in Redis (`MEMORY USAGE`).
//!
//! Everything runs against a `redis-server` of the bench's own on a free loopback port, without
//! persistence (`--save "" --appendonly no`), started at the beginning and shut down at the
//! end, so that no other client's commands are counted. The reports are real delivery reports
//! (the JSON of docs/report-schema.md, read back): 94 % successes, 3 % 500s, 2 % bad
//! signatures, 1 % duplicates, one in 25 a retry, one in 50 flagged `near_timeout`, latencies
//! spread evenly on a log scale from 5 ms to 160 ms (40 latency buckets), about 630 bytes of
//! JSON each.
//!
//! Run with `cargo bench --features redis --bench fleet` (about 4 minutes), or with `-- commands`,
//! `-- ticks`, `-- rate`, `-- cpu` or `-- memory` for one part. `-- callgrind` (not in the
//! default run) only sends 21 batches of 512 reports, to run under
//! `valgrind --tool=callgrind` (see BENCHMARKS.md).

use std::{
    collections::BTreeMap,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use redis::aio::MultiplexedConnection;
use webhook_monitor::{
    history::RedisHistory,
    report::{Fanout, MemorySink, Reporter, Sink, SinkOptions},
    Report,
};

/// A `redis-server` of the bench's own, shut down when dropped.
struct OwnRedis {
    port: u16,
    dir: std::path::PathBuf,
}

impl OwnRedis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("wm-bench-fleet-redis-{port}"));
        std::fs::create_dir_all(&dir).expect("a directory for redis-server");
        let started = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--daemonize", "yes", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .status();
        assert!(
            started.is_ok_and(|s| s.success()),
            "redis-server could not be started (apt-get install -y redis-server)"
        );
        let redis = Self { port, dir };
        for _ in 0..100 {
            if redis.cli(&["ping"]).is_some_and(|o| o == "PONG") {
                return redis;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server on port {port} did not answer");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    async fn connection(&self) -> MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("a valid URL")
            .get_multiplexed_async_connection()
            .await
            .expect("a connection")
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.cli(&["shutdown", "nosave"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What Redis counted since the last `CONFIG RESETSTAT`: calls per command, reads processed
/// (one per request a client's socket delivered: a pipeline that fits one read is one), and
/// Redis's own CPU seconds (not reset: read it as a difference).
#[derive(Debug, Default, Clone)]
struct Stats {
    calls: BTreeMap<String, u64>,
    reads: u64,
    /// Bytes Redis read from and wrote to its clients (the INFO request included).
    bytes_in: u64,
    bytes_out: u64,
    cpu: f64,
    /// Redis's CPU seconds since the reading taken after the reset (see [`measure`]).
    cpu_spent: f64,
}

async fn reset(con: &mut MultiplexedConnection) {
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async::<()>(con)
        .await
        .expect("CONFIG RESETSTAT");
}

fn info() -> redis::Cmd {
    let mut cmd = redis::cmd("INFO");
    cmd.arg("commandstats").arg("stats").arg("cpu");
    cmd
}

async fn stats(con: &mut MultiplexedConnection) -> Stats {
    let text: String = info().query_async(con).await.expect("INFO");
    let mut stats = Stats::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("cmdstat_") {
            let (name, fields) = rest.split_once(':').expect("cmdstat_<name>:calls=…");
            // This bench's own commands are not the history's.
            if name == "info" || name.starts_with("config") || name == "flushall" {
                continue;
            }
            let calls = fields
                .split(',')
                .find_map(|f| f.strip_prefix("calls="))
                .and_then(|n| n.parse().ok())
                .expect("calls=");
            stats.calls.insert(name.to_owned(), calls);
        } else if let Some(n) = line.strip_prefix("total_net_input_bytes:") {
            // Less the INFO request itself (its reply is not counted yet).
            let request = info().get_packed_command().len() as u64;
            stats.bytes_in = n
                .trim()
                .parse::<u64>()
                .expect("bytes")
                .saturating_sub(request);
        } else if let Some(n) = line.strip_prefix("total_net_output_bytes:") {
            stats.bytes_out = n.trim().parse().expect("bytes");
        } else if let Some(n) = line.strip_prefix("total_reads_processed:") {
            // The INFO request itself is one read.
            stats.reads = n.trim().parse::<u64>().expect("a count").saturating_sub(1);
        } else if let Some(s) = line.strip_prefix("used_cpu_user:") {
            stats.cpu += s.trim().parse::<f64>().expect("seconds");
        } else if let Some(s) = line.strip_prefix("used_cpu_sys:") {
            stats.cpu += s.trim().parse::<f64>().expect("seconds");
        }
    }
    stats
}

/// Delivery report `i` of the mix, on `route`, received at `at`.
fn report(route: &str, i: u64, at: SystemTime) -> Report {
    let received = humantime::format_rfc3339_micros(at);
    // Latencies evenly spread on a log scale over 5 ms to 160 ms: 5 doublings, 8 buckets each.
    let spread = ((i as f64) * 0.618_033_988_7).fract();
    let total_us = (5_000.0 * 2f64.powf(5.0 * spread)) as u64;
    let (status, outcome, detail, signature, reason) = match i % 100 {
        0..=93 => ("200", "success", "null", "verified", "null"),
        94..=96 => (
            "500",
            "failure",
            r#""server_error""#,
            "verified",
            r#""downstream unavailable""#,
        ),
        97..=98 => (
            "401",
            "rejected",
            r#""bad_signature""#,
            "failed",
            r#""no signature matched""#,
        ),
        _ => ("200", "duplicate", "null", "verified", "null"),
    };
    let handler_us = if outcome == "rejected" || outcome == "duplicate" {
        0
    } else {
        total_us - 40
    };
    let secret_index = if signature == "verified" { "0" } else { "null" };
    let times_seen = if i % 25 == 3 { 2 } else { 1 };
    let retry_ms = if times_seen > 1 { "61000" } else { "null" };
    let flags = if i % 50 == 7 {
        r#"["near_timeout"]"#
    } else {
        "[]"
    };
    let line = format!(
        r#"{{"type":"delivery","route":"{route}","provider":"stripe","delivery_id":"evt_1Q{i:022}","event_type":"invoice.payment_succeeded","attempt":null,"signature":"{signature}","secret_index":{secret_index},"status":{status},"outcome":"{outcome}","outcome_detail":{detail},"reason":{reason},"payload_check":null,"received_at":"{received}","body_read_us":31,"handler_us":{handler_us},"total_us":{total_us},"body_bytes":2311,"fingerprint":"xxh3-128:5b7d2e4f0c1a9e8d7c6b5a4f3e2d1c0b","times_seen":{times_seen},"first_seen":"{received}","mean_retry_interval_ms":{retry_ms},"lag_ms":412,"flags":{flags},"fields":{{"customer":"cus_Q8xY2fA1bC3dE4","amount":2000}}}}"#
    );
    serde_json::from_str(&line).expect("a delivery report")
}

/// `n` reports of the mix over `routes` routes (round robin), all received now.
fn reports(n: u64, routes: u64, first: u64) -> Vec<Report> {
    let now = SystemTime::now();
    (first..first + n)
        .map(|i| report(&format!("route-{:02}", i % routes), i, now))
        .collect()
}

fn prefix(part: &str) -> String {
    format!("wm-bench:{part}:{:08x}:", fastrand::u32(..))
}

async fn history(redis: &OwnRedis, prefix: &str, instance: &str) -> RedisHistory {
    RedisHistory::builder()
        .key_prefix(prefix)
        .instance(instance)
        .connect(redis.url())
        .await
        .expect("the bench's redis")
}

fn print_calls(title: &str, stats: &Stats, per: &[(&str, f64)]) {
    println!("{title}");
    let header: Vec<String> = per.iter().map(|(name, _)| format!("{name:>14}")).collect();
    println!("  {:<12} {}", "command", header.join(" "));
    let total: u64 = stats.calls.values().sum();
    let mut rows: Vec<(&String, &u64)> = stats.calls.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (name, calls) in rows.into_iter().chain([(&"(all)".to_owned(), &total)]) {
        let cells: Vec<String> = per
            .iter()
            .map(|(_, n)| format!("{:>14.2}", *calls as f64 / n))
            .collect();
        println!("  {name:<12} {}", cells.join(" "));
    }
    let cells: Vec<String> = per
        .iter()
        .map(|(_, n)| format!("{:>14.2}", stats.reads as f64 / n))
        .collect();
    println!("  {:<12} {}", "(reads)", cells.join(" "));
    for (what, bytes) in [
        ("(bytes in)", stats.bytes_in),
        ("(bytes out)", stats.bytes_out),
    ] {
        let cells: Vec<String> = per
            .iter()
            .map(|(_, n)| format!("{:>14.0}", bytes as f64 / n))
            .collect();
        println!("  {what:<12} {}", cells.join(" "));
    }
    let cells: Vec<String> = per
        .iter()
        .map(|(_, n)| format!("{:>14.1}", stats.cpu_spent * 1e6 / n))
        .collect();
    println!("  {:<12} {}", "(redis µs)", cells.join(" "));
}

/// Resets Redis's counters, runs `work`, and reads them: the commands `work` sent, and the
/// CPU Redis spent meanwhile (read before the reset, so that after it only `work` counts).
async fn measure(
    con: &mut MultiplexedConnection,
    work: impl std::future::Future<Output = ()>,
) -> Stats {
    let before = stats(con).await;
    reset(con).await;
    work.await;
    let mut after = stats(con).await;
    after.cpu_spent = after.cpu - before.cpu;
    after
}

/// Part (a): commands per batch of `Sink::send`, by batch size and routes per batch.
async fn commands(redis: &OwnRedis) {
    println!("== commands per batch: RedisHistory as a Sink, Sink::send called directly ==");
    let mut con = redis.connection().await;
    for (size, routes, batches) in [
        (1, 1, 200),
        (64, 1, 50),
        (512, 1, 20),
        (64, 10, 50),
        (512, 10, 20),
    ] {
        let prefix = prefix("commands");
        let history = history(redis, &prefix, "web-1").await;
        let batch_list: Vec<Vec<Report>> = (0..batches)
            .map(|b| reports(size, routes, b * size))
            .collect();
        // One batch first: the connection and what redis-rs sends once are not counted.
        history.send(&batch_list[0]).await.expect("written");
        let stats = measure(&mut con, async {
            for batch in &batch_list[1..] {
                history.send(batch).await.expect("written");
            }
        })
        .await;
        let sent = (batches - 1) as f64;
        let status = history.status(Duration::from_secs(60));
        assert_eq!(status.failed_writes, 0, "{status:?}");
        print_calls(
            &format!(
                "batches of {size} report(s) over {routes} route(s), {} batches:",
                batches - 1
            ),
            &stats,
            &[("per batch", sent), ("per delivery", sent * size as f64)],
        );
    }
}

/// Part (a), the ticks: what a lease holder and a follower send per tick, with no traffic.
async fn ticks(redis: &OwnRedis) {
    println!("\n== fleet ticks: lease 3 s (a tick a second), 10 s each, no traffic ==");
    let mut con = redis.connection().await;
    for routes in [1u64, 10] {
        for leader in [true, false] {
            let prefix = prefix("ticks");
            let history = history(redis, &prefix, "web-1").await;
            // The routes exist: one batch over them.
            history
                .send(&reports(routes * 4, routes, 0))
                .await
                .expect("written");
            if !leader {
                // Someone else holds the lease for the whole run.
                redis::cmd("SET")
                    .arg(format!("{prefix}{{fleet}}:lease"))
                    .arg("web-0")
                    .arg("PX")
                    .arg(60_000)
                    .query_async::<()>(&mut con)
                    .await
                    .expect("SET");
            }
            let fleet = history.fleet().lease_ttl(Duration::from_secs(3));
            let (reporter, guard) = Reporter::builder().fleet(fleet).spawn(history.clone());
            // The first tick (1 s) takes the lease and reads every route's past for the first
            // time; steady state from the next.
            tokio::time::sleep(Duration::from_millis(2500)).await;
            assert_eq!(history.status(Duration::from_secs(60)).leader, leader);
            let start = Instant::now();
            let stats = measure(&mut con, tokio::time::sleep(Duration::from_secs(10))).await;
            let elapsed = start.elapsed().as_secs_f64();
            // A leader renews once a tick (EVALSHA); a follower tries SET NX once a tick.
            let ticks = if leader {
                stats.calls.get("evalsha").copied().unwrap_or(0)
            } else {
                stats.calls.get("set").copied().unwrap_or(0)
            };
            print_calls(
                &format!(
                    "{}, {routes} route(s): {ticks} ticks in {elapsed:.1} s",
                    if leader { "lease holder" } else { "follower" },
                ),
                &stats,
                &[("per tick", ticks as f64), ("per second", elapsed)],
            );
            drop(reporter);
            guard
                .shutdown(Duration::from_secs(5))
                .await
                .expect("drained");
        }
    }
}

/// This process's CPU time so far: the on-CPU time of each of its threads
/// (`/proc/self/task/*/schedstat`, nanoseconds).
fn cpu_ns() -> u64 {
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    tasks
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

/// A reporter into a `Fanout` of a `MemorySink`, and of `history` when given, each entry's
/// queue large enough for `capacity` reports.
fn fanout(
    history: Option<&RedisHistory>,
    capacity: usize,
) -> (Reporter, webhook_monitor::ReporterGuard) {
    let options = SinkOptions::new().queue_capacity(capacity);
    let mut sink = Fanout::new().sink_with("memory", MemorySink::new(), options.clone());
    if let Some(history) = history {
        sink = sink.sink_with("fleet", history.clone(), options);
    }
    Reporter::builder().queue_capacity(capacity).spawn(sink)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// Part (b): CPU per report through the reporter, the history off and on, `n` reports pushed
/// at once (batches of 512), written before `shutdown` returns.
async fn cpu(redis: &OwnRedis) {
    const N: u64 = 100_000;
    const RUNS: usize = 7;
    println!("\n== worker CPU per report: {N} reports at once, {RUNS} runs each, alternating ==");
    let mut con = redis.connection().await;
    for routes in [1u64, 10] {
        let all = reports(N, routes, 0);
        let mut off = Vec::new();
        let mut on = Vec::new();
        let mut redis_cpu = Vec::new();
        for run in 0..RUNS * 2 {
            let with_history = run % 2 == 1;
            let sink_history = match with_history {
                true => Some(history(redis, &prefix("cpu"), "web-1").await),
                false => None,
            };
            let (reporter, guard) = fanout(sink_history.as_ref(), N as usize);
            let redis_before = stats(&mut con).await.cpu;
            let before = cpu_ns();
            for report in &all {
                reporter.try_report(report.clone());
            }
            guard
                .shutdown(Duration::from_secs(60))
                .await
                .expect("drained");
            let spent = (cpu_ns() - before) as f64 / N as f64;
            let stats = reporter.stats();
            assert_eq!(stats.dropped_full + stats.dropped_closed, 0, "{stats:?}");
            if let Some(history) = &sink_history {
                let status = history.status(Duration::from_secs(60));
                assert_eq!(
                    (status.failed_writes, status.lost_deliveries),
                    (0, 0),
                    "{status:?}"
                );
                let redis_after = self::stats(&mut con).await.cpu;
                redis_cpu.push((redis_after - redis_before) * 1e9 / N as f64);
                on.push(spent);
            } else {
                off.push(spent);
            }
            redis::cmd("FLUSHALL")
                .query_async::<()>(&mut con)
                .await
                .expect("FLUSHALL");
        }
        let fmt = |v: &[f64]| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            v.iter()
                .map(|x| format!("{:.0}", x))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "{routes} route(s): ns of this process's CPU per report, median (sorted runs)\n  \
             off (MemorySink):          {:>7.0}  ({})\n  \
             on (+ RedisHistory):       {:>7.0}  ({})\n  \
             history's cost:            {:>7.0}\n  \
             redis-server's CPU, on:    {:>7.0}  ({})",
            median(off.clone()),
            fmt(&off),
            median(on.clone()),
            fmt(&on),
            median(on.clone()) - median(off.clone()),
            median(redis_cpu.clone()),
            fmt(&redis_cpu),
        );
    }
}

/// Part (a) at a rate: one instance receiving `per_second` deliveries (random arrivals) for
/// 10 s, the reporter on its defaults (batches of up to 512, 5 ms linger, the history behind a
/// `Fanout` next to a `MemorySink`): batches, round trips and commands per second, and the CPU
/// per report with the history on and off.
async fn rate(redis: &OwnRedis) {
    const SECONDS: u64 = 10;
    println!("\n== one instance at a steady rate, {SECONDS} s, reporter defaults ==");
    let mut con = redis.connection().await;
    for (per_second, routes) in [(200u64, 1u64), (200, 10), (2000, 10)] {
        let n = per_second * SECONDS;
        let all = reports(n, routes, 0);
        // Arrival times: exponential gaps (a Poisson process) at the rate.
        let mut at = 0.0;
        let arrivals: Vec<Duration> = (0..n)
            .map(|_| {
                at += -(1.0 - fastrand::f64()).ln() / per_second as f64;
                Duration::from_secs_f64(at)
            })
            .collect();
        let mut cpu = [Vec::new(), Vec::new()];
        let mut last = Stats::default();
        let mut redis_cpu = Vec::new();
        for run in 0..6 {
            let with_history = run % 2 == 1;
            let sink_history = match with_history {
                true => Some(history(redis, &prefix("rate"), "web-1").await),
                false => None,
            };
            let (reporter, guard) = fanout(sink_history.as_ref(), 8192);
            let mut spent = 0.0;
            let measured = measure(&mut con, async {
                let before = cpu_ns();
                let start = tokio::time::Instant::now();
                for (report, at) in all.iter().zip(&arrivals) {
                    tokio::time::sleep_until(start + *at).await;
                    reporter.try_report(report.clone());
                }
                guard
                    .shutdown(Duration::from_secs(30))
                    .await
                    .expect("drained");
                spent = (cpu_ns() - before) as f64 / n as f64;
            })
            .await;
            cpu[usize::from(with_history)].push(spent);
            if with_history {
                redis_cpu.push(measured.cpu_spent * 1e9 / n as f64);
                last = measured;
                let stats = reporter.stats();
                assert_eq!(stats.dropped_full + stats.dropped_closed, 0, "{stats:?}");
            }
            redis::cmd("FLUSHALL")
                .query_async::<()>(&mut con)
                .await
                .expect("FLUSHALL");
        }
        let batches = last.calls.get("exec").copied().unwrap_or(0);
        print_calls(
            &format!(
                "{per_second} deliveries/s over {routes} route(s): {batches} batches written in the last run ({:.1} reports a batch)\n  \
                 CPU ns per report, this process: off {:?}, on {:?} (median difference {:.0}); redis-server's, on: {:?}",
                n as f64 / batches.max(1) as f64,
                cpu[0].iter().map(|x| x.round()).collect::<Vec<_>>(),
                cpu[1].iter().map(|x| x.round()).collect::<Vec<_>>(),
                median(cpu[1].clone()) - median(cpu[0].clone()),
                redis_cpu.iter().map(|x| x.round()).collect::<Vec<_>>(),
            ),
            &last,
            &[
                ("per second", SECONDS as f64),
                ("per batch", batches as f64),
                ("per delivery", n as f64),
            ],
        );
    }
}

/// `MEMORY USAGE` (every element sampled), `OBJECT ENCODING` and the length of `key`.
async fn weigh(con: &mut MultiplexedConnection, what: &str, key: &str) {
    let bytes: Option<u64> = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .arg("SAMPLES")
        .arg(0)
        .query_async(con)
        .await
        .expect("MEMORY USAGE");
    let encoding: Option<String> = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg(key)
        .query_async(con)
        .await
        .expect("OBJECT ENCODING");
    let kind: String = redis::cmd("TYPE")
        .arg(key)
        .query_async(con)
        .await
        .expect("TYPE");
    let len: u64 = match kind.as_str() {
        "hash" => redis::cmd("HLEN").arg(key).query_async(con).await,
        "stream" => redis::cmd("XLEN").arg(key).query_async(con).await,
        "set" => redis::cmd("SCARD").arg(key).query_async(con).await,
        "list" => redis::cmd("LLEN").arg(key).query_async(con).await,
        _ => Ok(1),
    }
    .expect("a length");
    println!(
        "  {what:<44} {:>8} bytes  {kind:<6} {:<10} {len:>5} fields/entries  ({key})",
        bytes.unwrap_or(0),
        encoding.unwrap_or_default(),
    );
}

/// Part (c): what each kind of key weighs after realistic writes.
async fn memory(redis: &OwnRedis) {
    println!("\n== memory per key (MEMORY USAGE … SAMPLES 0) ==");
    let mut con = redis.connection().await;
    let prefix = prefix("memory");
    let minute = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        / 60;
    let at = UNIX_EPOCH + Duration::from_secs(minute * 60 + 1);
    let day = minute / 1440;
    let pods: Vec<String> = (0..50)
        .map(|i| format!("checkout-7f9c6d5b8-{:05x}", 0x1a2b3 + i * 7919))
        .collect();
    // A busy minute of `orders` on 3 instances: 600 deliveries each, in batches of 64.
    // The same minute of `orders-50` on 50 instances: 36 each.
    // And `orders-long` on 3 instances whose ids are 63 characters long (the longest
    // Kubernetes pod name): `n:<id>` is then 65 bytes, past `hash-max-listpack-value` (64).
    let long: Vec<String> = (0..3)
        .map(|i| format!("payments-webhook-consumers-production-eu-west-1-7f9c6d5b8-{i:05x}"))
        .collect();
    assert!(long.iter().all(|id| id.len() == 63));
    for (route, ids, each) in [
        ("orders", &pods[..3], 600u64),
        ("orders-50", &pods[..], 36),
        ("orders-long", &long[..], 600),
    ] {
        for (n, pod) in ids.iter().enumerate() {
            let history = history(redis, &prefix, pod).await;
            let first = n as u64 * each;
            let batch: Vec<Report> = (first..first + each)
                .map(|i| report(route, i, at + Duration::from_millis(i % 59_000)))
                .collect();
            for chunk in batch.chunks(64) {
                history.send(chunk).await.expect("written");
            }
        }
    }
    let key = |route: &str, suffix: &str| format!("{prefix}{{{route}}}:{suffix}");
    let fleet = |suffix: &str| format!("{prefix}{{fleet}}:{suffix}");
    let (m, d) = (format!("m:{minute}"), format!("d:{day}"));
    let i = format!("i:{minute}");
    for (what, key) in [
        ("minute (1,800 deliveries, 3 instances)", key("orders", &m)),
        ("instance-minute, 3 instances", key("orders", &i)),
        ("instance-minute, 50 instances", key("orders-50", &i)),
        (
            "instance-minute, 3 instances, 63-char ids",
            key("orders-long", &i),
        ),
        (
            "day (latency buckets of one busy minute)",
            key("orders", &d),
        ),
        ("log (stream, MAXLEN ~ 200)", key("orders", "log")),
        ("info", key("orders", "info")),
        ("seen, 3 instances", key("orders", "seen")),
        ("seen, 50 instances", key("orders-50", "seen")),
        ("seen, 3 instances, 63-char ids", key("orders-long", "seen")),
        ("run, 50 instances", key("orders-50", "run")),
        ("routes (3 routes)", fleet("routes")),
        ("instances (53 heartbeats)", fleet("instances")),
        ("started (53)", fleet("started")),
    ] {
        weigh(&mut con, what, &key).await;
    }

    // A day of a busy route: 1,440 minutes (one batch of 64 each, the 40 buckets), as the
    // history holds them; used_memory before and after for the per-key overhead MEMORY USAGE
    // leaves out (the main dictionary's entry, the expiry's).
    let used = |con: &mut MultiplexedConnection| {
        let mut con = con.clone();
        async move {
            let info: String = redis::cmd("INFO")
                .arg("memory")
                .query_async(&mut con)
                .await
                .expect("INFO memory");
            info.lines()
                .find_map(|l| l.strip_prefix("used_memory:"))
                .and_then(|n| n.trim().parse::<i64>().ok())
                .expect("used_memory")
        }
    };
    let history = history(redis, &prefix, &pods[0]).await;
    let before = used(&mut con).await;
    let start = (minute - 1440) * 60;
    for m in 0..1440u64 {
        let at = UNIX_EPOCH + Duration::from_secs(start + m * 60 + 1);
        let batch: Vec<Report> = (0..64).map(|i| report("day", m * 64 + i, at)).collect();
        history.send(&batch).await.expect("written");
    }
    let after = used(&mut con).await;
    let mut sum = BTreeMap::<&str, (u64, u64)>::new();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}{{day}}:*"))
        .query_async(&mut con)
        .await
        .expect("KEYS");
    for k in &keys {
        let bytes: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(k)
            .arg("SAMPLES")
            .arg(0)
            .query_async(&mut con)
            .await
            .expect("MEMORY USAGE");
        let kind = match k.rsplit(':').nth(1) {
            Some("m") => "minute",
            Some("i") => "instance-minute",
            Some("d") => "day",
            _ => "other",
        };
        let entry = sum.entry(kind).or_default();
        entry.0 += 1;
        entry.1 += bytes.unwrap_or(0);
    }
    println!(
        "a day of one route (1,440 minutes of 64 deliveries, one instance): used_memory +{} bytes",
        after - before
    );
    for (kind, (count, bytes)) in &sum {
        println!(
            "  {kind:<16} {count:>5} keys {bytes:>10} bytes ({:.0} a key)",
            *bytes as f64 / *count as f64
        );
    }
    let encodings: Vec<String> = {
        let mut seen = BTreeMap::<String, u64>::new();
        for k in keys.iter().filter(|k| k.contains(":m:")) {
            let e: String = redis::cmd("OBJECT")
                .arg("ENCODING")
                .arg(k)
                .query_async(&mut con)
                .await
                .expect("OBJECT ENCODING");
            *seen.entry(e).or_default() += 1;
        }
        seen.into_iter().map(|(e, n)| format!("{n} {e}")).collect()
    };
    println!("  minute keys' encodings: {}", encodings.join(", "));
    let config: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("hash-max-listpack-*")
        .query_async(&mut con)
        .await
        .expect("CONFIG GET");
    println!("  redis: {}", config.join(" "));
}

/// Batches of 512 over one route through `Sink::send`, for callgrind.
async fn callgrind(redis: &OwnRedis) {
    let history = history(redis, &prefix("callgrind"), "web-1").await;
    let batches: Vec<Vec<Report>> = (0..21).map(|b| reports(512, 1, b * 512)).collect();
    for batch in &batches {
        history.send(batch).await.expect("written");
    }
    println!("sent 21 batches of 512");
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |part: &str| args.is_empty() || args.iter().any(|a| a == part);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let redis = OwnRedis::start();
    let version = redis
        .cli(&["info", "server"])
        .and_then(|i| {
            i.lines()
                .find_map(|l| l.strip_prefix("redis_version:").map(str::to_owned))
        })
        .unwrap_or_default();
    println!("redis-server {version} on 127.0.0.1:{}", redis.port);
    let redis = Arc::new(redis);
    runtime.block_on(async {
        if args.iter().any(|a| a == "callgrind") {
            callgrind(&redis).await;
            return;
        }
        if wants("commands") {
            commands(&redis).await;
        }
        if wants("ticks") {
            ticks(&redis).await;
        }
        if wants("rate") {
            rate(&redis).await;
        }
        if wants("cpu") {
            cpu(&redis).await;
        }
        if wants("memory") {
            memory(&redis).await;
        }
    });
}
