//! Load benchmark of the hub: validated rule writes per second, then 200 concurrent workers
//! polling the deployable-set endpoint, with p50/p99 latency.
//!
//! ```text
//! cargo run --release -p foundry-hub --example poll_load [-- POLLERS REQUESTS_PER_POLLER]
//! ```
//!
//! Starts the hub on 127.0.0.1:0 with a fresh SQLite file and the engine's own validator, and
//! talks to it over real TCP with a minimal HTTP/1.1 keep-alive client. Every loop is bounded;
//! the run stops by itself. The server and the load generator share the machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use foundry_hub::{HubConfig, Role, RuleKind, RuleValidator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Engine;

impl RuleValidator for Engine {
    fn validate(&self, kind: RuleKind, text: &str) -> Result<(), String> {
        foundry_engine::validate_rule_text(kind.as_str(), text)
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect to hub");
        stream.set_nodelay(true).ok();
        Client {
            stream,
            buf: Vec::with_capacity(64 * 1024),
        }
    }

    /// Sends a request and returns (status, etag, body).
    async fn request(
        &mut self,
        method: &str,
        path: &str,
        token: &str,
        extra: &str,
        body: &str,
    ) -> (u16, Option<String>, String) {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {token}\r\n{extra}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream.write_all(req.as_bytes()).await.expect("write");
        self.buf.clear();
        let header_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "hub closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&self.buf[..header_end]).to_string();
        let status: u16 = head[9..12].parse().expect("status code");
        let mut length = 0usize;
        let mut etag = None;
        for line in head.lines() {
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("etag:") {
                etag = Some(line[5..].trim().to_string());
            }
        }
        while self.buf.len() < header_end + length {
            let mut chunk = [0u8; 64 * 1024];
            let n = self.stream.read(&mut chunk).await.expect("read body");
            assert!(n > 0, "hub closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8_lossy(&self.buf[header_end..header_end + length]).to_string();
        (status, etag, body)
    }
}

fn sigma(n: usize) -> String {
    format!(
        "title: Load rule {n}\nid: 00000000-0000-4000-8000-{n:012}\nstatus: test\nlogsource:\n  \
         product: windows\n  category: process_creation\ndetection:\n  selection:\n    \
         Image|endswith: '\\\\tool{n}.exe'\n    CommandLine|contains:\n      - ' -enc '\n      \
         - 'payload{n}'\n  condition: selection\nlevel: medium\n"
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let pollers = args.first().copied().unwrap_or(200);
    let per_poller = args.get(1).copied().unwrap_or(50);
    let writes = 400;

    let dir = tempfile::tempdir().expect("temp dir");
    let config = HubConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        db_url: format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        ),
        ..HubConfig::default()
    };
    let state = foundry_hub::open(config, Arc::new(Engine))
        .await
        .expect("open hub");
    state
        .store
        .create_tenant("bench", "Bench Org")
        .await
        .unwrap();
    let (_, eng) = state
        .store
        .create_user("bench", "eng", Role::Engineer)
        .await
        .unwrap();
    let (_, rev) = state
        .store
        .create_user("bench", "rev", Role::Reviewer)
        .await
        .unwrap();
    let (_, worker) = state
        .store
        .create_user("bench", "worker", Role::Reader)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(foundry_hub::serve_on(listener, state.clone()));

    // 1. Validated rule writes: 4 concurrent writers.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let eng = eng.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            let mut ids = Vec::new();
            for i in 0..writes / 4 {
                let n = w * 10_000 + i;
                let body =
                    serde_json::json!({"kind": "sigma", "text": sigma(n), "tlp": "TLP:GREEN",
                    "confidence": 60})
                    .to_string();
                let (status, _, resp) = c.request("POST", "/v1/rules", &eng, "", &body).await;
                assert_eq!(status, 201, "{resp}");
                let v: serde_json::Value = serde_json::from_str(&resp).unwrap();
                ids.push(v["id"].as_str().unwrap().to_string());
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    let write_secs = started.elapsed().as_secs_f64();
    println!(
        "rule writes: {writes} validated Sigma writes in {write_secs:.2}s = {:.0} writes/s",
        writes as f64 / write_secs
    );

    // 2. Approve 100 of them so the bundle has real content.
    let mut c = Client::connect(addr).await;
    for id in ids.iter().take(100) {
        let (s, _, b) = c
            .request(
                "POST",
                &format!("/v1/rules/{id}/status"),
                &eng,
                "",
                r#"{"status":"proposed"}"#,
            )
            .await;
        assert_eq!(s, 200, "{b}");
        let (s, _, b) = c
            .request(
                "POST",
                &format!("/v1/rules/{id}/status"),
                &rev,
                "",
                r#"{"status":"approved"}"#,
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    let (_, _, bundle) = c
        .request("GET", "/v1/tenants/bench/deployable", &worker, "", "")
        .await;
    println!("bundle: {} bytes, 100 rules", bundle.len());

    // 3. Pollers: first a full GET, then conditional GETs with the ETag, like a worker.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..pollers {
        let worker = worker.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            let mut lat = Vec::with_capacity(per_poller);
            let mut etag: Option<String> = None;
            let (mut full, mut not_modified) = (0usize, 0usize);
            for _ in 0..per_poller {
                let extra = etag
                    .as_ref()
                    .map(|e| format!("If-None-Match: {e}\r\n"))
                    .unwrap_or_default();
                let t0 = Instant::now();
                let (status, tag, _) = c
                    .request("GET", "/v1/tenants/bench/deployable", &worker, &extra, "")
                    .await;
                lat.push(t0.elapsed());
                match status {
                    200 => full += 1,
                    304 => not_modified += 1,
                    other => panic!("poll answered {other}"),
                }
                etag = tag.or(etag);
            }
            (lat, full, not_modified)
        }));
    }
    let mut all = Vec::new();
    let (mut full, mut not_modified) = (0, 0);
    for t in tasks {
        let (lat, f, n) = t.await.unwrap();
        all.extend(lat);
        full += f;
        not_modified += n;
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort();
    println!(
        "polling: {pollers} concurrent pollers x {per_poller} requests = {} requests in {secs:.2}s \
         ({:.0} req/s; {full} full 200, {not_modified} 304)",
        all.len(),
        all.len() as f64 / secs
    );
    println!(
        "latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (goal: p99 < 50 ms)",
        percentile(&all, 0.50).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
        all.last().unwrap().as_secs_f64() * 1e3
    );
}
