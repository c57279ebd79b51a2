//! fleetd-loadgen: gRPC heartbeats from many devices, each with its own client certificate.
//!
//! Every heartbeat is, by default, what a device behind NAT makes: a new TCP connection, a
//! mutual-TLS handshake with the device's own certificate (rustls; TLS 1.3 session
//! resumption per device with `--resume`), an HTTP/2 connection, one unary gRPC call, and
//! the connection closed. The request body is a serialized `HeartbeatRequest` given by
//! the caller (`bench/load/rust_generator.py`), so this program knows nothing of protobuf.
//!
//! Modes: `agent` (see `agents.rs`) keeps each device's connection and heartbeats at an
//! interval, backing off with full jitter after errors, as fleetd-agent does. `open` fires `--rate` heartbeats a second on schedule whatever the answers
//! (latency runs from the scheduled instant: no coordinated omission); `closed` keeps
//! `--concurrency` heartbeats in flight. It prints `window-start` and `window-end` on
//! stdout at the measured window's edges (so the caller can read the servers' CPU time
//! there) and writes its figures as JSON to `--out`.

mod agents;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, HandshakeKind, RootCertStore};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Open,
    Closed,
    Agent,
}

#[derive(Clone)]
struct Args {
    target: SocketAddr,
    server_name: String,
    ca: String,
    certs: String,
    keys: String,
    request: String,
    path: String,
    mode: Mode,
    rate: f64,
    concurrency: usize,
    duration: f64,
    timeout: f64,
    resume: bool,
    threads: usize,
    interval: f64,
    connect_rate: f64,
    out: String,
}

const USAGE: &str =
    "fleetd-loadgen --target HOST:PORT --ca CA.pem --certs CERTS.pem --keys KEYS.pem \
--request BODY.bin --out OUT.json [--server-name localhost] [--path /pkg.Service/Method] \
[--mode open|closed|agent] [--rate N] [--concurrency N] [--duration S] [--timeout S] [--resume] \
[--threads N] [--interval S] [--connect-rate N]";

fn parse_args() -> Result<Args, String> {
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    let mut resume = false;
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        match flag.as_str() {
            "--resume" => resume = true,
            "--help" | "-h" => return Err(USAGE.to_string()),
            f if f.starts_with("--") => {
                let value = argv.next().ok_or_else(|| format!("{f} needs a value"))?;
                values.insert(f[2..].to_string(), value);
            }
            other => return Err(format!("unexpected argument {other:?}\n{USAGE}")),
        }
    }
    let mut take = |name: &str, default: Option<&str>| -> Result<String, String> {
        values
            .remove(name)
            .or_else(|| default.map(str::to_string))
            .ok_or_else(|| format!("--{name} is required\n{USAGE}"))
    };
    let number = |name: &str, text: String| -> Result<f64, String> {
        text.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("--{name}: not a non-negative number: {text:?}"))
    };
    let target = take("target", None)?;
    let args = Args {
        target: target
            .parse()
            .map_err(|e| format!("--target {target:?}: {e} (give IP:PORT)"))?,
        server_name: take("server-name", Some("localhost"))?,
        ca: take("ca", None)?,
        certs: take("certs", None)?,
        keys: take("keys", None)?,
        request: take("request", None)?,
        path: take("path", Some("/fleetd.device.v1.AgentService/Heartbeat"))?,
        mode: match take("mode", Some("open"))?.as_str() {
            "open" => Mode::Open,
            "closed" => Mode::Closed,
            "agent" => Mode::Agent,
            other => return Err(format!("--mode {other:?}: open, closed or agent")),
        },
        rate: number("rate", take("rate", Some("100"))?)?,
        concurrency: number("concurrency", take("concurrency", Some("64"))?)? as usize,
        duration: number("duration", take("duration", Some("10"))?)?,
        timeout: number("timeout", take("timeout", Some("10"))?)?,
        resume,
        threads: number("threads", take("threads", Some("1"))?)? as usize,
        interval: number("interval", take("interval", Some("30"))?)?,
        connect_rate: number("connect-rate", take("connect-rate", Some("300"))?)?,
        out: take("out", None)?,
    };
    if let Some(extra) = values.keys().next() {
        return Err(format!("unknown option --{extra}\n{USAGE}"));
    }
    if args.mode == Mode::Open && args.rate <= 0.0 {
        return Err("--mode open needs --rate > 0".to_string());
    }
    if args.mode == Mode::Agent && (args.interval <= 0.0 || args.connect_rate <= 0.0) {
        return Err("--mode agent needs --interval > 0 and --connect-rate > 0".to_string());
    }
    if args.concurrency == 0 || args.threads == 0 {
        return Err("--concurrency and --threads must be at least 1".to_string());
    }
    Ok(args)
}

/// One rustls client configuration per device: its certificate, its key and its own
/// session store (a store shared between devices would resume one device's session,
/// and so its identity, for another).
fn device_configs(args: &Args) -> Result<Vec<Arc<ClientConfig>>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&args.ca).map_err(|e| format!("{}: {e}", args.ca))? {
        roots
            .add(cert.map_err(|e| format!("{}: {e}", args.ca))?)
            .map_err(|e| format!("{}: {e}", args.ca))?;
    }
    let roots = Arc::new(roots);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&args.certs)
        .map_err(|e| format!("{}: {e}", args.certs))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", args.certs))?;
    let keys: Vec<PrivateKeyDer<'static>> = PrivateKeyDer::pem_file_iter(&args.keys)
        .map_err(|e| format!("{}: {e}", args.keys))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", args.keys))?;
    if certs.is_empty() || certs.len() != keys.len() {
        return Err(format!(
            "{} certificates and {} keys: need one key per certificate, at least one",
            certs.len(),
            keys.len()
        ));
    }
    let mut configs = Vec::with_capacity(certs.len());
    for (cert, key) in certs.into_iter().zip(keys) {
        let mut config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(vec![cert], key)
            .map_err(|e| e.to_string())?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        config.resumption = if args.resume {
            Resumption::in_memory_sessions(4)
        } else {
            Resumption::disabled()
        };
        configs.push(Arc::new(config));
    }
    Ok(configs)
}

struct Call {
    addr: SocketAddr,
    server_name: ServerName<'static>,
    uri: http::Uri,
    body: Bytes,
    timeout: Duration,
}

struct Outcome {
    done: Instant,
    resumed: bool,
}

const GRPC_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// An HTTP/2 failure as the gRPC status a grpc client reports for it (the gRPC over
/// HTTP/2 spec's mapping), with where it happened.
fn h2_error(stage: &str, error: h2::Error) -> String {
    if error.is_go_away() {
        return format!("UNAVAILABLE ({stage}: GOAWAY)");
    }
    match error.reason() {
        Some(h2::Reason::REFUSED_STREAM) => format!("UNAVAILABLE ({stage}: REFUSED_STREAM)"),
        Some(h2::Reason::CANCEL) => format!("CANCELLED ({stage}: RST_STREAM)"),
        Some(h2::Reason::ENHANCE_YOUR_CALM) => {
            format!("RESOURCE_EXHAUSTED ({stage}: ENHANCE_YOUR_CALM)")
        }
        Some(h2::Reason::INADEQUATE_SECURITY) => format!("PERMISSION_DENIED ({stage})"),
        Some(reason) => format!("INTERNAL ({stage}: RST_STREAM {reason:?})"),
        None if error.is_io() => format!("UNAVAILABLE ({stage}: connection lost)"),
        None => format!("UNAVAILABLE ({stage}: {error})"),
    }
}

fn grpc_status(value: Option<&http::HeaderValue>) -> Option<u32> {
    value
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse().ok())
}

/// The status message, shortened (errors are counted by code and message).
fn grpc_message(value: Option<&http::HeaderValue>) -> String {
    let text = value.and_then(|v| v.to_str().ok()).unwrap_or("");
    text.chars().take(60).collect()
}

/// Why a call failed: its code (and message) for the figures, and whether the server
/// answered it (the connection still works) or the connection itself failed.
struct Failure {
    code: String,
    answered: bool,
    /// The connection had gone away (GOAWAY, closed) before the call went out: a grpc
    /// channel retries such a call on a new connection without reporting it.
    unsent: bool,
}

impl Failure {
    fn answered(code: String) -> Self {
        Failure {
            code,
            answered: true,
            unsent: false,
        }
    }

    fn lost(code: String) -> Self {
        Failure {
            code,
            answered: false,
            unsent: false,
        }
    }

    fn unsent(code: String) -> Self {
        Failure {
            code,
            answered: false,
            unsent: true,
        }
    }
}

/// A device's HTTP/2 connection to the gateway (TCP + mTLS + h2 handshakes done).
struct Connection {
    client: h2::client::SendRequest<Bytes>,
    driver: tokio::task::JoinHandle<Result<(), h2::Error>>,
    resumed: bool,
}

impl Connection {
    async fn open(call: &Call, config: Arc<ClientConfig>) -> Result<Self, String> {
        let tcp = TcpStream::connect(call.addr)
            .await
            .map_err(|e| format!("UNAVAILABLE (connect: {:?})", e.kind()))?;
        let _ = tcp.set_nodelay(true);
        let tls = TlsConnector::from(config)
            .connect(call.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("UNAVAILABLE (handshake: {e})"))?;
        let resumed = tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
        let (client, connection) = h2::client::Builder::new()
            .handshake::<_, Bytes>(tls)
            .await
            .map_err(|e| h2_error("h2 handshake", e))?;
        let driver = tokio::spawn(connection);
        Ok(Connection {
            client,
            driver,
            resumed,
        })
    }

    /// One unary call; when its answer was complete, or the gRPC status name (and
    /// message) unless it was OK. ``Answered`` failures left the connection usable.
    async fn call(&mut self, call: &Call) -> Result<Instant, Failure> {
        let mut client = self
            .client
            .clone()
            .ready()
            .await
            .map_err(|e| Failure::unsent(h2_error("ready", e)))?;
        let request = http::Request::builder()
            .method("POST")
            .uri(call.uri.clone())
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .expect("a valid request");
        let (response, mut send) = client
            .send_request(request, false)
            .map_err(|e| Failure::unsent(h2_error("send", e)))?;
        send.send_data(call.body.clone(), true)
            .map_err(|e| Failure::lost(h2_error("send", e)))?;
        let response = response
            .await
            .map_err(|e| Failure::lost(h2_error("response", e)))?;
        let (parts, mut body) = response.into_parts();
        if parts.status != http::StatusCode::OK {
            return Err(Failure::lost(format!("HTTP_{}", parts.status.as_u16())));
        }
        // A trailers-only answer (grpc's errors) carries grpc-status in the headers.
        let mut status = grpc_status(parts.headers.get("grpc-status"));
        let mut message = grpc_message(parts.headers.get("grpc-message"));
        if status.is_none() {
            while let Some(chunk) = body.data().await {
                let chunk = chunk.map_err(|e| Failure::lost(h2_error("body", e)))?;
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            let trailers = body
                .trailers()
                .await
                .map_err(|e| Failure::lost(h2_error("trailers", e)))?;
            if let Some(trailers) = trailers {
                status = grpc_status(trailers.get("grpc-status"));
                message = grpc_message(trailers.get("grpc-message"));
            }
        }
        let done = Instant::now();
        match status {
            Some(0) => Ok(done),
            Some(code) => {
                let name = GRPC_CODES
                    .get(code as usize)
                    .map_or_else(|| format!("CODE_{code}"), |name| name.to_string());
                Err(Failure::answered(if message.is_empty() {
                    name
                } else {
                    format!("{name} ({message})")
                }))
            }
            None => Err(Failure::lost("INTERNAL (no grpc-status)".to_string())),
        }
    }

    /// Hang up: dropping the last handle lets the connection send GOAWAY and end.
    async fn close(self) {
        drop(self.client);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.driver).await;
    }
}

/// One heartbeat on a new connection, closed after it (a device behind NAT).
async fn heartbeat(call: &Call, config: Arc<ClientConfig>) -> Result<Outcome, String> {
    let mut connection = Connection::open(call, config).await?;
    let resumed = connection.resumed;
    let result = connection.call(call).await;
    connection.close().await;
    result
        .map(|done| Outcome { done, resumed })
        .map_err(|failure| failure.code)
}

#[derive(Default)]
struct Stats {
    latencies_ms: Vec<f64>,
    errors: BTreeMap<String, u64>,
    resumed: u64,
    full_handshakes: u64,
    timeline_ok: Vec<u64>,
    max_lag_ms: f64,
}

impl Stats {
    fn record(&mut self, t0: Instant, scheduled: Instant, result: Result<Outcome, String>) {
        match result {
            Ok(outcome) => {
                self.latencies_ms.push(
                    outcome
                        .done
                        .saturating_duration_since(scheduled)
                        .as_secs_f64()
                        * 1e3,
                );
                if outcome.resumed {
                    self.resumed += 1;
                } else {
                    self.full_handshakes += 1;
                }
                let second = outcome.done.saturating_duration_since(t0).as_secs() as usize;
                if self.timeline_ok.len() <= second {
                    self.timeline_ok.resize(second + 1, 0);
                }
                self.timeline_ok[second] += 1;
            }
            Err(code) => *self.errors.entry(code).or_insert(0) += 1,
        }
    }
}

async fn timed(call: &Call, config: Arc<ClientConfig>) -> Result<Outcome, String> {
    match tokio::time::timeout(call.timeout, heartbeat(call, config)).await {
        Ok(result) => result,
        Err(_) => Err("DEADLINE_EXCEEDED".to_string()),
    }
}

async fn run(args: Args, configs: Vec<Arc<ClientConfig>>, call: Call) -> Stats {
    let call = Arc::new(call);
    let stats = Arc::new(Mutex::new(Stats::default()));
    let t0 = Instant::now() + Duration::from_millis(100);
    let t_end = t0 + Duration::from_secs_f64(args.duration);
    let edges = tokio::spawn(async move {
        tokio::time::sleep_until(t0.into()).await;
        println!("window-start");
        tokio::time::sleep_until(t_end.into()).await;
        println!("window-end");
    });
    let mut tasks = JoinSet::new();
    let n = configs.len();
    match args.mode {
        Mode::Open => {
            let step = 1.0 / args.rate;
            let mut k: u64 = 0;
            loop {
                let scheduled = t0 + Duration::from_secs_f64(k as f64 * step);
                if scheduled >= t_end {
                    break;
                }
                let now = Instant::now();
                if scheduled > now {
                    tokio::time::sleep_until(scheduled.into()).await;
                } else {
                    let lag = now.duration_since(scheduled).as_secs_f64() * 1e3;
                    let mut s = stats.lock().expect("stats");
                    s.max_lag_ms = s.max_lag_ms.max(lag);
                }
                let config = configs[(k as usize) % n].clone();
                let (call, stats) = (call.clone(), stats.clone());
                tasks.spawn(async move {
                    let result = timed(&call, config).await;
                    stats.lock().expect("stats").record(t0, scheduled, result);
                });
                k += 1;
                // Reap finished tasks as we go, so the set stays the size of what is in flight.
                while tasks.try_join_next().is_some() {}
            }
        }
        Mode::Agent => unreachable!("agents::run"),
        Mode::Closed => {
            tokio::time::sleep_until(t0.into()).await;
            for j in 0..args.concurrency.min(n) {
                let (call, stats, configs) = (call.clone(), stats.clone(), configs.clone());
                let stride = args.concurrency.min(n);
                tasks.spawn(async move {
                    let mut i = j;
                    loop {
                        let started = Instant::now();
                        if started >= t_end {
                            break;
                        }
                        let result = timed(&call, configs[i % n].clone()).await;
                        let failed = result.is_err();
                        if result.as_ref().map_or(true, |o| o.done <= t_end) {
                            stats.lock().expect("stats").record(t0, started, result);
                        }
                        if failed {
                            // An error answers fast: do not spin on it.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        i += stride;
                    }
                });
            }
        }
    }
    // Calls still in flight at the window's end get the call timeout (and a second) to end.
    let deadline = t_end + Duration::from_secs_f64(args.timeout + 1.0);
    let drain = async { while tasks.join_next().await.is_some() {} };
    let _ = tokio::time::timeout_at(deadline.into(), drain).await;
    let _ = edges.await; // the window has ended (its edge printed) before the report
    let remaining = tasks.len() as u64;
    let mut out = std::mem::take(&mut *stats.lock().expect("stats"));
    if remaining > 0 {
        *out.errors.entry("UNFINISHED".to_string()).or_insert(0) += remaining;
    }
    out
}

fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * q) as usize).min(sorted.len() - 1);
    sorted[index]
}

fn report(args: &Args, mut stats: Stats, devices: usize) -> String {
    stats.latencies_ms.sort_by(|a, b| a.total_cmp(b));
    let ok = stats.latencies_ms.len();
    let mean = if ok == 0 {
        0.0
    } else {
        stats.latencies_ms.iter().sum::<f64>() / ok as f64
    };
    let errors: Vec<String> = stats
        .errors
        .iter()
        .map(|(code, n)| format!("{}: {n}", json_string(code)))
        .collect();
    let timeline: Vec<String> = stats.timeline_ok.iter().map(u64::to_string).collect();
    format!(
        "{{\"mode\": {}, \"devices\": {devices}, \"rate\": {}, \"concurrency\": {}, \
\"duration\": {}, \"resume\": {}, \"ok\": {ok}, \"throughput\": {:.1}, \"errors\": {{{}}}, \
\"p50_ms\": {:.2}, \"p99_ms\": {:.2}, \"max_ms\": {:.2}, \"mean_ms\": {mean:.2}, \
\"resumed\": {}, \"full_handshakes\": {}, \"max_lag_ms\": {:.1}, \"timeline_ok\": [{}]}}\n",
        json_string(if args.mode == Mode::Open {
            "open"
        } else {
            "closed"
        }),
        args.rate,
        args.concurrency,
        args.duration,
        args.resume,
        ok as f64 / args.duration.max(1e-9),
        errors.join(", "),
        percentile(&stats.latencies_ms, 0.50),
        percentile(&stats.latencies_ms, 0.99),
        stats.latencies_ms.last().copied().unwrap_or(0.0),
        stats.resumed,
        stats.full_handshakes,
        stats.max_lag_ms,
        timeline.join(", "),
    )
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let setup = || -> Result<(Vec<Arc<ClientConfig>>, Call), String> {
        let configs = device_configs(&args)?;
        let message = std::fs::read(&args.request).map_err(|e| format!("{}: {e}", args.request))?;
        let mut body = BytesMut::with_capacity(message.len() + 5);
        body.put_u8(0); // not compressed
        body.put_u32(message.len() as u32);
        body.put_slice(&message);
        let call = Call {
            addr: args.target,
            server_name: ServerName::try_from(args.server_name.clone())
                .map_err(|e| format!("--server-name: {e}"))?,
            uri: format!("https://{}{}", args.server_name, args.path)
                .parse()
                .map_err(|e| format!("--path: {e}"))?,
            body: body.freeze(),
            timeout: Duration::from_secs_f64(args.timeout.max(0.001)),
        };
        Ok((configs, call))
    };
    let (configs, call) = match setup() {
        Ok(parts) => parts,
        Err(message) => {
            eprintln!("fleetd-loadgen: {message}");
            std::process::exit(2);
        }
    };
    let devices = configs.len();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let text = if args.mode == Mode::Agent {
        let stats = runtime.block_on(agents::run(&args, configs, call));
        agents::report(&args, stats)
    } else {
        let stats = runtime.block_on(run(args.clone(), configs, call));
        report(&args, stats, devices)
    };
    if let Err(e) = std::fs::write(&args.out, text) {
        eprintln!("fleetd-loadgen: {}: {e}", args.out);
        std::process::exit(1);
    }
}
