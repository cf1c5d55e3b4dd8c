//! The worker's side of the hub: fetching the tenant's deployable rule set.
//!
//! The hub serves one versioned bundle per tenant (`GET /v1/tenants/{tenant}/deployable`)
//! with an `ETag`. [`HubClient::poll`] sends the last ETag back in `If-None-Match` and asks the
//! hub to hold the request (`?wait=N`) until the set changes, so a newly approved rule reaches
//! the worker as soon as the hub has it, while an idle worker costs one request per wait.
//! Only the bundle's rules are turned into [`RuleSource`]s here; compiling them is the
//! reloader's job, and a bundle whose rules fail to compile never replaces a running set.

use std::time::Duration;

use foundry_engine::{Provenance, RuleSource, SourceKind, SourceMeta};
use serde::Deserialize;

use crate::config::HubConfig;
use crate::WorkerError;

/// The largest bundle body accepted, in bytes.
const MAX_BUNDLE_BYTES: u64 = 256 << 20;

/// Provenance of an imported rule, as the hub states it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct BundleSource {
    /// The sharing tenant's name or pseudonym.
    pub attribution: String,
    /// The community rule's id.
    pub rule_id: String,
    /// The community version the copy was taken from.
    pub version: i64,
}

/// One rule of a tenant's deployable set.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct BundleRule {
    /// The rule's id on the hub.
    pub hub_rule_id: String,
    /// Its version number.
    pub version: i64,
    /// Content hash of that version.
    pub version_hash: String,
    /// `sigma` or `yara`.
    pub kind: String,
    /// The rule text.
    pub text: String,
    /// TLP label.
    pub tlp: String,
    /// Confidence 0–100.
    pub confidence: i64,
    /// Expiry (RFC 3339), if any.
    pub valid_until: Option<String>,
    /// Author.
    pub author: String,
    /// `local` or `community`.
    pub origin: String,
    /// Where an imported rule came from.
    pub source: Option<BundleSource>,
    /// The reviewer who approved this version.
    pub reviewed_by: String,
    /// When.
    pub reviewed_at: String,
}

/// A tenant's deployable set as served by the hub.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Bundle {
    /// The tenant.
    pub tenant: String,
    /// The hub's version of the set (also its ETag).
    pub version: String,
    /// The rules.
    pub rules: Vec<BundleRule>,
}

impl Bundle {
    /// The bundle's rules as sources for a rule-set build, with the hub's trust metadata
    /// (TLP, confidence, provenance, version, expiry) overriding whatever the texts say.
    pub fn sources(&self) -> Result<Vec<RuleSource>, WorkerError> {
        self.rules
            .iter()
            .map(|r| {
                let kind = match r.kind.as_str() {
                    "sigma" => SourceKind::Sigma,
                    "yara" => SourceKind::Yara,
                    other => {
                        return Err(WorkerError::Rules(format!(
                            "hub rule {}: unknown kind '{other}' (expected sigma or yara)",
                            r.hub_rule_id
                        )))
                    }
                };
                let author = match &r.source {
                    Some(s) => Some(format!("{} (via {})", r.author, s.attribution)),
                    None => Some(r.author.clone()),
                };
                Ok(RuleSource {
                    path: format!("hub:{}@{}", r.hub_rule_id, r.version),
                    text: r.text.clone(),
                    kind,
                    meta: SourceMeta {
                        confidence: Some(r.confidence.clamp(0, 100) as u8),
                        tlp: Some(r.tlp.clone()),
                        provenance: Some(Provenance {
                            origin: r.origin.clone(),
                            author,
                            hub_rule_id: Some(r.hub_rule_id.clone()),
                            reviewed_by: Some(r.reviewed_by.clone()),
                            reviewed_at: Some(r.reviewed_at.clone()),
                            path: None,
                        }),
                        version: Some(format!("{}.{}", r.version, short(&r.version_hash))),
                        valid_until: r.valid_until.clone(),
                    },
                })
            })
            .collect()
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// What one poll found.
#[derive(Debug)]
pub enum Poll {
    /// A bundle other than the one named by the ETag sent.
    Changed(Box<Bundle>, Option<String>),
    /// Nothing changed within the wait.
    NotModified,
}

/// A blocking client of one tenant's deployable set.
pub struct HubClient {
    agent: ureq::Agent,
    url: String,
    token: Option<String>,
    wait: Duration,
}

impl HubClient {
    /// A client for the configured hub and tenant. The token comes from `FOUNDRY_HUB_TOKEN`
    /// or the configured file.
    pub fn new(config: &HubConfig) -> Result<HubClient, WorkerError> {
        let token = match std::env::var("FOUNDRY_HUB_TOKEN") {
            Ok(t) if !t.trim().is_empty() => Some(t.trim().to_string()),
            _ => match &config.token_file {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .map_err(|e| WorkerError::Io(format!("{}: {e}", path.display())))?
                        .trim()
                        .to_string(),
                ),
                None => None,
            },
        };
        let wait = Duration::from_secs(config.poll_wait_secs);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            // The hub holds a long poll for up to `wait`; allow for it and for a large body.
            .timeout_global(Some(wait + Duration::from_secs(60)))
            .build()
            .into();
        Ok(HubClient {
            agent,
            url: format!(
                "{}/v1/tenants/{}/deployable",
                config.url.trim_end_matches('/'),
                config.tenant
            ),
            token,
            wait,
        })
    }

    /// Fetches the set now, without waiting for a change.
    pub fn fetch(&self) -> Result<(Bundle, Option<String>), WorkerError> {
        match self.request(None, Duration::ZERO)? {
            Poll::Changed(bundle, etag) => Ok((*bundle, etag)),
            Poll::NotModified => Err(WorkerError::Rules(
                "hub answered 304 to a request without an ETag".into(),
            )),
        }
    }

    /// Waits up to the configured interval for a set other than `etag`.
    pub fn poll(&self, etag: Option<&str>) -> Result<Poll, WorkerError> {
        self.request(etag, self.wait)
    }

    fn request(&self, etag: Option<&str>, wait: Duration) -> Result<Poll, WorkerError> {
        let url = if wait.is_zero() {
            self.url.clone()
        } else {
            format!("{}?wait={}", self.url, wait.as_secs())
        };
        let mut request = self.agent.get(&url);
        if let Some(token) = &self.token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        if let Some(etag) = etag {
            request = request.header("If-None-Match", etag);
        }
        let hub = |e: &dyn std::fmt::Display| WorkerError::Rules(format!("hub {url}: {e}"));
        let mut response = request.call().map_err(|e| hub(&e))?;
        let status = response.status().as_u16();
        if status == 304 {
            return Ok(Poll::NotModified);
        }
        let new_etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BUNDLE_BYTES)
            .read_to_string()
            .map_err(|e| hub(&e))?;
        if status != 200 {
            // The hub's errors are `{"code", "message"}`; show them as they are.
            return Err(hub(&format!("HTTP {status}: {}", body.trim())));
        }
        let bundle: Bundle =
            serde_json::from_str(&body).map_err(|e| hub(&format!("invalid bundle: {e}")))?;
        Ok(Poll::Changed(Box::new(bundle), new_etag))
    }
}
