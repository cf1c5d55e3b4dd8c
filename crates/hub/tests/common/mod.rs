//! Shared test harness: a hub on SQLite (always) and on PostgreSQL (when
//! `FOUNDRY_TEST_PG_URL` is set), driven in-process through the router.

#![allow(dead_code)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use foundry_hub::{AppState, HubConfig, Role, RuleKind, RuleValidator};
use serde_json::Value;
use tower::ServiceExt;

/// The validator the tests use: the engine's own compiler (`foundry_engine`), exactly what
/// the `foundry` binary wires in. `FOUNDRY_HUB_TEST_VALIDATOR=structural` swaps in the
/// structural stand-in below (useful while the engine is being changed).
pub fn validator() -> Arc<dyn RuleValidator> {
    if std::env::var("FOUNDRY_HUB_TEST_VALIDATOR").as_deref() == Ok("structural") {
        return Arc::new(StructuralValidator);
    }
    Arc::new(EngineValidator)
}

/// The real compiler.
pub struct EngineValidator;

impl RuleValidator for EngineValidator {
    fn validate(&self, kind: RuleKind, text: &str) -> Result<(), String> {
        foundry_engine::validate_rule_text(kind.as_str(), text)
    }
}

/// A small stand-in for the engine: Sigma must be YAML with a `detection` mapping holding a
/// `condition`; YARA must contain `rule NAME {` with balanced braces outside strings and
/// properly terminated string literals.
pub struct StructuralValidator;

impl RuleValidator for StructuralValidator {
    fn validate(&self, kind: RuleKind, text: &str) -> Result<(), String> {
        match kind {
            RuleKind::Sigma => check_sigma(text),
            RuleKind::Yara => check_yara(text),
        }
    }
}

fn check_sigma(text: &str) -> Result<(), String> {
    use saphyr::{LoadableYamlNode, Yaml};
    let docs = Yaml::load_from_str(text).map_err(|e| format!("yaml: {e}"))?;
    let doc = docs.first().ok_or("empty document")?;
    let detection = doc
        .as_mapping_get("detection")
        .ok_or("missing 'detection'")?;
    if !detection.is_mapping() {
        return Err("'detection' is not a mapping".into());
    }
    detection
        .as_mapping_get("condition")
        .ok_or("detection has no 'condition'")?;
    Ok(())
}

fn check_yara(text: &str) -> Result<(), String> {
    let re = regex::Regex::new(
        r"(?m)^\s*(?:private\s+|global\s+)*rule\s+[A-Za-z_][A-Za-z0-9_]*\s*(?::[^{]*)?\{",
    )
    .unwrap();
    if !re.is_match(text) {
        return Err("no 'rule NAME {' found".into());
    }
    let mut depth = 0i32;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => loop {
                match chars.next() {
                    Some('\\') => {
                        chars.next();
                    }
                    Some('"') => break,
                    Some('\n') | None => return Err("unterminated string".into()),
                    _ => {}
                }
            },
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced '}'".into());
                }
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced braces".into());
    }
    Ok(())
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running in-process hub.
pub struct Hub {
    pub state: AppState,
    pub router: axum::Router,
    pub backend: Backend,
    pub _dir: Option<tempfile::TempDir>,
}

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

async fn fresh_pg_url(base: &str) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(base)
        .await
        .expect("connect to FOUNDRY_TEST_PG_URL");
    let mut buf = [0u8; 6];
    getrandom::fill(&mut buf).unwrap();
    let name = format!("foundry_hub_test_{}", hex::encode(buf));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let (prefix, rest) = base.rsplit_once('/').expect("PG URL has a path");
    let query = rest
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{prefix}/{name}{query}")
}

/// The backends to run: SQLite always; PostgreSQL when `FOUNDRY_TEST_PG_URL` is set.
pub fn backends() -> Vec<Backend> {
    let mut b = vec![Backend::Sqlite];
    if std::env::var("FOUNDRY_TEST_PG_URL").is_ok_and(|u| !u.is_empty()) {
        b.push(Backend::Postgres);
    } else {
        eprintln!("notice: FOUNDRY_TEST_PG_URL is unset; skipping the PostgreSQL variant");
    }
    b
}

impl Hub {
    pub async fn start(backend: Backend) -> Hub {
        Hub::start_with(backend, HubConfig::default()).await
    }

    pub async fn start_with(backend: Backend, mut config: HubConfig) -> Hub {
        let mut dir = None;
        config.db_url = match backend {
            Backend::Sqlite => {
                let d = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}?mode=rwc", d.path().join("hub.db").display());
                dir = Some(d);
                url
            }
            Backend::Postgres => {
                let base = std::env::var("FOUNDRY_TEST_PG_URL").unwrap();
                fresh_pg_url(&base).await
            }
        };
        config.max_db_connections = 4;
        let state = foundry_hub::open(config, validator())
            .await
            .expect("open hub");
        let router = foundry_hub::router(state.clone());
        Hub {
            state,
            router,
            backend,
            _dir: dir,
        }
    }

    pub async fn tenant(&self, id: &str, name: &str) {
        self.state
            .store
            .create_tenant(id, name)
            .await
            .expect("create tenant");
    }

    pub async fn user(&self, tenant: &str, name: &str, role: Role) -> String {
        self.state
            .store
            .create_user(tenant, name, role)
            .await
            .expect("create user")
            .1
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Answer {
        self.call_h(method, path, token, body, &[]).await
    }

    pub async fn call_h(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        if !token.is_empty() {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string()))
                .unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(Method::PUT, path, token, Some(body)).await
    }
}

/// A Sigma rule whose detection value and title carry `marker`.
pub fn sigma_rule(marker: &str) -> String {
    format!(
        "title: Suspicious {marker}\nlogsource:\n  product: windows\n  category: process_creation\n\
         detection:\n  selection:\n    CommandLine|contains: '{marker}'\n  condition: selection\n\
         level: high\n"
    )
}

/// A YARA rule carrying `marker` in a string.
pub fn yara_rule(name: &str, marker: &str) -> String {
    format!("rule {name} {{\n  strings:\n    $a = \"{marker}\"\n  condition:\n    $a\n}}\n")
}

/// A tiny deterministic RNG (SplitMix64) so property tests replay from their seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}
