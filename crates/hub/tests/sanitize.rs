//! Sanitization test set: 240 rules generated from templates, seeded with sensitive values of
//! every class. Every registered tenant value must be removed, at least 99% of each built-in
//! class caught, and every sanitized rule must still compile.

mod common;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use common::{backends, Backend, Hub, Rng};
use foundry_hub::store::rules::RuleMeta;
use foundry_hub::{Role, RuleKind, RuleValidator, SanitizeProfile, Sanitizer, Tlp};
use serde_json::json;

const TENANT_ID: &str = "northwind";
const TENANT_NAME: &str = "Northwind Traders";

fn profile() -> SanitizeProfile {
    SanitizeProfile {
        internal_domains: vec!["nwtraders.local".into(), "corp.northwind-tr.com".into()],
        host_patterns: vec![r"NW-(WS|SRV)\d{4}".into(), r"nwdc\d{2}".into()],
        user_names: vec!["jsmith".into(), "svc_backup".into(), "adm.kowalski".into()],
        address_ranges: vec!["100.64.10.0/24".into(), "fd42:dead:beef::/48".into()],
        ticket_patterns: vec![r"INC-\d{6}".into(), r"SECOPS-\d{3,5}".into()],
    }
}

/// Classes seeded; the first five are registered in the profile, the rest built in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Domain,
    Host,
    User,
    Range,
    Ticket,
    Rfc1918,
    Rfc4193,
    LinkLocal,
    Email,
    ProfilePath,
    Unc,
    TenantId,
}

impl Class {
    fn registered(self) -> bool {
        matches!(
            self,
            Class::Domain | Class::Host | Class::User | Class::Range | Class::Ticket
        )
    }
}

/// One seeded value: `insert` goes into the rule, `secret` must be gone afterwards.
struct Seed {
    class: Class,
    insert: String,
    secret: String,
}

fn seed(class: Class, rng: &mut Rng, n: usize) -> Seed {
    let first = [
        "anna", "bernd", "chloe", "dmitri", "elena", "farid", "greta", "hugo",
    ];
    let s = |insert: String, secret: String| Seed {
        class,
        insert,
        secret,
    };
    match class {
        Class::Domain => {
            let d = *rng.pick(&["nwtraders.local", "corp.northwind-tr.com"]);
            let v = format!("app{n}.{d}");
            s(v.clone(), d.to_string())
        }
        Class::Host => {
            let v = match rng.below(3) {
                0 => format!("NW-WS{:04}", rng.below(10000)),
                1 => format!("NW-SRV{:04}", rng.below(10000)),
                _ => format!("nwdc{:02}", rng.below(100)),
            };
            s(v.clone(), v)
        }
        Class::User => {
            let v = rng
                .pick(&["jsmith", "svc_backup", "adm.kowalski"])
                .to_string();
            s(v.clone(), v)
        }
        Class::Range => {
            let v = if rng.chance(50) {
                format!("100.64.10.{}", rng.below(254) + 1)
            } else {
                format!(
                    "fd42:dead:beef:{:x}::{:x}",
                    rng.below(0xffff),
                    rng.below(0xfff) + 1
                )
            };
            s(v.clone(), v)
        }
        Class::Ticket => {
            let v = if rng.chance(50) {
                format!("INC-{:06}", rng.below(1_000_000))
            } else {
                format!("SECOPS-{}", 100 + rng.below(9900))
            };
            s(v.clone(), v)
        }
        Class::Rfc1918 => {
            let v = match rng.below(3) {
                0 => format!(
                    "10.{}.{}.{}",
                    rng.below(256),
                    rng.below(256),
                    rng.below(254) + 1
                ),
                1 => format!(
                    "172.{}.{}.{}",
                    16 + rng.below(16),
                    rng.below(256),
                    rng.below(254) + 1
                ),
                _ => format!("192.168.{}.{}", rng.below(256), rng.below(254) + 1),
            };
            s(v.clone(), v)
        }
        Class::Rfc4193 => {
            let v = format!(
                "fd{:02x}:{:x}:{:x}::{:x}",
                rng.below(256),
                1 + rng.below(0xfffe),
                1 + rng.below(0xfffe),
                1 + rng.below(0xfff)
            );
            s(v.clone(), v)
        }
        Class::LinkLocal => {
            let v = if rng.chance(50) {
                format!("169.254.{}.{}", rng.below(256), rng.below(254) + 1)
            } else {
                format!(
                    "fe80::{:x}:{:x}",
                    1 + rng.below(0xfffe),
                    1 + rng.below(0xfffe)
                )
            };
            s(v.clone(), v)
        }
        Class::Email => {
            let v = format!("{}.k{n}@partner{}.org", rng.pick(&first), rng.below(1000));
            s(v.clone(), v)
        }
        Class::ProfilePath => {
            let user = format!("{}{}", rng.pick(&first), 100 + n);
            // The caller decides the spelling; `insert` is just the name here.
            s(user.clone(), user)
        }
        Class::Unc => {
            let host = format!(
                "{}{}",
                rng.pick(&["filer", "share", "nas", "print"]),
                100 + n
            );
            s(host.clone(), host)
        }
        Class::TenantId => {
            let v = rng.pick(&[TENANT_ID, TENANT_NAME]).to_string();
            s(v.clone(), v)
        }
    }
}

const ALL: [Class; 12] = [
    Class::Domain,
    Class::Host,
    Class::User,
    Class::Range,
    Class::Ticket,
    Class::Rfc1918,
    Class::Rfc4193,
    Class::LinkLocal,
    Class::Email,
    Class::ProfilePath,
    Class::Unc,
    Class::TenantId,
];

fn sq(s: &str) -> String {
    // YAML single-quoted scalar.
    format!("'{}'", s.replace('\'', "''"))
}

/// A Sigma rule with every seed placed somewhere: detection values, title, description,
/// references, a comment.
fn sigma(seeds: &[Seed], rng: &mut Rng) -> (String, RuleMeta) {
    let mut values = Vec::new();
    let mut cidrs = Vec::new();
    let mut text_bits = Vec::new();
    for s in seeds {
        match s.class {
            Class::ProfilePath => values.push(match rng.below(3) {
                0 => format!(r"C:\Users\{}\AppData\Local\Temp\*", s.insert),
                1 => format!("/home/{}/.ssh/authorized_keys", s.insert),
                _ => format!("/Users/{}/Library/LaunchAgents/*", s.insert),
            }),
            Class::Unc => values.push(format!(r"\\{}\finance$\*", s.insert)),
            Class::Rfc1918 if rng.chance(30) => {
                let base: Vec<&str> = s.insert.split('.').collect();
                cidrs.push(format!("{}.{}.{}.0/24", base[0], base[1], base[2]));
                values.push(s.insert.clone());
            }
            Class::TenantId | Class::Ticket | Class::User if rng.chance(50) => {
                text_bits.push(s.insert.clone())
            }
            _ => values.push(s.insert.clone()),
        }
    }
    let mut y = String::new();
    let title = format!(
        "Lateral movement seen {}",
        text_bits.first().cloned().unwrap_or_default()
    );
    y.push_str(&format!("title: {}\n", sq(&title)));
    y.push_str("id: 5f1b2c3d-0000-4000-8000-000000000001\nstatus: experimental\n");
    let description = format!(
        "Observed during {} by the SOC. Ask {} for context.",
        text_bits
            .get(1)
            .cloned()
            .unwrap_or_else(|| "an incident".into()),
        text_bits
            .get(2)
            .cloned()
            .unwrap_or_else(|| "the team".into())
    );
    y.push_str(&format!("description: {}\n", sq(&description)));
    let references: Vec<String> = values
        .iter()
        .take(1)
        .map(|v| format!("https://wiki.example.org/{v}"))
        .collect();
    y.push_str("references:\n");
    for r in &references {
        y.push_str(&format!("  - {}\n", sq(r)));
    }
    y.push_str("# internal note: first seen by ");
    y.push_str(&text_bits.join(" "));
    y.push_str("\nlogsource:\n  product: windows\n  category: process_creation\ndetection:\n");
    y.push_str("  selection:\n    CommandLine|contains:\n");
    for v in &values {
        y.push_str(&format!("      - {}\n", sq(v)));
    }
    for b in &text_bits {
        y.push_str(&format!("      - {}\n", sq(&format!("--owner {b}"))));
    }
    let mut condition = "selection".to_string();
    if !cidrs.is_empty() {
        y.push_str("  filter_net:\n    DestinationIp|cidr:\n");
        for c in &cidrs {
            y.push_str(&format!("      - {}\n", sq(c)));
        }
        condition.push_str(" and not filter_net");
    }
    y.push_str(&format!("  condition: {condition}\nlevel: high\n"));
    let meta = RuleMeta {
        title,
        description,
        tlp: Tlp::Green,
        confidence: 60,
        valid_until: None,
        author: format!(
            "{} (SOC)",
            text_bits.first().cloned().unwrap_or_else(|| "soc".into())
        ),
        source: "internal hunt".into(),
        references,
        attack_tags: vec!["attack.t1021.002".into()],
    };
    (y, meta)
}

fn yara_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A YARA rule: seeds in text strings (escaped), a regex (escaped dots), meta and a comment.
fn yara(seeds: &[Seed], n: usize, rng: &mut Rng) -> (String, RuleMeta) {
    let mut strings = Vec::new();
    let mut comment = Vec::new();
    let mut meta_desc = Vec::new();
    for (i, s) in seeds.iter().enumerate() {
        let raw = match s.class {
            Class::ProfilePath => format!(r"C:\Users\{}\AppData\Roaming\loader.dll", s.insert),
            Class::Unc => format!(r"\\{}\IPC$", s.insert),
            _ => s.insert.clone(),
        };
        match (s.class, rng.below(4)) {
            (Class::Rfc1918 | Class::Range, 0) if s.insert.contains('.') => strings.push(format!(
                "$r{i} = /connect {}/",
                s.insert.replace('.', "\\.")
            )),
            (_, 1) => meta_desc.push(raw),
            (_, 2) => comment.push(raw),
            _ => strings.push(format!("$s{i} = \"{}\" ascii wide", yara_escape(&raw))),
        }
    }
    if strings.is_empty() {
        strings.push("$fallback = \"MZ\"".into());
    }
    let description = format!("Loader used in {}", meta_desc.join(", "));
    let mut y = format!(
        "// hunt notes: {}\nrule hunt_{n} {{\n  meta:\n    description = \"{}\"\n  strings:\n",
        comment.join(" "),
        yara_escape(&description)
    );
    for s in &strings {
        y.push_str(&format!("    {s}\n"));
    }
    y.push_str("  condition:\n    any of them\n}\n");
    let meta = RuleMeta {
        title: format!("hunt_{n}"),
        description,
        tlp: Tlp::Green,
        confidence: 50,
        valid_until: None,
        author: "detection team".into(),
        source: comment.join(" "),
        references: vec![],
        attack_tags: vec![],
    };
    (y, meta)
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.to_ascii_lowercase()
        .contains(&needle.to_ascii_lowercase())
}

#[test]
fn generated_rules_lose_every_sensitive_value_and_still_compile() {
    let sanitizer = Sanitizer::new(&profile(), &[TENANT_ID.into(), TENANT_NAME.into()]).unwrap();
    let validator = common::validator();
    let mut rng = Rng(0x5eed_2026);
    let mut seeded: BTreeMap<Class, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut compile_failures = Vec::new();
    let total_rules = 240;
    for n in 0..total_rules {
        let count = 6 + rng.below(6);
        let seeds: Vec<Seed> = (0..count)
            .map(|i| {
                // Cycle through every class so each gets a fair share, then shuffle the rest.
                let class = if i < 2 {
                    ALL[(n * 2 + i) % ALL.len()]
                } else {
                    *rng.pick(&ALL)
                };
                seed(class, &mut rng, n * 100 + i)
            })
            .collect();
        let kind = if n % 2 == 0 {
            RuleKind::Sigma
        } else {
            RuleKind::Yara
        };
        let (text, meta) = match kind {
            RuleKind::Sigma => sigma(&seeds, &mut rng),
            RuleKind::Yara => yara(&seeds, n, &mut rng),
        };
        validator
            .validate(kind, &text)
            .unwrap_or_else(|e| panic!("template {n} invalid: {e}\n{text}"));
        let out = sanitizer.rule(kind, &text, &meta).unwrap();
        if let Err(e) = validator.validate(kind, &out.text) {
            compile_failures.push(format!("rule {n}: {e}\n{}", out.text));
        }
        let everything = format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            out.text,
            out.meta.title,
            out.meta.description,
            out.meta.author,
            out.meta.source,
            out.meta.references.join("\n")
        );
        for s in &seeds {
            let entry = seeded.entry(s.class).or_default();
            entry.0 += 1;
            let escaped = s.secret.replace('.', "\\.");
            if contains_ci(&everything, &s.secret) || contains_ci(&everything, &escaped) {
                failures.push(format!("{:?} '{}' survived in rule {n}", s.class, s.secret));
            } else {
                entry.1 += 1;
            }
        }
    }
    assert!(
        compile_failures.is_empty(),
        "{} sanitized rules do not compile:\n{}",
        compile_failures.len(),
        compile_failures.join("\n")
    );
    let mut report = String::new();
    for (class, (seeded_n, caught)) in &seeded {
        report.push_str(&format!("{class:?}: {caught}/{seeded_n}\n"));
    }
    eprintln!("sanitization catch rates over {total_rules} rules:\n{report}");
    for class in ALL {
        let (n, caught) = seeded[&class];
        assert!(n >= 50, "{class:?} seeded only {n} times");
        if class.registered() {
            assert_eq!(
                caught,
                n,
                "registered {class:?} must always be removed:\n{}",
                failures.join("\n")
            );
        } else {
            assert!(
                caught * 100 >= n * 99,
                "{class:?} caught {caught}/{n}:\n{}",
                failures.join("\n")
            );
        }
    }
}

/// Hand-written cases whose expected output is derived by reading the placeholder rules.
#[test]
fn placeholders_are_what_the_documentation_says() {
    let sanitizer = Sanitizer::new(&profile(), &[TENANT_ID.into()]).unwrap();
    let cases = [
        (
            r"C:\Users\anna7\AppData\x.exe",
            r"C:\Users\REDACTED_USER\AppData\x.exe",
        ),
        (r"\\filer9\c$\tools", r"\\REDACTED_HOST\c$\tools"),
        (
            "ping 10.1.2.3 and 10.1.2.3 then 192.168.0.9",
            "ping 192.0.2.1 and 192.0.2.1 then 192.0.2.2",
        ),
        ("net 172.20.5.0/24", "net 192.0.2.0/24"),
        ("keep 10.0.0.0/8 and 8.8.8.8", "keep 10.0.0.0/8 and 8.8.8.8"),
        (
            "mail bob@corp.northwind-tr.com",
            "mail redacted@example.com",
        ),
        ("host srv1.nwtraders.local up", "host internal.example up"),
        (
            "see INC-004711 with jsmith",
            "see REDACTED_TICKET with REDACTED_USER",
        ),
        (
            "NW-WS0042 talked to fd12:3456:789a::1",
            // The host pattern is case-insensitive: the host goes too.
            "REDACTED_HOST talked to 2001:db8::1",
        ),
        ("by northwind staff", "by REDACTED_TENANT staff"),
        ("jsmithers is someone else", "jsmithers is someone else"),
    ];
    for (input, expected) in cases {
        let mut report = Default::default();
        let out = sanitizer.text(input, &mut report);
        assert_eq!(out, expected, "input: {input}");
    }
    assert_eq!(
        sanitizer.text("NW-WS0042", &mut Default::default()),
        "REDACTED_HOST"
    );
}

#[test]
fn sigma_values_stay_valid_yaml_with_cidr_and_wildcards() {
    let sanitizer = Sanitizer::new(&profile(), &[TENANT_ID.into()]).unwrap();
    let text =
        "title: 'northwind beacon'\nlogsource:\n  product: windows\ndetection:\n  sel:\n    \
        DestinationIp|cidr: '10.77.3.0/24'\n    Image|endswith: 'C:\\Users\\svc_backup\\*'\n  \
        condition: sel\n";
    let meta = RuleMeta {
        title: "t".into(),
        description: String::new(),
        tlp: Tlp::Green,
        confidence: 1,
        valid_until: None,
        author: String::new(),
        source: String::new(),
        references: vec![],
        attack_tags: vec![],
    };
    let out = sanitizer.rule(RuleKind::Sigma, text, &meta).unwrap();
    use saphyr::{LoadableYamlNode, Yaml};
    let doc = &Yaml::load_from_str(&out.text).unwrap()[0];
    let sel = doc
        .as_mapping_get("detection")
        .unwrap()
        .as_mapping_get("sel")
        .unwrap();
    assert_eq!(
        sel.as_mapping_get("DestinationIp|cidr").unwrap().as_str(),
        Some("192.0.2.0/24")
    );
    assert_eq!(
        sel.as_mapping_get("Image|endswith").unwrap().as_str(),
        Some(r"C:\Users\REDACTED_USER\*")
    );
    assert_eq!(
        doc.as_mapping_get("title").unwrap().as_str(),
        Some("REDACTED_TENANT beacon")
    );
}

#[tokio::test]
async fn share_preview_shows_the_diff_and_refuses_what_no_longer_compiles() {
    for backend in backends() {
        let hub = Hub::start(backend).await;
        hub.tenant(TENANT_ID, TENANT_NAME).await;
        let admin = hub.user(TENANT_ID, "admin", Role::Admin).await;
        let eng = hub.user(TENANT_ID, "eng", Role::Engineer).await;
        let r = hub
            .put(
                "/v1/tenants/northwind/profile",
                &admin,
                serde_json::to_value(profile()).unwrap(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        hub.put(
            "/v1/tenants/northwind/settings",
            &admin,
            json!({"sharing_opt_in": true}),
        )
        .await;
        let text = "title: beacon\nlogsource:\n  product: windows\ndetection:\n  sel:\n    \
        CommandLine|contains: 'jsmith'\n  condition: sel\n";
        let r = hub
            .post(
                "/v1/rules",
                &eng,
                json!({"kind": "sigma", "text": text, "tlp": "GREEN",
        "confidence": 40}),
            )
            .await;
        let id = r.json()["id"].as_str().unwrap().to_string();
        let p = hub
            .post(&format!("/v1/rules/{id}/share/preview"), &eng, json!({}))
            .await
            .json();
        assert_eq!(p["compiles"], true);
        assert_eq!(p["replacements"]["user_name"], 1);
        assert!(p["diff"]
            .as_str()
            .unwrap()
            .contains("-    CommandLine|contains: 'jsmith'"));
        assert!(p["sanitized"]["text"]
            .as_str()
            .unwrap()
            .contains("REDACTED_USER"));

        // A selection named after a registered user is renamed together with the condition
        // that names it, so the rule still compiles and may be shared.
        let renamed =
            "title: x\nlogsource:\n  product: windows\ndetection:\n  jsmith: {User: a}\n  \
        condition: jsmith\n";
        let r = hub
            .post(
                "/v1/rules",
                &eng,
                json!({"kind": "sigma", "text": renamed, "tlp": "GREEN",
        "confidence": 40}),
            )
            .await;
        let ok_id = r.json()["id"].as_str().unwrap().to_string();
        let r = hub
            .post(&format!("/v1/rules/{ok_id}/share"), &eng, json!({}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
}

/// A compiler that rejects one placeholder, to drive the refusal path deterministically.
struct RejectsPlaceholder;

impl RuleValidator for RejectsPlaceholder {
    fn validate(&self, kind: RuleKind, text: &str) -> Result<(), String> {
        if text.contains("REDACTED_USER") {
            return Err("line 6: unknown field 'REDACTED_USER'".into());
        }
        common::validator().validate(kind, text)
    }
}

#[tokio::test]
async fn sharing_is_refused_with_the_reason_when_the_sanitized_rule_does_not_compile() {
    let dir = tempfile::tempdir().unwrap();
    let config = foundry_hub::HubConfig {
        db_url: format!("sqlite://{}?mode=rwc", dir.path().join("h.db").display()),
        ..Default::default()
    };
    let state = foundry_hub::open(config, std::sync::Arc::new(RejectsPlaceholder))
        .await
        .unwrap();
    let hub = Hub {
        router: foundry_hub::router(state.clone()),
        state,
        backend: Backend::Sqlite,
        _dir: None,
    };
    hub.tenant(TENANT_ID, TENANT_NAME).await;
    let admin = hub.user(TENANT_ID, "admin", Role::Admin).await;
    let eng = hub.user(TENANT_ID, "eng", Role::Engineer).await;
    hub.put(
        "/v1/tenants/northwind/profile",
        &admin,
        serde_json::to_value(profile()).unwrap(),
    )
    .await;
    hub.put(
        "/v1/tenants/northwind/settings",
        &admin,
        json!({"sharing_opt_in": true}),
    )
    .await;
    let text = "title: t\nlogsource:\n  product: windows\ndetection:\n  sel:\n    \
        User: 'svc_backup'\n  condition: sel\n";
    let r = hub
        .post(
            "/v1/rules",
            &eng,
            json!({"kind": "sigma", "text": text, "tlp": "CLEAR",
        "confidence": 40}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let p = hub
        .post(&format!("/v1/rules/{id}/share/preview"), &eng, json!({}))
        .await
        .json();
    assert_eq!(p["compiles"], false);
    assert_eq!(p["compile_error"], "line 6: unknown field 'REDACTED_USER'");
    let r = hub
        .post(&format!("/v1/rules/{id}/share"), &eng, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["code"], "sanitized_rule_invalid");
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("unknown field 'REDACTED_USER'"));
    assert_eq!(
        hub.get("/v1/community/rules", &eng).await.json()["count"],
        0
    );
}
