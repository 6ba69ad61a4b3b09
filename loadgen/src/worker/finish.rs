//! The end of a worker: what every subscriber was due and lost, whether the
//! slow consumers were dropped, and the histograms, into the report.

use std::collections::HashMap;
use std::io::{self, Read};

use mio::net::TcpStream;

use super::subscriber::State;
use super::{Candidate, Excused, Finish, Gap, Worker};
use crate::clock::self_cpu;
use crate::hist;

impl Worker {
    /// Settles what each subscriber was due against what it got, and fills
    /// in the report.
    pub(super) fn finish(&mut self, mut finish: Finish) {
        self.chat_finish(&mut finish.expect);
        self.report.open = self
            .clients
            .iter()
            .filter(|(_, c)| matches!(c.state, State::Requested | State::Subscribed) && !c.slow)
            .count() as u64;
        let mut tally = Tally::new(&finish.candidates, &self.gaps);
        let mut excused = finish.excused;
        for (channel, ids) in &finish.candidates {
            excused
                .entry(channel.clone())
                .or_default()
                .extend(ids.iter().copied());
        }
        let excused = Excused::new(excused);
        let mut slow = Vec::new();
        let d = &mut self.report.delivery;
        for (key, c) in self.clients.iter() {
            if c.slow && c.state == State::Subscribed {
                slow.push(key);
                continue;
            }
            let channel = self.plan.channels.name(c.index);
            let Some(&last) = finish.expect.get(&channel) else {
                continue;
            };
            let due = excused.due(&channel, last);
            // A connection accepted but never answered (a starved pool) was due
            // every message too: undelivered, though not an id-check loss.
            // So was a subscriber still on its way back.
            match (c.state, c.away_since) {
                (State::Requested | State::Connecting, Some(_)) | (State::Subscribed, _) => {
                    d.expected += due;
                    d.lost += c.ids.lost_at_end(last, &excused, &channel);
                    tally.count(&channel, c.index, c.ids.last());
                }
                (State::Requested, None) => {
                    d.expected += due;
                    tally.count(&channel, c.index, 0);
                }
                (State::Connecting | State::Closed, _) => {}
            }
        }
        for a in std::mem::take(&mut self.away) {
            let channel = self.plan.channels.name(a.index);
            self.report.fault.away_at_end += 1;
            if let Some(&last) = finish.expect.get(&channel) {
                d.expected += excused.due(&channel, last);
                d.lost += a.ids.lost_at_end(last, &excused, &channel);
                tally.count(&channel, a.index, a.ids.last());
            }
        }
        for (_, channel, gap) in std::mem::take(&mut self.gaps) {
            d.lost += gap.lost(&excused, &channel);
        }
        self.report.candidates = tally.into_counts();
        // A slow consumer the server dropped reads to the end of what was
        // queued for it, then finds the connection closed.
        for key in slow {
            let c = &mut self.clients[key];
            self.report.fault.slow += 1;
            if drained_to_close(&mut c.stream, &mut self.buf) {
                self.report.fault.slow_dropped += 1;
            }
        }
        self.report.fault.reconnect_us = hist::encode(&self.reconnect_hist);
        self.report.fault.attacker_life_us = hist::encode(&self.attacker_life);
        let (u, s) = self_cpu();
        self.report.cpu_user = u;
        self.report.cpu_sys = s;
        self.report.connect_us = hist::encode(&self.connect_hist);
        self.report.latency_us = hist::encode(&self.latency);
        self.report.latency_raw_us = hist::encode(&self.latency_raw);
        let mut idx: Vec<_> = self.intervals.keys().copied().collect();
        idx.sort();
        self.report.intervals = idx
            .into_iter()
            .map(|i| {
                let (c, r) = &self.intervals[&i];
                (i, hist::encode(c), hist::encode(r))
            })
            .collect();
    }
}

/// What the subscribers saw of the ids whose publish lost its answer.
struct Tally<'a> {
    /// Per channel, its candidate ids and their places in `counts`.
    ids: HashMap<&'a str, Vec<(u64, usize)>>,
    /// Per subscriber index, the ids it never received (its jumps).
    holes: HashMap<usize, Vec<(u64, u64)>>,
    counts: Vec<Candidate>,
}

impl<'a> Tally<'a> {
    fn new(candidates: &'a HashMap<String, Vec<u64>>, gaps: &[(usize, String, Gap)]) -> Tally<'a> {
        let mut t = Tally {
            ids: HashMap::new(),
            holes: HashMap::new(),
            counts: Vec::new(),
        };
        for (channel, ids) in candidates {
            for &id in ids {
                t.ids
                    .entry(channel.as_str())
                    .or_default()
                    .push((id, t.counts.len()));
                t.counts.push(Candidate {
                    channel: channel.clone(),
                    id,
                    ..Candidate::default()
                });
            }
        }
        if !t.counts.is_empty() {
            for (index, _, g) in gaps {
                t.holes.entry(*index).or_default().push((g.first, g.last));
            }
        }
        t
    }

    /// Subscriber `index` on `channel`, due its messages, reached id `last`.
    fn count(&mut self, channel: &str, index: usize, last: u64) {
        let Some(ids) = self.ids.get(channel) else {
            return;
        };
        let holes = self.holes.get(&index).map_or(&[][..], Vec::as_slice);
        for &(id, at) in ids {
            self.counts[at].due += 1;
            if id <= last && !holes.iter().any(|&(a, b)| a <= id && id <= b) {
                self.counts[at].received += 1;
            }
        }
    }

    fn into_counts(self) -> Vec<Candidate> {
        self.counts
    }
}

/// Reads what the server queued for a slow consumer; true when the
/// connection then turns out closed (EOF or reset), false when it is still
/// open (nothing more within 300 ms, or more than 64 MiB).
fn drained_to_close(stream: &mut TcpStream, buf: &mut [u8]) -> bool {
    use std::os::fd::AsRawFd;
    let mut total = 0usize;
    loop {
        match stream.read(buf) {
            Ok(0) => return true,
            Ok(n) => {
                total += n;
                if total > 64 << 20 {
                    return false;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut pfd = libc::pollfd {
                    fd: stream.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: poll reads and writes only the one pollfd passed in.
                let n = unsafe { libc::poll(&mut pfd, 1, 300) };
                if n == 0 {
                    return false;
                }
            }
            Err(_) => return true,
        }
    }
}
