//! `--mode agent`: devices that keep their connection, as fleetd-agent does.
//!
//! Each device connects (paced at `--connect-rate` a second), heartbeats, then heartbeats
//! again every `--interval` seconds (+/- 5 %) on the same HTTP/2 connection. After a
//! failure it waits a full-jitter exponential backoff (agent/backoff.py: base 1 s, cap
//! 30 s) and tries again, on a new connection unless the server answered the call. The
//! measured window opens once every device has had its turn to connect (plus 2 s); every
//! success is time-stamped per device (the reconnect storm reads when each device came
//! back), errors are counted by code inside the window.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::ClientConfig;
use tokio::task::JoinSet;

use super::{json_string, Args, Call, Connection};

const BACKOFF_BASE: f64 = 1.0;
const BACKOFF_CAP: f64 = 30.0;
const INTERVAL_JITTER: f64 = 0.05;

/// xorshift64*: enough randomness for jitter, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn uniform(&mut self, low: f64, high: f64) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let unit = (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
        low + (high - low) * unit
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[derive(Default)]
pub(crate) struct AgentStats {
    successes: Vec<Vec<f64>>,
    errors: BTreeMap<String, u64>,
    /// Every error in the window: (Unix time, code), so a caller can tell the outage's
    /// errors from later ones.
    error_log: Vec<(f64, String)>,
    timeline_ok: Vec<u64>,
    timeline_err: Vec<u64>,
    ok: u64,
    connections: u64,
    start_wall: f64,
}

fn bump(timeline: &mut Vec<u64>, second: usize) {
    if timeline.len() <= second {
        timeline.resize(second + 1, 0);
    }
    timeline[second] += 1;
}

struct Window {
    t0: Instant,
    t_end: Instant,
    interval: f64,
}

async fn device(
    index: usize,
    config: Arc<ClientConfig>,
    call: Arc<Call>,
    stats: Arc<Mutex<AgentStats>>,
    begin: Instant,
    window: Arc<Window>,
) {
    let mut rng = Rng::new(index as u64 + (unix_now() * 1e6) as u64);
    let mut attempt: u32 = 0;
    let mut connection: Option<Connection> = None;
    tokio::time::sleep_until(begin.into()).await;
    loop {
        let started = Instant::now();
        if started >= window.t_end {
            break;
        }
        let beat = async {
            // A connection the server closed (GOAWAY) while idle is replaced before the
            // call goes out, as a grpc channel does, without failing the call.
            for _ in 0..2 {
                if connection.as_ref().is_some_and(|c| c.driver.is_finished()) {
                    connection = None;
                }
                if connection.is_none() {
                    let opened = Connection::open(&call, config.clone()).await;
                    connection = Some(opened.map_err(|code| (code, false))?);
                    stats.lock().expect("stats").connections += 1;
                }
                let open = connection.as_mut().expect("opened above");
                match open.call(&call).await {
                    Ok(done) => return Ok(done),
                    Err(failure) if failure.unsent => connection = None,
                    Err(failure) => return Err((failure.code, failure.answered)),
                }
            }
            Err((
                "UNAVAILABLE (no connection took the call)".to_string(),
                false,
            ))
        };
        let result = match tokio::time::timeout(call.timeout, beat).await {
            Ok(result) => result,
            Err(_) => Err(("DEADLINE_EXCEEDED".to_string(), false)),
        };
        let now = Instant::now();
        let in_window = started >= window.t0;
        let second = now.saturating_duration_since(window.t0).as_secs() as usize;
        let pause = match result {
            Ok(_) => {
                attempt = 0;
                let mut s = stats.lock().expect("stats");
                s.successes[index].push(unix_now());
                if in_window {
                    s.ok += 1;
                    bump(&mut s.timeline_ok, second);
                }
                window.interval * rng.uniform(1.0 - INTERVAL_JITTER, 1.0 + INTERVAL_JITTER)
            }
            Err((code, answered)) => {
                if !answered {
                    // The connection failed (or the call timed out on it): hang up.
                    if let Some(dead) = connection.take() {
                        tokio::spawn(dead.close());
                    }
                }
                if in_window {
                    let mut s = stats.lock().expect("stats");
                    s.error_log.push((unix_now(), code.clone()));
                    *s.errors.entry(code).or_insert(0) += 1;
                    bump(&mut s.timeline_err, second);
                }
                let ceiling = BACKOFF_CAP.min(BACKOFF_BASE * 2f64.powi(attempt.min(30) as i32));
                attempt += 1;
                rng.uniform(0.0, ceiling)
            }
        };
        let wake = Instant::now() + Duration::from_secs_f64(pause);
        if wake >= window.t_end {
            break;
        }
        tokio::time::sleep_until(wake.into()).await;
    }
    if let Some(open) = connection {
        open.close().await;
    }
}

pub(crate) async fn run(args: &Args, configs: Vec<Arc<ClientConfig>>, call: Call) -> AgentStats {
    let n = configs.len();
    let ramp = n as f64 / args.connect_rate + 2.0;
    let start = Instant::now();
    let window = Arc::new(Window {
        t0: start + Duration::from_secs_f64(ramp),
        t_end: start + Duration::from_secs_f64(ramp + args.duration),
        interval: args.interval,
    });
    let stats = Arc::new(Mutex::new(AgentStats {
        successes: vec![Vec::new(); n],
        start_wall: unix_now() + ramp,
        ..AgentStats::default()
    }));
    let (t0, t_end) = (window.t0, window.t_end);
    let edges = tokio::spawn(async move {
        tokio::time::sleep_until(t0.into()).await;
        println!("window-start");
        tokio::time::sleep_until(t_end.into()).await;
        println!("window-end");
    });
    let call = Arc::new(call);
    let mut tasks = JoinSet::new();
    for (index, config) in configs.into_iter().enumerate() {
        let begin = start + Duration::from_secs_f64(index as f64 / args.connect_rate);
        tasks.spawn(device(
            index,
            config,
            call.clone(),
            stats.clone(),
            begin,
            window.clone(),
        ));
    }
    while tasks.join_next().await.is_some() {}
    let _ = edges.await;
    let mut stats = stats.lock().expect("stats");
    std::mem::take(&mut *stats)
}

pub(crate) fn report(args: &Args, stats: AgentStats) -> String {
    let errors: Vec<String> = stats
        .errors
        .iter()
        .map(|(code, n)| format!("{}: {n}", json_string(code)))
        .collect();
    let series = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    let error_log: Vec<String> = stats
        .error_log
        .iter()
        .map(|(t, code)| format!("[{t:.3}, {}]", json_string(code)))
        .collect();
    let successes: Vec<String> = stats
        .successes
        .iter()
        .map(|times| {
            let times: Vec<String> = times.iter().map(|t| format!("{t:.3}")).collect();
            format!("[{}]", times.join(", "))
        })
        .collect();
    format!(
        "{{\"mode\": \"agent\", \"devices\": {}, \"interval\": {}, \"duration\": {}, \
\"ok\": {}, \"throughput\": {:.1}, \"errors\": {{{}}}, \"connections\": {}, \"start_wall\": {:.3}, \
\"timeline_ok\": [{}], \"timeline_err\": [{}], \"error_log\": [{}], \"successes\": [{}]}}\n",
        stats.successes.len(),
        args.interval,
        args.duration,
        stats.ok,
        stats.ok as f64 / args.duration.max(1e-9),
        errors.join(", "),
        stats.connections,
        stats.start_wall,
        series(&stats.timeline_ok),
        series(&stats.timeline_err),
        error_log.join(", "),
        successes.join(", "),
    )
}
