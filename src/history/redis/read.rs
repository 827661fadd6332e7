//! The reading side of [`RedisHistory`](super::RedisHistory): the [`History`] a dashboard reads,
//! and the fleet's instances.
//!
//! Every call is one or a few pipelined round trips, each bounded by the history's
//! [timeout](super::RedisHistoryBuilder::timeout). The commands of one pipeline all touch one
//! hash slot (one route's keys, or the fleet's), so on a Redis Cluster each goes to one node;
//! calls that read several routes send one pipeline per route at once. A Redis error or a
//! timeout is a [`HistoryError::Unavailable`] whose source is the [`redis::RedisError`] or a
//! timeout; what Redis holds that does not parse (an entry, an alert, a health report
//! written by another version) is skipped.
//!
//! [`redis::RedisError`]: ::redis::RedisError

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ::redis::{cmd, pipe, Cmd, Pipeline, Value};
use futures_util::future::join_all;

use super::{duration_millis, millis, RedisHistory};
use crate::{
    history::{
        AlertLog, DeliveryFilter, History, HistoryError, InstanceEntry, Minute, Recorded,
        RouteEntry,
    },
    report::{DeliveryReport, HealthReport},
    watch::Alert,
};

/// Stream entries read per round trip while [`History::deliveries`] looks for matches.
const PAGE: usize = 200;

/// The low bits of a [`Recorded::id`] that hold the stream entry's sequence number within its
/// millisecond; the millisecond is above them.
const SEQ_BITS: u32 = 20;

/// The [`Recorded::id`] of the stream entry `stream_id` (`<ms>-<seq>`): `ms << 20 | seq`, so
/// ids grow with arrival and [`stream_id`] gives the entry back. `None` for an id that does not
/// fit: a sequence number of 2^20 or more (over a million entries added to one route's stream
/// in one millisecond) or a time after the year 2527.
pub(crate) fn recorded_id(stream_id: &str) -> Option<u64> {
    let (ms, seq) = stream_id.split_once('-')?;
    let (ms, seq) = (ms.parse::<u64>().ok()?, seq.parse::<u64>().ok()?);
    (seq >> SEQ_BITS == 0 && ms >> (u64::BITS - SEQ_BITS) == 0).then_some(ms << SEQ_BITS | seq)
}

/// The stream entry id of the [`Recorded::id`] `id`: the inverse of [`recorded_id`].
pub(crate) fn stream_id(id: u64) -> String {
    format!("{}-{}", id >> SEQ_BITS, id & ((1 << SEQ_BITS) - 1))
}

impl RedisHistory {
    /// Sends `pipe`, whose commands all touch one hash slot, bounded by the timeout: each
    /// command's reply.
    async fn query(&self, op: &'static str, pipe: &Pipeline) -> Result<Vec<Value>, HistoryError> {
        if pipe.is_empty() {
            return Ok(Vec::new());
        }
        let replies = self.pipeline::<Vec<Value>>(op, pipe).await;
        replies.map_err(super::OpError::unavailable)
    }

    /// Sends `groups` of commands, each group in one hash slot: in one pipeline on one Redis,
    /// one pipeline per group at once on a cluster. Each group's replies, in order.
    async fn query_groups(
        &self,
        op: &'static str,
        groups: Vec<Vec<Cmd>>,
    ) -> Result<Vec<Vec<Value>>, HistoryError> {
        if self.inner.connection.is_cluster() {
            let pipes: Vec<Pipeline> = groups.into_iter().map(pipeline).collect();
            join_all(pipes.iter().map(|p| self.query(op, p)))
                .await
                .into_iter()
                .collect()
        } else {
            let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
            let all = pipeline(groups.into_iter().flatten());
            let mut replies = self.query(op, &all).await?.into_iter();
            Ok(sizes
                .into_iter()
                .map(|n| replies.by_ref().take(n).collect())
                .collect())
        }
    }

    /// Now, by the history's clock, in minutes since the epoch.
    fn minute_now(&self) -> u64 {
        millis((self.inner.clock)()) / 60_000
    }
}

fn pipeline(commands: impl IntoIterator<Item = Cmd>) -> Pipeline {
    let mut p = pipe();
    for command in commands {
        p.add_command(command);
    }
    p
}

fn hgetall(key: String) -> Cmd {
    let mut c = cmd("HGETALL");
    c.arg(key);
    c
}

fn get(key: String) -> Cmd {
    let mut c = cmd("GET");
    c.arg(key);
    c
}

// ---------------------------------------------------------------------------------------------
// Replies, read leniently: a reply of another shape reads as empty.

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        _ => None,
    }
}

fn text(v: &Value) -> Option<&str> {
    std::str::from_utf8(bytes(v)?).ok()
}

fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => text(other)?.parse().ok(),
    }
}

fn items(v: &Value) -> &[Value] {
    match v {
        Value::Array(items) | Value::Set(items) => items,
        _ => &[],
    }
}

/// A hash (or a stream entry's fields): a RESP3 map, or RESP2's flat array of pairs.
fn pairs(v: &Value) -> Vec<(&Value, &Value)> {
    match v {
        Value::Map(map) => map.iter().map(|(k, v)| (k, v)).collect(),
        Value::Array(flat) => flat
            .chunks_exact(2)
            .filter_map(|pair| match pair {
                [k, v] => Some((k, v)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A hash of numbers (ms since the epoch) by name; fields that are not numbers are left out.
fn numbers(v: Option<&Value>) -> BTreeMap<String, u64> {
    v.map(pairs)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| Some((text(k)?.to_owned(), number(v)?)))
        .collect()
}

fn at_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// A count as a `u32`, saturating.
fn count(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// One route's entry from its `info` and `seen` hashes.
fn route_entry(name: String, replies: &[Value]) -> RouteEntry {
    let mut entry = RouteEntry::new(name);
    for (field, value) in replies.first().map(pairs).unwrap_or_default() {
        match text(field) {
            Some("provider") => {
                entry.provider = text(value).filter(|p| !p.is_empty()).map(Arc::from)
            }
            Some("budget_ms") => entry.budget = number(value).map(Duration::from_millis),
            _ => {}
        }
    }
    entry.last_delivery = numbers(replies.get(1)).into_values().max().map(at_ms);
    entry
}

/// A minute's hash as a [`Minute`]; `None` when it counted no delivery.
fn minute(index: u64, reply: &Value) -> Option<Minute> {
    let mut minute = Minute::new(UNIX_EPOCH + Duration::from_secs(index.saturating_mul(60)));
    for (field, n) in pairs(reply) {
        let (Some(field), Some(n)) = (text(field), number(n)) else {
            continue;
        };
        let n = count(n);
        if let Some(name) = field.strip_prefix("o:") {
            minute.outcomes.set(name, n);
        } else if let Some(name) = field.strip_prefix("f:") {
            minute.flags.set(name, n);
        } else if let Some(bucket) = field.strip_prefix("l:") {
            if let Ok(bucket) = bucket.parse() {
                minute.latency.add(bucket, n);
            }
        } else if field == "r" {
            minute.retries = n;
        }
    }
    (minute.deliveries() > 0).then_some(minute)
}

/// A stream entry: its id as Redis wrote it (the cursor of the next page), and the recorded
/// delivery, when the id fits a [`Recorded::id`] and its report parses.
fn entry(v: &Value) -> Option<(&str, Option<Recorded>)> {
    let [id, fields] = items(v) else {
        return None;
    };
    let raw = text(id)?;
    let recorded = recorded_id(raw).and_then(|id| {
        let json = pairs(fields)
            .into_iter()
            .find(|(k, _)| bytes(k) == Some(b"r"))
            .and_then(|(_, v)| text(v))?;
        let report = serde_json::from_str::<DeliveryReport>(json).ok()?;
        Some(Recorded::new(id, report))
    });
    Some((raw, recorded))
}

fn health(v: Option<&Value>) -> Option<HealthReport> {
    serde_json::from_str(text(v?)?).ok()
}

fn alerts(v: Option<&Value>) -> Vec<Alert> {
    v.map(items)
        .unwrap_or_default()
        .iter()
        .filter_map(|a| serde_json::from_str::<Alert>(text(a)?).ok())
        .collect()
}

// ---------------------------------------------------------------------------------------------

/// The fleet's history, as [`MemoryHistory`](crate::history::MemoryHistory) shows its own:
///
/// - [`routes`](History::routes): the names in `{fleet}:routes`, each with its `info` (provider,
///   budget) and, as its last delivery, the latest of its instances' in `seen` (to the ms).
/// - [`minutes`](History::minutes): one `HGETALL` per minute from the one holding `since` to
///   the current one (by the history's clock), but no further back than this history's
///   [retention](super::RedisHistoryBuilder::retention), in one pipeline: at most 2,881 with the
///   default retention, most of them empty replies on a quiet route. A minute's counts are
///   every instance's, added. Minutes after the current one (a writer whose clock is ahead)
///   are read once the clock reaches them.
/// - [`deliveries`](History::deliveries): the route's stream, newest first, with `XREVRANGE`.
///   Without a filter, one round trip (two when entries are skipped). With one, pages of 200
///   entries until `limit` match or the stream ends; the stream's length (`XLEN`, read with
///   the first page) bounds the entries read, so a filter that matches nothing reads the whole
///   stream once: [`deliveries_per_route`](super::RedisHistoryBuilder::deliveries_per_route)
///   entries (Redis trims approximately: up to about 100 more). `before` pages backwards.
/// - [`delivery`](History::delivery): one `XRANGE` on the entry's id.
/// - [`alerts`](History::alerts): the open ones (newest first by [`Alert::at`]) and the
///   resolved ones, newest first, at most this history's
///   [`resolved_alerts`](super::RedisHistoryBuilder::resolved_alerts).
/// - [`health`](History::health): this instance's latest health report (kept an hour).
/// - [`instances`](History::instances): every instance with a heartbeat, by id.
///
/// A [`Recorded::id`] is the stream entry's id `<ms>-<seq>` as one number, `ms << 20 | seq`:
/// ids grow with arrival and give the entry back. An entry whose sequence number does not fit
/// in 20 bits (over a million deliveries of one route in one millisecond) is skipped.
impl History for RedisHistory {
    async fn routes(&self) -> Result<Vec<RouteEntry>, HistoryError> {
        let keys = &self.inner.keys;
        let mut p = pipe();
        p.cmd("SMEMBERS").arg(keys.routes());
        let replies = self.query("routes", &p).await?;
        let mut names: Vec<String> = replies
            .first()
            .map(items)
            .unwrap_or_default()
            .iter()
            .filter_map(|name| text(name).map(str::to_owned))
            .collect();
        names.sort_unstable();
        names.dedup();
        let groups = names
            .iter()
            .map(|route| vec![hgetall(keys.info(route)), hgetall(keys.seen(route))])
            .collect();
        let replies = self.query_groups("routes", groups).await?;
        Ok(names
            .into_iter()
            .zip(replies)
            .map(|(name, replies)| route_entry(name, &replies))
            .collect())
    }

    async fn minutes(&self, route: &str, since: SystemTime) -> Result<Vec<Minute>, HistoryError> {
        let now = self.minute_now();
        let retention = duration_millis(self.inner.limits.retention).div_ceil(60_000);
        let from = (millis(since) / 60_000).max(now.saturating_sub(retention));
        if from > now {
            return Ok(Vec::new());
        }
        let keys = &self.inner.keys;
        let p = pipeline((from..=now).map(|m| hgetall(keys.minute(route, m))));
        let replies = self.query("minutes", &p).await?;
        Ok((from..=now)
            .zip(&replies)
            .filter_map(|(index, reply)| minute(index, reply))
            .collect())
    }

    async fn deliveries(
        &self,
        route: &str,
        filter: &DeliveryFilter,
    ) -> Result<Vec<Recorded>, HistoryError> {
        let mut found = Vec::new();
        let mut end = match filter.before {
            _ if filter.limit == 0 => return Ok(found),
            None => "+".to_owned(),
            Some(0) => return Ok(found),
            Some(before) => format!("({}", stream_id(before)),
        };
        let filtered =
            filter.outcome.is_some() || filter.event_type.is_some() || filter.delivery_id.is_some();
        let page = if filtered {
            PAGE
        } else {
            filter.limit.min(PAGE)
        };
        let log = self.inner.keys.log(route);
        // The stream's length, read with the first page: the most entries this call reads.
        let mut length = None;
        let mut read = 0;
        loop {
            let mut p = pipe();
            if length.is_none() {
                p.cmd("XLEN").arg(&log);
            }
            p.cmd("XREVRANGE")
                .arg(&log)
                .arg(&end)
                .arg("-")
                .arg("COUNT")
                .arg(page);
            let replies = self.query("deliveries", &p).await?;
            let mut replies = replies.iter();
            let most = *length.get_or_insert_with(|| replies.next().and_then(number).unwrap_or(0));
            let entries = replies.next().map(items).unwrap_or_default();
            let mut cursor = None;
            for (raw, recorded) in entries.iter().filter_map(entry) {
                read += 1;
                cursor = Some(raw);
                if let Some(recorded) = recorded.filter(|r| filter.matches(r)) {
                    found.push(recorded);
                    if found.len() == filter.limit {
                        return Ok(found);
                    }
                }
            }
            match cursor {
                Some(last) if entries.len() == page && read < most => end = format!("({last}"),
                _ => return Ok(found),
            }
        }
    }

    async fn delivery(&self, route: &str, id: u64) -> Result<Option<Recorded>, HistoryError> {
        let entry_id = stream_id(id);
        let mut p = pipe();
        p.cmd("XRANGE")
            .arg(self.inner.keys.log(route))
            .arg(&entry_id)
            .arg(&entry_id)
            .arg("COUNT")
            .arg(1);
        let replies = self.query("delivery", &p).await?;
        Ok(replies
            .first()
            .map(items)
            .unwrap_or_default()
            .iter()
            .filter_map(entry)
            .find_map(|(_, recorded)| recorded.filter(|r| r.id == id)))
    }

    async fn alerts(&self) -> Result<AlertLog, HistoryError> {
        let (keys, kept) = (&self.inner.keys, self.inner.limits.resolved);
        let mut p = pipe();
        p.cmd("HVALS").arg(keys.open_alerts());
        if kept > 0 {
            let last = isize::try_from(kept).unwrap_or(isize::MAX) - 1;
            p.cmd("LRANGE").arg(keys.resolved_alerts()).arg(0).arg(last);
        }
        let replies = self.query("alerts", &p).await?;
        let mut open = alerts(replies.first());
        open.sort_by(|a, b| {
            b.at.cmp(&a.at)
                .then_with(|| a.route.cmp(&b.route))
                .then_with(|| a.kind.as_str().cmp(b.kind.as_str()))
                .then_with(|| a.instance.cmp(&b.instance))
        });
        Ok(AlertLog {
            open,
            resolved: alerts(replies.get(1)),
        })
    }

    /// This instance's latest health report: the one it wrote, kept in memory, so that its own
    /// dashboard shows it (and its fleet view going stale) while Redis does not answer; in a
    /// process that writes none (a dashboard of its own), the one last written to Redis under
    /// this instance's id.
    async fn health(&self) -> Result<Option<HealthReport>, HistoryError> {
        if let Some(latest) = self.latest_health() {
            return Ok(Some(latest));
        }
        let mut p = pipe();
        p.add_command(get(self.inner.keys.health(&self.inner.instance)));
        Ok(health(self.query("health", &p).await?.first()))
    }

    async fn instances(&self) -> Result<Vec<InstanceEntry>, HistoryError> {
        let keys = &self.inner.keys;
        let p = pipeline([
            hgetall(keys.instances()),
            hgetall(keys.started()),
            get(keys.lease()),
        ]);
        let replies = self.query("instances", &p).await?;
        let beats = numbers(replies.first());
        let started = numbers(replies.get(1));
        let leader = replies.get(2).and_then(text);
        let ids: BTreeSet<&String> = beats.keys().chain(started.keys()).collect();
        // One GET each, not an MGET: a cluster client may split a multi-key command.
        let p = pipeline(ids.iter().map(|id| get(keys.health(id))));
        let healths = self.query("instances", &p).await?;
        Ok(ids
            .into_iter()
            .enumerate()
            .map(|(i, id)| {
                let mut entry = InstanceEntry::new(id.as_str());
                entry.started = started.get(id).copied().map(at_ms);
                entry.last_heartbeat = beats.get(id).copied().map(at_ms);
                entry.leader = leader == Some(id.as_str());
                entry.health = health(healths.get(i));
                entry
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_ids_round_trip_to_stream_ids() {
        let id = recorded_id("1764583200123-7").expect("fits");
        assert_eq!(id, 1_764_583_200_123 << 20 | 7);
        assert_eq!(stream_id(id), "1764583200123-7");
        // Growing with arrival: a later millisecond beats any sequence number.
        assert!(recorded_id("1764583200124-0") > recorded_id("1764583200123-1048575"));
        assert_eq!(recorded_id("0-0"), Some(0));
        assert_eq!(stream_id(u64::MAX), format!("{}-1048575", u64::MAX >> 20));
    }

    #[test]
    fn ids_that_do_not_fit_are_none() {
        assert_eq!(recorded_id("1764583200123-1048576"), None);
        assert_eq!(recorded_id(&format!("{}-0", 1u64 << 44)), None);
        assert_eq!(
            recorded_id(&format!("{}-0", (1u64 << 44) - 1)),
            Some(u64::MAX >> 20 << 20)
        );
        for bad in ["", "-", "1", "a-1", "1-b", "1-2-3", "-1-2"] {
            assert_eq!(recorded_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn hashes_read_in_both_protocols() {
        let resp2 = Value::Array(vec![
            Value::BulkString(b"o:success".to_vec()),
            Value::BulkString(b"3".to_vec()),
            Value::BulkString(b"l:40".to_vec()),
            Value::BulkString(b"2".to_vec()),
            Value::BulkString(b"r".to_vec()),
            Value::Int(1),
            Value::BulkString(b"h".to_vec()),
            Value::BulkString(b"3".to_vec()),
            Value::BulkString(b"o:nonsense".to_vec()),
            Value::BulkString(b"9".to_vec()),
            Value::BulkString(b"f:near_timeout".to_vec()),
            Value::BulkString(b"-1".to_vec()),
        ]);
        let m = minute(29_409_720, &resp2).expect("traffic");
        assert_eq!(m.outcomes.success, 3);
        assert_eq!(m.outcomes.total(), 3, "unknown names are left out");
        assert_eq!(m.latency.count(), 2);
        assert_eq!(m.retries, 1);
        assert_eq!(m.flags.total(), 0, "a negative count is left out");
        assert_eq!(m.start, UNIX_EPOCH + Duration::from_secs(29_409_720 * 60));
        let resp3 = Value::Map(vec![(
            Value::SimpleString("o:failure".into()),
            Value::Int(2),
        )]);
        assert_eq!(minute(0, &resp3).expect("traffic").outcomes.failure, 2);
        assert_eq!(minute(0, &Value::Array(vec![])), None);
        assert_eq!(minute(0, &Value::Nil), None);
    }

    #[test]
    fn an_entry_that_does_not_parse_is_skipped_not_lost_as_a_cursor() {
        let bad = Value::Array(vec![
            Value::BulkString(b"5-1".to_vec()),
            Value::Array(vec![
                Value::BulkString(b"r".to_vec()),
                Value::BulkString(b"{not json".to_vec()),
            ]),
        ]);
        let (raw, recorded) = entry(&bad).expect("an entry");
        assert_eq!(raw, "5-1");
        assert!(recorded.is_none());
        assert!(entry(&Value::Nil).is_none());
    }
}
