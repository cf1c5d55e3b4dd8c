//! Isolation property test: random operation sequences by several tenants and roles. A rule
//! version that was never published to a tenant (private, RED, AMBER+STRICT, AMBER to someone
//! else, or a later unpublished version) never shows up in any answer to that tenant —
//! bodies, listings, counts or errors. Every rule text and title carries a unique marker
//! (`MKx<n>x`); every answer is scanned for the markers the caller may not have seen.

mod common;

use std::collections::{BTreeSet, HashMap};

use axum::http::{Method, StatusCode};
use common::{backends, sigma_rule, yara_rule, Answer, Backend, Hub, Rng};
use foundry_hub::Role;
use serde_json::json;

const TENANTS: [&str; 4] = ["iso0", "iso1", "iso2", "iso3"];
const TLPS: [&str; 5] = [
    "TLP:CLEAR",
    "TLP:GREEN",
    "TLP:AMBER",
    "TLP:AMBER+STRICT",
    "TLP:RED",
];
const ROLES: [Role; 4] = [Role::Engineer, Role::Reviewer, Role::Admin, Role::Reader];

struct Rule {
    tenant: usize,
    id: String,
    /// Marker of the current version.
    marker: String,
    tlp: &'static str,
    /// Community id once shared.
    community: Option<String>,
}

struct Model {
    tokens: Vec<HashMap<Role, String>>,
    rules: Vec<Rule>,
    /// Marker → owner tenant.
    owner: HashMap<String, usize>,
    /// Marker → tenants that were ever allowed to see it (owner included).
    audience: HashMap<String, BTreeSet<usize>>,
    opted_in: [bool; 4],
    next_marker: usize,
    leaks: Vec<String>,
    ops: usize,
    /// Markers ever published as GREEN: a tenant opting in later may see them.
    green_published: BTreeSet<String>,
}

impl Model {
    fn marker(&mut self, tenant: usize) -> String {
        self.next_marker += 1;
        let m = format!("MKx{}x", self.next_marker);
        self.owner.insert(m.clone(), tenant);
        self.audience.entry(m.clone()).or_default().insert(tenant);
        m
    }

    /// Scans one answer to `viewer` for markers it was never allowed to see.
    fn check(&mut self, viewer: usize, what: &str, a: &Answer) {
        self.ops += 1;
        let re = regex::Regex::new(r"MKx\d+x").unwrap();
        for m in re.find_iter(&a.body) {
            let allowed = self
                .audience
                .get(m.as_str())
                .is_some_and(|aud| aud.contains(&viewer));
            if !allowed {
                self.leaks.push(format!(
                    "{} leaked to {} by {what}: {}",
                    m.as_str(),
                    TENANTS[viewer],
                    &a.body[..a.body.len().min(300)]
                ));
            }
        }
    }

    /// Records a publication: who may see `marker` from now on.
    fn publish(&mut self, owner: usize, marker: &str, tlp: &str, recipients: &[usize]) {
        let aud = self.audience.entry(marker.to_string()).or_default();
        for t in 0..TENANTS.len() {
            let sees = t == owner
                || match tlp {
                    "TLP:CLEAR" => true,
                    "TLP:GREEN" => self.opted_in[t],
                    "TLP:AMBER" => recipients.contains(&t),
                    _ => false,
                };
            if sees {
                aud.insert(t);
            }
        }
    }

    /// When a tenant opts in later, it may see GREEN rules already published.
    fn widen_green(&mut self, tenant: usize) {
        for (m, aud) in self.audience.iter_mut() {
            if self.green_published.contains(m) {
                aud.insert(tenant);
            }
        }
    }
}

fn not_found_rule(id: &str) -> String {
    json!({"code": "not_found",
           "message": format!("no rule '{id}' is visible to you; check the id and your tenant")})
    .to_string()
}

async fn run(backend: Backend, total_ops: usize, seed: u64) -> (usize, Vec<String>) {
    let hub = Hub::start(backend).await;
    let mut model = Model {
        tokens: Vec::new(),
        rules: Vec::new(),
        owner: HashMap::new(),
        audience: HashMap::new(),
        opted_in: [false; 4],
        next_marker: 0,
        leaks: Vec::new(),
        ops: 0,
        green_published: BTreeSet::new(),
    };
    for t in TENANTS {
        hub.tenant(t, &format!("Org {t}")).await;
        let mut tokens = HashMap::new();
        for role in ROLES {
            tokens.insert(role, hub.user(t, &format!("{t}-{role}"), role).await);
        }
        model.tokens.push(tokens);
    }
    let mut rng = Rng(seed);
    while model.ops < total_ops {
        let t = rng.below(TENANTS.len());
        let role = *rng.pick(&ROLES);
        let token = model.tokens[t][&role].clone();
        let all_rules: Vec<(usize, String)> = model
            .rules
            .iter()
            .map(|r| (r.tenant, r.id.clone()))
            .collect();
        let any_rule = if all_rules.is_empty() {
            None
        } else {
            Some(rng.pick(&all_rules).clone())
        };
        let own: Vec<usize> = (0..model.rules.len())
            .filter(|&i| model.rules[i].tenant == t)
            .collect();
        let communities: Vec<String> = model
            .rules
            .iter()
            .filter_map(|r| r.community.clone())
            .collect();
        match rng.below(16) {
            0 | 1 => {
                // Create a rule.
                let marker = model.marker(t);
                let tlp = *rng.pick(&TLPS);
                let yara = rng.chance(30);
                let text = if yara {
                    yara_rule(&format!("r_{marker}"), &marker)
                } else {
                    sigma_rule(&marker)
                };
                let a = hub
                    .post(
                        "/v1/rules",
                        &token,
                        json!({"kind": if yara {"yara"} else {"sigma"},
                    "text": text, "tlp": tlp, "confidence": 50, "description": marker}),
                    )
                    .await;
                model.check(t, "create", &a);
                if a.status == StatusCode::CREATED {
                    let id = a.json()["id"].as_str().unwrap().to_string();
                    model.rules.push(Rule {
                        tenant: t,
                        id,
                        marker,
                        tlp,
                        community: None,
                    });
                }
            }
            2 if !own.is_empty() => {
                // New version with a new marker (maybe a new label).
                let i = *rng.pick(&own);
                let marker = model.marker(t);
                let tlp = if rng.chance(50) {
                    *rng.pick(&TLPS)
                } else {
                    model.rules[i].tlp
                };
                let id = model.rules[i].id.clone();
                let a = hub.post(&format!("/v1/rules/{id}/versions"), &token,
                    json!({"text": sigma_rule(&marker), "tlp": tlp, "title": format!("v {marker}"),
                        "description": marker})).await;
                model.check(t, "version", &a);
                if a.status == StatusCode::CREATED {
                    model.rules[i].marker = marker;
                    model.rules[i].tlp = tlp;
                }
            }
            3 | 4 if !own.is_empty() => {
                // Share, sometimes with recipients.
                let i = *rng.pick(&own);
                let recipients: Vec<usize> = (0..TENANTS.len())
                    .filter(|&r| r != t && rng.chance(40))
                    .collect();
                let names: Vec<&str> = recipients.iter().map(|&r| TENANTS[r]).collect();
                let id = model.rules[i].id.clone();
                let a = hub
                    .post(
                        &format!("/v1/rules/{id}/share"),
                        &token,
                        json!({"recipients": names}),
                    )
                    .await;
                model.check(t, "share", &a);
                if a.status == StatusCode::OK {
                    let tlp = model.rules[i].tlp;
                    assert!(
                        !matches!(tlp, "TLP:RED" | "TLP:AMBER+STRICT"),
                        "{tlp} was shared"
                    );
                    let marker = model.rules[i].marker.clone();
                    model.publish(t, &marker, tlp, &recipients);
                    if tlp == "TLP:GREEN" {
                        model.green_published.insert(marker);
                    }
                    model.rules[i].community = a.json()["community_id"].as_str().map(String::from);
                }
            }
            5 if !own.is_empty() => {
                let id = model.rules[*rng.pick(&own)].id.clone();
                let a = hub
                    .call(
                        Method::DELETE,
                        &format!("/v1/rules/{id}/share"),
                        &token,
                        None,
                    )
                    .await;
                model.check(t, "unshare", &a);
            }
            6 => {
                let opt = rng.chance(70);
                let a = hub
                    .put(
                        &format!("/v1/tenants/{}/settings", TENANTS[t]),
                        &token,
                        json!({"sharing_opt_in": opt}),
                    )
                    .await;
                model.check(t, "settings", &a);
                if a.status == StatusCode::OK {
                    model.opted_in[t] = opt;
                    if opt {
                        model.widen_green(t);
                    }
                }
            }
            7 if !own.is_empty() => {
                let id = model.rules[*rng.pick(&own)].id.clone();
                let to = *rng.pick(&[
                    "proposed",
                    "approved",
                    "deployed",
                    "draft",
                    "deprecated",
                    "revoked",
                ]);
                let a = hub
                    .post(
                        &format!("/v1/rules/{id}/status"),
                        &token,
                        json!({"status": to}),
                    )
                    .await;
                model.check(t, "status", &a);
            }
            8 => {
                let a = hub.get("/v1/rules", &token).await;
                model.check(t, "list", &a);
                let listed = a.json()["rules"].as_array().map_or(0, |r| r.len());
                assert_eq!(a.json()["count"], listed);
                assert_eq!(listed, own.len(), "own listing shows exactly own rules");
            }
            9 => {
                let a = hub.get("/v1/community/rules", &token).await;
                model.check(t, "community list", &a);
                let listed = a.json()["rules"].as_array().map_or(0, |r| r.len());
                assert_eq!(a.json()["count"], listed);
            }
            10 if !communities.is_empty() => {
                let cid = rng.pick(&communities).clone();
                let a = hub.get(&format!("/v1/community/rules/{cid}"), &token).await;
                model.check(t, "community get", &a);
                if a.status == StatusCode::NOT_FOUND {
                    assert_eq!(a.body, not_found_rule(&cid));
                }
                if rng.chance(50) {
                    let a = hub
                        .post(
                            &format!("/v1/community/rules/{cid}/import"),
                            &token,
                            json!({}),
                        )
                        .await;
                    model.check(t, "import", &a);
                    if a.status == StatusCode::NOT_FOUND {
                        assert_eq!(a.body, not_found_rule(&cid));
                    }
                    if a.status == StatusCode::CREATED {
                        let id = a.json()["id"].as_str().unwrap().to_string();
                        let marker = marker_pattern()
                            .find(&a.body)
                            .map(|m| m.as_str().to_string())
                            .unwrap_or_default();
                        let tlp = TLPS
                            .iter()
                            .find(|l| a.json()["tlp"] == **l)
                            .copied()
                            .unwrap();
                        model.rules.push(Rule {
                            tenant: t,
                            id,
                            marker,
                            tlp,
                            community: None,
                        });
                    }
                }
            }
            11 if any_rule.is_some() => {
                // Read any tenant's rule through every per-rule endpoint.
                let (owner, id) = any_rule.clone().unwrap();
                let path = *rng.pick(&[
                    "",
                    "/versions",
                    "/versions/1",
                    "/audit",
                    "/quality",
                    "/pending",
                ]);
                let a = hub.get(&format!("/v1/rules/{id}{path}"), &token).await;
                model.check(t, "rule read", &a);
                if owner != t {
                    assert_eq!(a.status, StatusCode::NOT_FOUND);
                    assert_eq!(a.body, not_found_rule(&id), "foreign rule read {path}");
                }
            }
            12 if any_rule.is_some() => {
                let (owner, id) = any_rule.clone().unwrap();
                let (method, path, body) = match rng.below(4) {
                    0 => (
                        Method::POST,
                        format!("/v1/rules/{id}/verdicts"),
                        Some(json!({"verdict": "false_positive"})),
                    ),
                    1 => (
                        Method::POST,
                        format!("/v1/rules/{id}/share/preview"),
                        Some(json!({})),
                    ),
                    2 => (
                        Method::POST,
                        format!("/v1/rules/{id}/status"),
                        Some(json!({"status": "proposed"})),
                    ),
                    _ => (
                        Method::POST,
                        format!("/v1/rules/{id}/versions"),
                        Some(json!({"text": sigma_rule("probe")})),
                    ),
                };
                let a = hub.call(method, &path, &token, body).await;
                model.check(t, "rule write", &a);
                if owner != t && a.status == StatusCode::NOT_FOUND {
                    assert_eq!(a.body, not_found_rule(&id));
                }
                if owner != t {
                    assert!(
                        matches!(a.status, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN),
                        "foreign write answered {}: {}",
                        a.status,
                        a.body
                    );
                    if a.status == StatusCode::FORBIDDEN {
                        // A role refusal must read the same for own and foreign rules.
                        assert_eq!(a.json()["code"], "forbidden_role");
                    }
                }
            }
            13 => {
                let other = rng.below(TENANTS.len());
                let a = hub
                    .get(
                        &format!("/v1/tenants/{}/deployable", TENANTS[other]),
                        &token,
                    )
                    .await;
                model.check(t, "deployable", &a);
                assert_eq!(a.status == StatusCode::OK, other == t);
            }
            14 => {
                let bogus = format!("r_{:024x}", rng.next());
                let a = hub.get(&format!("/v1/rules/{bogus}"), &token).await;
                model.check(t, "bogus", &a);
                assert_eq!(a.body, not_found_rule(&bogus));
            }
            _ => {
                let a = hub.get("/v1/me", &token).await;
                model.check(t, "me", &a);
            }
        }
    }
    (model.ops, model.leaks)
}

#[tokio::test]
async fn no_private_or_restricted_rule_ever_reaches_another_tenant() {
    for backend in backends() {
        let (ops, leaks) = run(backend, 10_000, 0x150_1a7e).await;
        eprintln!(
            "isolation on {backend:?}: {ops} operations, {} leaks",
            leaks.len()
        );
        assert!(ops >= 10_000);
        assert!(
            leaks.is_empty(),
            "{} leaks, first: {:?}",
            leaks.len(),
            &leaks[..leaks.len().min(5)]
        );
    }
}

/// The shape of the markers this test writes into rule texts.
fn marker_pattern() -> &'static regex::Regex {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| regex::Regex::new(r"MKx\d+x").unwrap())
}
