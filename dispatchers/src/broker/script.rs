//! The Lua scripts that publish and read, one pair per [`Structure`], and
//! the commands that run them.
//!
//! Each script runs atomically at the broker. Publish: `KEYS` = sequence,
//! backlog; `ARGV` = pub/sub channel, channel, data, backlog cap, TTL in ms;
//! returns the id. Read: `KEYS` = sequence, backlog; `ARGV` = since, TTL in
//! ms; returns `{last id, first id still in the backlog (last + 1 when
//! none), entries after since as ID:MS:DATA}`.
//!
//! Both backlogs hold consecutive ids ending at the sequence (a publish adds
//! one at the tail; trimming by count or by age takes from the head), so the
//! first entry's id is `last - length + 1`: reads find `since` by position.

use std::sync::Arc;

use redis::{Cmd, Value};

use super::config::{Config, Structure};
use super::error::Error;
use super::message::{Message, Replay};
use super::wire;

/// Lua that sets `ms` to the broker's clock in milliseconds. `TIME` is
/// allowed in a writing script: Redis 7 replicates scripts by their effects.
macro_rules! now_ms {
    () => {
        "local now = redis.call('TIME')\n\
         local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)\n"
    };
}

/// Lua that increments the sequence and prepares the encodings of the new
/// message (see [`wire`]).
macro_rules! next_id {
    () => {
        concat!(
            "local id = redis.call('INCR', KEYS[1])\n",
            now_ms!(),
            "local head = string.format('%d:%d:', id, ms)\n\
             local cap = tonumber(ARGV[4])\n\
             local ttl = tonumber(ARGV[5])\n\
             local cutoff = ms - ttl\n"
        )
    };
}

/// Lua that publishes the message and returns its id.
macro_rules! publish_and_return {
    () => {
        "redis.call('PUBLISH', ARGV[1], head .. string.format('%d:', #ARGV[2]) .. ARGV[2] .. ARGV[3])\n\
         return id\n"
    };
}

/// Lua that reads the sequence, applies the earlier-life rule to `since`
/// and sets `cutoff` (entries published at or before it have aged out).
macro_rules! read_prelude {
    () => {
        concat!(
            "local seq = tonumber(redis.call('GET', KEYS[1]) or '0')\n\
             local since = tonumber(ARGV[1])\n\
             if since > seq then since = 0 end\n",
            now_ms!(),
            "local cutoff = ms - tonumber(ARGV[2])\n"
        )
    };
}

pub const PUBLISH_LIST: &str = concat!(
    next_id!(),
    "if cap > 0 then\n\
       redis.call('RPUSH', KEYS[2], head .. ARGV[3])\n\
       redis.call('LTRIM', KEYS[2], -cap, -1)\n\
       while true do\n\
         local e = redis.call('LINDEX', KEYS[2], 0)\n\
         if not e or tonumber(string.match(e, '^%d+:(%d+):')) > cutoff then break end\n\
         redis.call('LPOP', KEYS[2])\n\
       end\n\
       redis.call('PEXPIRE', KEYS[2], ttl)\n\
     end\n",
    publish_and_return!()
);

pub const READ_LIST: &str = concat!(
    read_prelude!(),
    "local n = redis.call('LLEN', KEYS[2])\n\
     local first = seq - n + 1\n\
     local skip = 0\n\
     while skip < n do\n\
       local e = redis.call('LINDEX', KEYS[2], skip)\n\
       if tonumber(string.match(e, '^%d+:(%d+):')) > cutoff then break end\n\
       skip = skip + 1\n\
     end\n\
     local valid = first + skip\n\
     local from = math.max(valid, since + 1)\n\
     local entries = {}\n\
     if from <= seq then entries = redis.call('LRANGE', KEYS[2], from - first, -1) end\n\
     return {seq, valid, entries}\n"
);

pub const PUBLISH_STREAM: &str = concat!(
    next_id!(),
    "if cap > 0 then\n\
       redis.call('XADD', KEYS[2], 'MAXLEN', cap, string.format('%d-0', id), 't', ms, 'd', ARGV[3])\n\
       while true do\n\
         local e = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)\n\
         if #e == 0 or tonumber(e[1][2][2]) > cutoff then break end\n\
         redis.call('XDEL', KEYS[2], e[1][1])\n\
       end\n\
       redis.call('PEXPIRE', KEYS[2], ttl)\n\
     end\n",
    publish_and_return!()
);

pub const READ_STREAM: &str = concat!(
    read_prelude!(),
    "local n = redis.call('XLEN', KEYS[2])\n\
     local valid = seq + 1\n\
     local cursor = '-'\n\
     while n > 0 do\n\
       local chunk = redis.call('XRANGE', KEYS[2], cursor, '+', 'COUNT', 16)\n\
       if #chunk == 0 then break end\n\
       local found = false\n\
       for _, e in ipairs(chunk) do\n\
         if tonumber(e[2][2]) > cutoff then\n\
           valid = tonumber(string.match(e[1], '^(%d+)-'))\n\
           found = true\n\
           break\n\
         end\n\
       end\n\
       if found then break end\n\
       cursor = '(' .. chunk[#chunk][1]\n\
     end\n\
     local from = math.max(valid, since + 1)\n\
     local entries = {}\n\
     if from <= seq then\n\
       for _, e in ipairs(redis.call('XRANGE', KEYS[2], string.format('%d-0', from), '+')) do\n\
         table.insert(entries, string.match(e[1], '^(%d+)-') .. ':' .. e[2][2] .. ':' .. e[2][4])\n\
       end\n\
     end\n\
     return {seq, valid, entries}\n"
);

/// The SHA1 digests of a structure's two scripts, as the broker named them
/// when they were loaded.
#[derive(Debug, Clone)]
pub(crate) struct Shas {
    pub publish: String,
    pub read: String,
}

fn sources(structure: Structure) -> (&'static str, &'static str) {
    match structure {
        Structure::List => (PUBLISH_LIST, READ_LIST),
        Structure::Stream => (PUBLISH_STREAM, READ_STREAM),
    }
}

/// Loads both scripts (`SCRIPT LOAD`), as after a connect or a `NOSCRIPT`.
pub(crate) fn load(conn: &mut redis::Connection, structure: Structure) -> redis::RedisResult<Shas> {
    let (publish, read) = sources(structure);
    let load = |conn: &mut redis::Connection, src: &str| -> redis::RedisResult<String> {
        redis::cmd("SCRIPT").arg("LOAD").arg(src).query(conn)
    };
    Ok(Shas {
        publish: load(conn, publish)?,
        read: load(conn, read)?,
    })
}

pub(crate) fn publish_cmd(shas: &Shas, config: &Config, channel: &str, data: &str) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(&shas.publish)
        .arg(2)
        .arg(config.seq_key(channel))
        .arg(config.backlog_key(channel))
        .arg(config.topic(channel))
        .arg(channel)
        .arg(data)
        .arg(config.backlog)
        .arg(config.ttl_ms());
    cmd
}

pub(crate) fn read_cmd(shas: &Shas, config: &Config, channel: &str, since: u64) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(&shas.read)
        .arg(2)
        .arg(config.seq_key(channel))
        .arg(config.backlog_key(channel))
        .arg(since)
        .arg(config.ttl_ms());
    cmd
}

fn int(value: &Value, what: &str) -> Result<u64, Error> {
    match value {
        Value::Int(n) if *n >= 0 => Ok(*n as u64),
        other => Err(Error::Protocol(format!("{what}: {other:?}"))),
    }
}

pub(crate) fn decode_publish(value: &Value) -> Result<u64, Error> {
    int(value, "publish id")
}

/// A read script's answer as a [`Replay`] after `since`.
pub(crate) fn decode_read(channel: &Arc<str>, since: u64, value: Value) -> Result<Replay, Error> {
    let Value::Array(parts) = value else {
        return Err(Error::Protocol(format!("read: {value:?}")));
    };
    let [seq, valid, Value::Array(entries)] = parts.as_slice() else {
        return Err(Error::Protocol(format!("read: {parts:?}")));
    };
    let last_id = int(seq, "read sequence")?;
    let valid = int(valid, "read first id")?;
    let since = if since > last_id { 0 } else { since };
    let mut messages = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::BulkString(bytes) = entry else {
            return Err(Error::Protocol(format!("read entry: {entry:?}")));
        };
        let e =
            wire::decode_entry(bytes).map_err(|e| Error::Protocol(format!("read entry: {e}")))?;
        let want = messages
            .last()
            .map_or(valid.max(since + 1), |m: &Message| m.id + 1);
        if e.id != want {
            return Err(Error::Protocol(format!(
                "read entry id {} where {want} was due",
                e.id
            )));
        }
        messages.push(Message {
            channel: channel.clone(),
            id: e.id,
            time_ms: e.time_ms,
            data: e.data.into(),
        });
    }
    Ok(Replay {
        since,
        messages,
        missed: valid.saturating_sub(since + 1),
        last_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn read(seq: i64, valid: i64, entries: &[&str]) -> Value {
        Value::Array(vec![
            Value::Int(seq),
            Value::Int(valid),
            Value::Array(entries.iter().map(|e| bulk(e)).collect()),
        ])
    }

    #[test]
    fn reads_decode_with_missed() {
        let ch: Arc<str> = Arc::from("a");
        let ids = |r: &Replay| r.messages.iter().map(|m| m.id).collect::<Vec<_>>();
        // Backlog 3..5 of 5, asked after 0: 1 and 2 are gone.
        let r = decode_read(&ch, 0, read(5, 3, &["3:1:c", "4:1:d", "5:1:e"])).unwrap();
        assert_eq!(
            (ids(&r), r.missed, r.last_id, r.since),
            (vec![3, 4, 5], 2, 5, 0)
        );
        assert_eq!(&*r.messages[1].data, "d");
        // After 4: nothing missed.
        let r = decode_read(&ch, 4, read(5, 3, &["5:1:e"])).unwrap();
        assert_eq!((ids(&r), r.missed), (vec![5], 0));
        // From an earlier life: read as 0.
        let r = decode_read(&ch, 9, read(5, 3, &["3:1:c", "4:1:d", "5:1:e"])).unwrap();
        assert_eq!((r.since, r.missed), (0, 2));
        // All aged out: valid is last + 1.
        let r = decode_read(&ch, 1, read(5, 6, &[])).unwrap();
        assert_eq!((ids(&r), r.missed), (vec![], 4));
        // A channel never published on.
        let r = decode_read(&ch, 0, read(0, 1, &[])).unwrap();
        assert_eq!((ids(&r), r.missed, r.last_id), (vec![], 0, 0));
    }

    #[test]
    fn bad_reads_are_errors() {
        let ch: Arc<str> = Arc::from("a");
        for value in [
            Value::Nil,
            Value::Array(vec![Value::Int(1)]),
            read(5, 3, &["4:1:d"]),
            read(5, 3, &["3:1:c", "5:1:e"]),
            read(5, 3, &["x"]),
            Value::Array(vec![Value::Int(-1), Value::Int(0), Value::Array(vec![])]),
        ] {
            assert!(matches!(
                decode_read(&ch, 0, value),
                Err(Error::Protocol(_))
            ));
        }
        assert!(decode_publish(&Value::Int(3)).is_ok());
        assert!(decode_publish(&bulk("3")).is_err());
    }
}
