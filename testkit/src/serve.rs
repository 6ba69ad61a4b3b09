//! `cometbench serve` as a child process, for the binary's tests.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `serve`; killed when dropped.
pub struct Server {
    pub child: Child,
    /// The bound address: the first line it prints.
    pub addr: SocketAddr,
    /// What it wrote to stderr so far, read by a thread so that it never
    /// blocks on (or fails writing to) a full pipe.
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `bin serve ARGS` and waits for its address.
    pub fn start(bin: &str, args: &[&str]) -> Server {
        let mut child = Command::new(bin)
            .arg("serve")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]);
                sink.lock().unwrap().push_str(&text);
            }
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Ok(addr) = line.trim().parse() else {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "serve printed {line:?}, not an address: {}",
                stderr.lock().unwrap()
            );
        };
        Server {
            child,
            addr,
            stderr,
        }
    }

    /// The first line it wrote to stderr (the start summary), waiting for it.
    pub fn summary(&self) -> String {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some((first, _)) = self.stderr.lock().unwrap().split_once('\n') {
                return first.to_string();
            }
            assert!(Instant::now() < end, "no line on stderr");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits for it to exit.
    pub fn terminate(mut self) -> ExitStatus {
        // SAFETY: signalling our own child, which has not been reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
