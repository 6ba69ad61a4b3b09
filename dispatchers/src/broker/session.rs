//! One connected life of a link: the command connection, the pub/sub
//! connection and its reader thread, the loaded scripts, the broker's epoch.
//!
//! # Why the pub/sub connection is a bare socket
//! The reader blocks on it while the worker writes `SUBSCRIBE` and
//! `UNSUBSCRIBE` to it from its own thread, so a follow never waits for a
//! read timeout to come round. `redis::Connection` cannot be split that way,
//! so this side is a `TcpStream` and its clone, with the `redis` crate's
//! command encoder and RESP parser.

use std::hash::BuildHasher;
use std::io::Write;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Value};

use super::config::Config;
use super::error::Error;
use super::link::Inner;
use super::reader;
use super::script::{self, Shas};

/// Longest run of channels in one `SUBSCRIBE`, so that re-following
/// thousands of channels does not build one huge command.
const SUBSCRIBE_CHUNK: usize = 512;

pub(crate) struct Session {
    /// Tells this session's `Lost` from a late one of an earlier session.
    pub id: u64,
    pub conn: redis::Connection,
    pub shas: Shas,
    /// The broker's life: a new value means it lost its data.
    pub epoch: String,
    /// The pub/sub connection, for writing; the reader holds a clone.
    sub: TcpStream,
    reader: Option<JoinHandle<()>>,
}

/// The URL as connection settings, or why it is not one the link speaks.
pub(crate) fn parse_url(url: &str) -> Result<ConnectionInfo, Error> {
    let bad = |reason: String| Error::Url {
        url: url.to_string(),
        reason,
    };
    let info = url.into_connection_info().map_err(|e| bad(e.to_string()))?;
    match info.addr() {
        ConnectionAddr::Tcp(..) => Ok(info),
        other => Err(bad(format!(
            "only redis:// over TCP is supported, not {other:?}"
        ))),
    }
}

impl Session {
    /// Connects both connections, loads the scripts, reads the epoch and
    /// starts the reader. The error says why, for the caller to report.
    pub fn open(id: u64, inner: &Arc<Inner>) -> Result<Session, String> {
        let config = &inner.config;
        let info = parse_url(&config.url).map_err(|e| e.to_string())?;
        let client = redis::Client::open(info.clone()).map_err(|e| e.to_string())?;
        let mut conn = client
            .get_connection_with_timeout(config.timeout)
            .map_err(|e| e.to_string())?;
        conn.set_read_timeout(Some(config.timeout))
            .and_then(|_| conn.set_write_timeout(Some(config.timeout)))
            .map_err(|e| e.to_string())?;
        let shas = script::load(&mut conn, config.structure).map_err(|e| e.to_string())?;
        let epoch = read_epoch(&mut conn, config).map_err(|e| e.to_string())?;
        let sub = open_pubsub(&info, config)?;
        let read_half = sub.try_clone().map_err(|e| e.to_string())?;
        let reader = reader::spawn(id, read_half, inner.clone()).map_err(|e| e.to_string())?;
        Ok(Session {
            id,
            conn,
            shas,
            epoch,
            sub,
            reader: Some(reader),
        })
    }

    /// Writes `verb` (`SUBSCRIBE` or `UNSUBSCRIBE`) for `channels`.
    pub fn write_sub<S: AsRef<str>>(
        &mut self,
        config: &Config,
        verb: &str,
        channels: &[S],
    ) -> std::io::Result<()> {
        for chunk in channels.chunks(SUBSCRIBE_CHUNK) {
            let mut cmd = redis::cmd(verb);
            for channel in chunk {
                cmd.arg(config.topic(channel.as_ref()));
            }
            self.sub.write_all(&cmd.get_packed_command())?;
        }
        Ok(())
    }

    /// Writes `PING m{mark}`: the broker answers it on the pub/sub
    /// connection after every message it had published by then.
    pub fn write_marker(&mut self, mark: u64) -> std::io::Result<()> {
        let cmd = redis::cmd("PING")
            .arg(format!("m{mark}"))
            .get_packed_command();
        self.sub.write_all(&cmd)
    }

    /// Ends the session: the reader sees the socket close and returns.
    pub fn close(mut self) {
        let _ = self.sub.shutdown(Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// The broker's epoch, set now if this is its first life we see: `SET NX`
/// and `GET`, so that links connecting at once agree on one value.
fn read_epoch(conn: &mut redis::Connection, config: &Config) -> redis::RedisResult<String> {
    let key = config.epoch_key();
    let mine = format!(
        "{:016x}{:016x}",
        std::collections::hash_map::RandomState::new().hash_one(std::process::id()),
        std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now())
    );
    redis::cmd("SET")
        .arg(&key)
        .arg(&mine)
        .arg("NX")
        .exec(conn)?;
    redis::cmd("GET").arg(&key).query(conn)
}

fn open_pubsub(info: &ConnectionInfo, config: &Config) -> Result<TcpStream, String> {
    let ConnectionAddr::Tcp(host, port) = info.addr() else {
        unreachable!("parse_url admits TCP only");
    };
    let addr = (host.as_str(), *port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    let stream = TcpStream::connect_timeout(&addr, config.timeout).map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(config.timeout))
        .map_err(|e| e.to_string())?;
    let redis = info.redis_settings();
    if let Some(password) = redis.password() {
        let mut auth = redis::cmd("AUTH");
        if let Some(user) = redis.username() {
            auth.arg(user);
        }
        auth.arg(password);
        (&stream)
            .write_all(&auth.get_packed_command())
            .map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(config.timeout))
            .map_err(|e| e.to_string())?;
        match redis::Parser::new().parse_value(&stream) {
            Ok(Value::Okay) => {}
            Ok(other) => return Err(format!("AUTH refused: {other:?}")),
            Err(e) => return Err(e.to_string()),
        }
        // The reader blocks for as long as the channels are quiet.
        stream.set_read_timeout(None).map_err(|e| e.to_string())?;
    }
    Ok(stream)
}
