//! The sampler thread: samples the server every interval, writes each sample
//! to `samples.jsonl` with the case and the phase it was taken in, and keeps
//! them for the case's figures.

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::sampler::{Sample, Sampler};

pub(super) struct SamplerThread {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(String, Sample)>>>,
    phase: Arc<Mutex<String>>,
    handle: Option<JoinHandle<Sampler>>,
    interval: Duration,
    out: Arc<Mutex<File>>,
    case: String,
}

impl SamplerThread {
    /// Samples with `sampler` every `interval` into `out`, in phase `baseline`
    /// first.
    pub fn start(
        sampler: Sampler,
        interval: Duration,
        out: Arc<Mutex<File>>,
        case: String,
    ) -> SamplerThread {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let phase = Arc::new(Mutex::new("baseline".to_string()));
        let handle = {
            let (stop, samples, phase) = (stop.clone(), samples.clone(), phase.clone());
            let (out, case) = (out.clone(), case.clone());
            std::thread::spawn(move || {
                sample_until(sampler, interval, &stop, &samples, &phase, &out, &case)
            })
        };
        SamplerThread {
            stop,
            samples,
            phase,
            handle: Some(handle),
            interval,
            out,
            case,
        }
    }

    /// The phase the next samples are taken in.
    pub fn set_phase(&self, phase: &str) {
        *self.phase.lock().unwrap() = phase.to_string();
    }

    /// The latest sample.
    pub fn last(&self) -> Option<Sample> {
        self.samples.lock().unwrap().last().map(|(_, s)| s.clone())
    }

    /// Stops the thread; every sample with its phase.
    pub fn finish(mut self) -> Vec<(String, Sample)> {
        let samples = self.samples.lock().unwrap().clone();
        drop(self.stop_thread());
        samples
    }

    /// Goes on with process `pid` (a restarted server), in phase `phase`,
    /// keeping what was sampled of the old one, and the other roots it
    /// summed (the other nodes of a case of several).
    pub fn follow(mut self, pid: u32, phase: &str) -> SamplerThread {
        let kept = self.samples.lock().unwrap().clone();
        let mut sampler = Sampler::new(pid, false);
        if let Some(old) = self.stop_thread() {
            for &root in old.extra_roots() {
                sampler.add_root(root);
            }
        }
        let next =
            SamplerThread::start(sampler, self.interval, self.out.clone(), self.case.clone());
        next.set_phase(phase);
        next.samples.lock().unwrap().splice(0..0, kept);
        next
    }

    /// Ends the thread; its sampler (dropping it removes the server's cgroup).
    fn stop_thread(&mut self) -> Option<Sampler> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().and_then(|h| h.join().ok())
    }
}

impl Drop for SamplerThread {
    /// A case that ends early (an error) stops its sampler too.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn sample_until(
    mut sampler: Sampler,
    interval: Duration,
    stop: &AtomicBool,
    samples: &Mutex<Vec<(String, Sample)>>,
    phase: &Mutex<String>,
    out: &Mutex<File>,
    case: &str,
) -> Sampler {
    while !stop.load(Ordering::Relaxed) {
        if let Ok(sample) = sampler.sample() {
            let phase = phase.lock().unwrap().clone();
            let line = serde_json::json!({ "case": case, "phase": phase, "sample": sample });
            let _ = writeln!(out.lock().unwrap(), "{line}");
            samples.lock().unwrap().push((phase, sample));
        }
        std::thread::sleep(interval);
    }
    sampler
}
