//! Review, deployment, TLP and sharing behaviour through the HTTP API, on every backend.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{backends, sigma_rule, yara_rule, Backend, Hub};
use foundry_hub::{HubConfig, Role};
use serde_json::{json, Value};

struct Tenant {
    id: String,
    eng: String,
    rev: String,
    admin: String,
}

async fn tenant(hub: &Hub, id: &str, opt_in: bool) -> Tenant {
    hub.tenant(id, &format!("{id} Org")).await;
    let t = Tenant {
        id: id.to_string(),
        eng: hub.user(id, &format!("{id}-eng"), Role::Engineer).await,
        rev: hub.user(id, &format!("{id}-rev"), Role::Reviewer).await,
        admin: hub.user(id, &format!("{id}-admin"), Role::Admin).await,
    };
    if opt_in {
        let r = hub
            .put(
                &format!("/v1/tenants/{id}/settings"),
                &t.admin,
                json!({"sharing_opt_in": true}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    t
}

async fn create(hub: &Hub, t: &Tenant, marker: &str, tlp: &str, extra: Value) -> String {
    let mut body = json!({"kind": "sigma", "text": sigma_rule(marker), "tlp": tlp,
                          "confidence": 70, "author": "someone"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let r = hub.post("/v1/rules", &t.eng, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.json()["id"].as_str().unwrap().to_string()
}

async fn status(hub: &Hub, token: &str, id: &str, to: &str) -> common::Answer {
    hub.post(
        &format!("/v1/rules/{id}/status"),
        token,
        json!({"status": to}),
    )
    .await
}

async fn approve(hub: &Hub, t: &Tenant, id: &str) {
    let r = status(hub, &t.eng, id, "proposed").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = status(hub, &t.rev, id, "approved").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

async fn deployable(hub: &Hub, t: &Tenant) -> Value {
    let r = hub
        .get(&format!("/v1/tenants/{}/deployable", t.id), &t.eng)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()
}

fn ids(bundle: &Value) -> Vec<String> {
    bundle["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["hub_rule_id"].as_str().unwrap().to_string())
        .collect()
}

async fn share(hub: &Hub, t: &Tenant, id: &str, recipients: &[&str]) -> common::Answer {
    hub.post(
        &format!("/v1/rules/{id}/share"),
        &t.eng,
        json!({"recipients": recipients}),
    )
    .await
}

async fn for_each_backend<F, Fut>(f: F)
where
    F: Fn(Backend) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for b in backends() {
        f(b).await;
    }
}

#[tokio::test]
async fn imported_rule_is_not_deployed_before_a_reviewer_approves_it() {
    for_each_backend(|backend| async move {
        let hub = Hub::start(backend).await;
        let a = tenant(&hub, "alpha", true).await;
        let b = tenant(&hub, "beta", true).await;
        let rid = create(&hub, &a, "MKshared1", "TLP:GREEN", json!({})).await;
        let r = share(&hub, &a, &rid, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let cid = r.json()["community_id"].as_str().unwrap().to_string();

        let r = hub
            .post(
                &format!("/v1/community/rules/{cid}/import"),
                &b.eng,
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let copy = r.json();
        assert_eq!(copy["status"], "proposed");
        assert_eq!(copy["origin"], "community");
        let copy_id = copy["id"].as_str().unwrap().to_string();
        assert!(
            ids(&deployable(&hub, &b).await).is_empty(),
            "proposed import must not deploy"
        );

        // The engineer may not approve; the reviewer may.
        let r = status(&hub, &b.eng, &copy_id, "approved").await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(r.json()["code"], "forbidden_role");
        assert!(ids(&deployable(&hub, &b).await).is_empty());
        let r = status(&hub, &b.rev, &copy_id, "approved").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);

        let bundle = deployable(&hub, &b).await;
        assert_eq!(ids(&bundle), vec![copy_id.clone()]);
        let rule = &bundle["rules"][0];
        assert_eq!(rule["origin"], "community");
        assert_eq!(rule["reviewed_by"], "beta-rev");
        assert_eq!(rule["tlp"], "TLP:GREEN");
        assert_eq!(rule["source"]["rule_id"], cid.as_str());
        assert_eq!(rule["source"]["version"], 1);
        let alpha = hub.state.store.tenant("alpha").await.unwrap().unwrap();
        assert_eq!(rule["source"]["attribution"], alpha.pseudonym.as_str());
        assert!(!rule["text"].as_str().unwrap().contains("alpha"));

        // Every deployed rule has an approval record for the version served.
        for r in bundle["rules"].as_array().unwrap() {
            let row = foundry_hub::store::rules::approval(
                hub.state.store.pool(),
                r["hub_rule_id"].as_str().unwrap(),
                r["version"].as_i64().unwrap(),
            )
            .await
            .unwrap();
            assert!(row.is_some(), "deployed without approval: {r}");
        }
        // The owner's own rule is still a draft: nothing deployed there.
        assert!(ids(&deployable(&hub, &a).await).is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_new_version_leaves_the_deployable_set_until_approved_again() {
    for_each_backend(|backend| async move {
        let hub = Hub::start(backend).await;
        let a = tenant(&hub, "alpha", false).await;
        let rid = create(&hub, &a, "MKv1", "TLP:RED", json!({})).await;
        approve(&hub, &a, &rid).await;
        assert_eq!(ids(&deployable(&hub, &a).await), vec![rid.clone()]);
        let r = hub
            .post(
                &format!("/v1/rules/{rid}/versions"),
                &a.eng,
                json!({"text": sigma_rule("MKv2")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.json()["status"], "draft");
        assert_eq!(r.json()["version"], 2);
        assert!(ids(&deployable(&hub, &a).await).is_empty());
        approve(&hub, &a, &rid).await;
        let bundle = deployable(&hub, &a).await;
        assert_eq!(bundle["rules"][0]["version"], 2);
        assert!(bundle["rules"][0]["text"]
            .as_str()
            .unwrap()
            .contains("MKv2"));
    })
    .await;
}

#[tokio::test]
async fn a_rule_past_valid_until_leaves_the_deployable_set() {
    for_each_backend(|backend| async move {
        let hub = Hub::start(backend).await;
        let a = tenant(&hub, "alpha", false).await;
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
        let past = (chrono::Utc::now() - chrono::Duration::seconds(60)).to_rfc3339();
        let short = create(
            &hub,
            &a,
            "MKshort",
            "TLP:AMBER",
            json!({"valid_until": soon}),
        )
        .await;
        let lasting = create(&hub, &a, "MKlasting", "TLP:AMBER", json!({})).await;
        let expired = create(
            &hub,
            &a,
            "MKexpired",
            "TLP:AMBER",
            json!({"valid_until": past}),
        )
        .await;
        for id in [&short, &lasting, &expired] {
            approve(&hub, &a, id).await;
        }
        let before = deployable(&hub, &a).await;
        let mut expected = vec![short.clone(), lasting.clone()];
        expected.sort();
        assert_eq!(ids(&before), expected);
        tokio::time::sleep(Duration::from_millis(2300)).await;
        let after = deployable(&hub, &a).await;
        assert_eq!(ids(&after), vec![lasting.clone()]);
        assert_ne!(
            before["version"], after["version"],
            "expiry must change the bundle version"
        );
    })
    .await;
}

#[tokio::test]
async fn etag_conditional_get_and_long_poll() {
    for_each_backend(|backend| async move {
        let hub = Hub::start(backend).await;
        let a = tenant(&hub, "alpha", false).await;
        let path = "/v1/tenants/alpha/deployable";
        let first = hub.get(path, &a.eng).await;
        let etag = first.headers["etag"].to_str().unwrap().to_string();
        assert_eq!(
            etag,
            format!("\"{}\"", first.json()["version"].as_str().unwrap())
        );
        let r = hub
            .call_h(Method::GET, path, &a.eng, None, &[("if-none-match", &etag)])
            .await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED);

        let rid = create(&hub, &a, "MKpoll", "TLP:GREEN", json!({})).await;
        let r = status(&hub, &a.eng, &rid, "proposed").await;
        assert_eq!(r.status, StatusCode::OK);
        let waiter = {
            let router = hub.router.clone();
            let token = a.eng.clone();
            let etag = etag.clone();
            tokio::spawn(async move {
                use tower::ServiceExt;
                let started = std::time::Instant::now();
                let req = axum::http::Request::get(format!("{path}?wait=10"))
                    .header("authorization", format!("Bearer {token}"))
                    .header("if-none-match", etag)
                    .body(axum::body::Body::empty())
                    .unwrap();
                let resp = router.oneshot(req).await.unwrap();
                (resp.status(), started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = status(&hub, &a.rev, &rid, "approved").await;
        assert_eq!(r.status, StatusCode::OK);
        let (code, elapsed) = waiter.await.unwrap();
        assert_eq!(code, StatusCode::OK);
        assert!(
            elapsed < Duration::from_secs(5),
            "long poll answered after {elapsed:?}"
        );

        // Unchanged set with a short wait: 304 after about the wait.
        let now = hub.get(path, &a.eng).await;
        let etag = now.headers["etag"].to_str().unwrap().to_string();
        let r = hub
            .call_h(
                Method::GET,
                &format!("{path}?wait=1"),
                &a.eng,
                None,
                &[("if-none-match", &etag)],
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED);
        // Another tenant's set is not found, exactly like a tenant that does not exist.
        let b = tenant(&hub, "beta", false).await;
        let r = hub.get(path, &b.eng).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(
            r.body,
            json!({"code": "not_found",
            "message": "no tenant 'alpha' is visible to you; use your own tenant id"})
            .to_string()
        );
    })
    .await;
}

#[tokio::test]
async fn tlp_decides_who_sees_a_shared_rule() {
    for_each_backend(|backend| async move {
        let hub = Hub::start(backend).await;
        let a = tenant(&hub, "alpha", true).await;
        let b = tenant(&hub, "beta", true).await;
        let c = tenant(&hub, "gamma", false).await;
        let d = tenant(&hub, "delta", true).await;

        for tlp in ["TLP:RED", "TLP:AMBER+STRICT"] {
            let id = create(&hub, &a, "MKnever", tlp, json!({})).await;
            let r = share(&hub, &a, &id, &[]).await;
            assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
            assert_eq!(r.json()["code"], "tlp_forbids_sharing");
        }
        let amber = create(&hub, &a, "MKamber", "TLP:AMBER", json!({})).await;
        let r = share(&hub, &a, &amber, &[]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = share(&hub, &a, &amber, &["beta"]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let amber_cid = r.json()["community_id"].as_str().unwrap().to_string();
        let green = create(&hub, &a, "MKgreen", "TLP:GREEN", json!({})).await;
        let green_cid = share(&hub, &a, &green, &[]).await.json()["community_id"]
            .as_str()
            .unwrap()
            .to_string();
        let clear = create(&hub, &a, "MKclear", "TLP:CLEAR", json!({})).await;
        let clear_cid = share(&hub, &a, &clear, &[]).await.json()["community_id"]
            .as_str()
            .unwrap()
            .to_string();

        let titles = |v: Value| -> Vec<String> {
            let mut t: Vec<String> = v["rules"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["title"].as_str().unwrap().to_string())
                .collect();
            t.sort();
            t
        };
        assert_eq!(
            titles(hub.get("/v1/community/rules", &b.eng).await.json()),
            vec![
                "Suspicious MKamber",
                "Suspicious MKclear",
                "Suspicious MKgreen"
            ]
        );
        assert_eq!(
            titles(hub.get("/v1/community/rules", &c.eng).await.json()),
            vec!["Suspicious MKclear"]
        );
        assert_eq!(
            titles(hub.get("/v1/community/rules", &d.eng).await.json()),
            vec!["Suspicious MKclear", "Suspicious MKgreen"]
        );

        // Invisible and nonexistent answer the same way.
        let hidden = hub
            .get(&format!("/v1/community/rules/{amber_cid}"), &d.eng)
            .await;
        let missing = hub.get("/v1/community/rules/c_doesnotexist", &d.eng).await;
        assert_eq!(hidden.status, StatusCode::NOT_FOUND);
        assert_eq!(hidden.status, missing.status);
        assert_eq!(
            hidden.body.replace(&amber_cid, "X"),
            missing.body.replace("c_doesnotexist", "X")
        );
        let r = hub
            .get(&format!("/v1/community/rules/{green_cid}"), &c.eng)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = hub
            .get(&format!("/v1/community/rules/{clear_cid}"), &c.eng)
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.json().get("owner_tenant_id").is_none());
        assert!(
            !r.body.contains("alpha"),
            "owner identity leaked: {}",
            r.body
        );

        // AMBER recipients may import but not share on, nor weaken the label.
        let r = hub
            .post(
                &format!("/v1/community/rules/{amber_cid}/import"),
                &b.eng,
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let copy = r.json()["id"].as_str().unwrap().to_string();
        let r = share(&hub, &b, &copy, &["delta"]).await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert_eq!(r.json()["code"], "tlp_forbids_sharing");
        let r = hub
            .post(
                &format!("/v1/rules/{copy}/versions"),
                &b.eng,
                json!({"tlp": "TLP:GREEN"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.json()["code"], "tlp_weaker_than_source");
        let r = hub
            .post(
                &format!("/v1/rules/{copy}/versions"),
                &b.eng,
                json!({"tlp": "TLP:RED"}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "a stricter label is fine: {}",
            r.body
        );
        let _ = c;
    })
    .await;
}

#[tokio::test]
async fn opting_out_revokes_shared_rules_for_everyone() {
    for_each_backend(|backend| async move {
        let hub = Hub::start(backend).await;
        let a = tenant(&hub, "alpha", false).await;
        let b = tenant(&hub, "beta", true).await;
        let rid = create(&hub, &a, "MKoptout", "TLP:CLEAR", json!({})).await;
        let r = share(&hub, &a, &rid, &[]).await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert_eq!(r.json()["code"], "sharing_disabled");
        hub.put(
            "/v1/tenants/alpha/settings",
            &a.admin,
            json!({"sharing_opt_in": true}),
        )
        .await;
        let cid = share(&hub, &a, &rid, &[]).await.json()["community_id"]
            .as_str()
            .unwrap()
            .to_string();
        let copy = hub
            .post(
                &format!("/v1/community/rules/{cid}/import"),
                &b.eng,
                json!({}),
            )
            .await
            .json()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let r = status(&hub, &b.rev, &copy, "approved").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(ids(&deployable(&hub, &b).await), vec![copy.clone()]);

        let r = hub
            .put(
                "/v1/tenants/alpha/settings",
                &a.admin,
                json!({"sharing_opt_in": false}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            hub.get("/v1/community/rules", &b.eng).await.json()["count"],
            0
        );
        assert_eq!(
            hub.get(&format!("/v1/community/rules/{cid}"), &b.eng)
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            hub.get(&format!("/v1/rules/{copy}"), &b.eng).await.json()["status"],
            "revoked"
        );
        assert!(ids(&deployable(&hub, &b).await).is_empty());
    })
    .await;
}

#[tokio::test]
async fn upstream_update_arrives_as_a_pending_change_and_keeps_local_tuning() {
    for_each_backend(|backend| async move {
        let hub = Hub::start(backend).await;
        let a = tenant(&hub, "alpha", true).await;
        let b = tenant(&hub, "beta", true).await;
        let rid = create(&hub, &a, "MKup1", "TLP:GREEN", json!({})).await;
        let cid = share(&hub, &a, &rid, &[]).await.json()["community_id"]
            .as_str()
            .unwrap()
            .to_string();
        let copy = hub
            .post(
                &format!("/v1/community/rules/{cid}/import"),
                &b.eng,
                json!({}),
            )
            .await
            .json()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let tuned = format!(
            "{}  filter_local:\n    User: 'svc_scan'\n",
            sigma_rule("MKup1")
                .replace(
                    "condition: selection",
                    "condition: selection and not filter_local"
                )
                .replace("level: high\n", "")
        );
        let tuned = format!("{tuned}level: high\n");
        let r = hub
            .post(
                &format!("/v1/rules/{copy}/versions"),
                &b.eng,
                json!({"text": tuned}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        approve(&hub, &b, &copy).await;

        let r = hub
            .post(
                &format!("/v1/rules/{rid}/versions"),
                &a.eng,
                json!({"text": sigma_rule("MKup2")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let r = share(&hub, &a, &rid, &[]).await;
        assert_eq!(r.json()["version"], 2);

        // Nothing was overwritten: the tuned copy still deploys as approved.
        let bundle = deployable(&hub, &b).await;
        assert!(bundle["rules"][0]["text"]
            .as_str()
            .unwrap()
            .contains("svc_scan"));
        let pending = hub
            .get(&format!("/v1/rules/{copy}/pending"), &b.rev)
            .await
            .json();
        let p = &pending["pending"][0];
        assert_eq!(p["upstream_version"], 2);
        assert_eq!(p["merge_required"], true);
        assert!(p["upstream_diff"]
            .as_str()
            .unwrap()
            .contains("+title: Suspicious MKup2"));
        let pid = p["id"].as_str().unwrap().to_string();
        let accept = format!("/v1/rules/{copy}/pending/{pid}/accept");
        let r = hub.call(Method::POST, &accept, &b.rev, None).await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert_eq!(r.json()["code"], "merge_required");
        let merged = tuned.replace("MKup1", "MKup2");
        let r = hub.post(&accept, &b.rev, json!({"text": merged})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let bundle = deployable(&hub, &b).await;
        let text = bundle["rules"][0]["text"].as_str().unwrap();
        assert!(text.contains("MKup2") && text.contains("svc_scan"));
        assert_eq!(bundle["rules"][0]["source"]["version"], 2);
        assert_eq!(bundle["rules"][0]["reviewed_by"], "beta-rev");
    })
    .await;
}

#[tokio::test]
async fn false_positives_without_true_positives_flag_the_shared_rule() {
    for_each_backend(|backend| async move {
        let config = HubConfig {
            flag_false_positives: 3,
            ..HubConfig::default()
        };
        let hub = Hub::start_with(backend, config).await;
        let a = tenant(&hub, "alpha", true).await;
        let b = tenant(&hub, "beta", true).await;
        let noisy = create(&hub, &a, "MKnoisy", "TLP:GREEN", json!({})).await;
        let good = create(&hub, &a, "MKgood", "TLP:GREEN", json!({})).await;
        let mut copies = Vec::new();
        for id in [&noisy, &good] {
            let cid = share(&hub, &a, id, &[]).await.json()["community_id"]
                .as_str()
                .unwrap()
                .to_string();
            copies.push(
                hub.post(
                    &format!("/v1/community/rules/{cid}/import"),
                    &b.eng,
                    json!({}),
                )
                .await
                .json()["id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        let r = hub
            .post(
                &format!("/v1/rules/{}/verdicts", copies[0]),
                &b.eng,
                json!({"verdict": "false_positive", "count": 2}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let q = hub
            .get(&format!("/v1/rules/{noisy}/quality"), &a.eng)
            .await
            .json();
        assert_eq!(q["flagged_at"], Value::Null, "2 < threshold 3");
        hub.post(
            &format!("/v1/rules/{}/verdicts", copies[0]),
            &b.eng,
            json!({"verdict": "false_positive"}),
        )
        .await;
        let q = hub
            .get(&format!("/v1/rules/{noisy}/quality"), &a.eng)
            .await
            .json();
        assert!(q["flagged_at"].is_string(), "{q}");
        assert_eq!(q["community"]["false_positive"], 3);
        assert_eq!(q["community"]["precision"], 0.0);
        assert_eq!(q["tenant"]["volume"], 0, "the owner posted nothing itself");

        hub.post(
            &format!("/v1/rules/{}/verdicts", copies[1]),
            &b.eng,
            json!({"verdict": "true_positive"}),
        )
        .await;
        hub.post(
            &format!("/v1/rules/{}/verdicts", copies[1]),
            &b.eng,
            json!({"verdict": "false_positive", "count": 5}),
        )
        .await;
        let q = hub
            .get(&format!("/v1/rules/{good}/quality"), &a.eng)
            .await
            .json();
        assert_eq!(q["flagged_at"], Value::Null);
        // 1 tp / (1 tp + 5 fp)
        assert!((q["community"]["precision"].as_f64().unwrap() - 1.0 / 6.0).abs() < 1e-9);
        let q = hub
            .get(&format!("/v1/rules/{}/quality", copies[1]), &b.eng)
            .await
            .json();
        assert_eq!(q["tenant"]["volume"], 6);
        assert_eq!(
            q["flagged_at"],
            Value::Null,
            "importers are not told about flags"
        );
    })
    .await;
}

#[tokio::test]
async fn every_state_change_is_audited_with_hash_and_diff() {
    for_each_backend(|backend| async move {
        let hub = Hub::start(backend).await;
        let a = tenant(&hub, "alpha", false).await;
        let rid = create(&hub, &a, "MKaudit1", "TLP:AMBER", json!({})).await;
        hub.post(
            &format!("/v1/rules/{rid}/versions"),
            &a.eng,
            json!({"text": sigma_rule("MKaudit2"), "comment": "tighter"}),
        )
        .await;
        approve(&hub, &a, &rid).await;
        let audit = hub
            .get(&format!("/v1/rules/{rid}/audit"), &a.eng)
            .await
            .json();
        let records = audit["records"].as_array().unwrap();
        let actions: Vec<&str> = records
            .iter()
            .map(|r| r["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            vec![
                "rule.created",
                "version.created",
                "status.proposed",
                "status.approved"
            ]
        );
        let versions = hub
            .get(&format!("/v1/rules/{rid}/versions"), &a.eng)
            .await
            .json();
        assert_eq!(
            records[0]["version_hash"],
            versions["versions"][0]["version_hash"]
        );
        assert_eq!(
            records[1]["version_hash"],
            versions["versions"][1]["version_hash"]
        );
        let diff = records[1]["diff"].as_str().unwrap();
        assert!(
            diff.contains("-    CommandLine|contains: 'MKaudit1'"),
            "{diff}"
        );
        assert!(
            diff.contains("+    CommandLine|contains: 'MKaudit2'"),
            "{diff}"
        );
        assert!(diff.contains("# comment: tighter"));
        assert!(records[3]["actor"]
            .as_str()
            .unwrap()
            .starts_with("alpha-rev ("));
        assert_eq!(records[3]["diff"], "-status: proposed\n+status: approved\n");
    })
    .await;
}

#[tokio::test]
async fn errors_are_json_with_a_stable_code() {
    for backend in backends() {
        let hub = Hub::start(backend).await;
        let a = tenant(&hub, "alpha", false).await;
        let r = hub.get("/v1/rules", "nope").await;
        assert_eq!(
            (r.status, r.json()["code"].clone()),
            (StatusCode::UNAUTHORIZED, json!("unauthorized"))
        );
        let r = hub
            .post(
                "/v1/rules",
                &a.eng,
                json!({"kind": "sigma", "text": "title: x\n",
        "tlp": "TLP:GREEN", "confidence": 5}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.json()["code"], "rule_invalid");
        let message = r.json()["message"].as_str().unwrap().to_string();
        assert!(
            message.starts_with("the sigma rule does not compile: "),
            "{message}"
        );
        assert!(
            message.ends_with("; fix the text and send it again"),
            "{message}"
        );
        let r = hub
            .post(
                "/v1/rules",
                &a.eng,
                json!({"kind": "yara", "text": yara_rule("x", "y"),
        "tlp": "TLP:PURPLE", "confidence": 5}),
            )
            .await;
        assert_eq!(r.json()["code"], "invalid_request");
        let r = hub
            .post("/v1/rules", &a.eng, json!({"kind": "yara", "bogus": 1}))
            .await;
        assert_eq!(r.json()["code"], "invalid_request");
        let r = hub.get("/v1/nothing", &a.eng).await;
        assert_eq!(r.json()["code"], "no_such_route");
        let r = hub.get("/openapi.json", "").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json()["openapi"], "3.1.0");
    }
}
