//! One keep-alive connection for publishing and `/stats`: a test that makes
//! its other requests on it knows exactly how many connections it opened.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use comet::client::ResponseHead;

use crate::client::take_response;

pub struct Control {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Control {
    pub fn connect(addr: SocketAddr) -> Control {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Control {
            stream,
            buf: Vec::new(),
        }
    }

    /// Sends `raw` and reads its whole response.
    pub fn request(&mut self, raw: &[u8]) -> (ResponseHead, Vec<u8>) {
        self.stream.write_all(raw).expect("write request");
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(r) = take_response(&mut self.buf) {
                return r;
            }
            let n = self.stream.read(&mut chunk).expect("read response");
            assert!(n > 0, "the control connection was closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Publishes and returns the id given.
    pub fn publish(&mut self, channel: &str, data: &str) -> u64 {
        let req = comet::client::publish_request(channel, data, None);
        let (head, body) = self.request(req.as_bytes());
        assert_eq!(head.status, 202, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["id"].as_u64().unwrap()
    }

    pub fn stats(&mut self) -> serde_json::Value {
        let (head, body) = self.request(b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(head.status, 200);
        serde_json::from_slice(&body).unwrap()
    }

    /// Waits until `/stats` reports `n` subscribers.
    pub fn wait_subscribers(&mut self, n: u64, within: Duration) {
        let end = Instant::now() + within;
        loop {
            let got = self.stats()["subscribers"].as_u64().unwrap();
            if got == n {
                return;
            }
            assert!(Instant::now() < end, "subscribers: {got}, want {n}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
