//! The OpenAPI document names every route the router serves, and the config parses.

use foundry_hub::HubConfig;

/// The routes registered in `api::router`, written out by hand.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/openapi.json"),
    ("get", "/healthz"),
    ("get", "/v1/me"),
    ("get", "/v1/tenants/{tenant}/settings"),
    ("put", "/v1/tenants/{tenant}/settings"),
    ("get", "/v1/tenants/{tenant}/profile"),
    ("put", "/v1/tenants/{tenant}/profile"),
    ("post", "/v1/tenants/{tenant}/users"),
    ("get", "/v1/tenants/{tenant}/deployable"),
    ("get", "/v1/rules"),
    ("post", "/v1/rules"),
    ("get", "/v1/rules/{id}"),
    ("get", "/v1/rules/{id}/versions"),
    ("post", "/v1/rules/{id}/versions"),
    ("get", "/v1/rules/{id}/versions/{version}"),
    ("post", "/v1/rules/{id}/status"),
    ("get", "/v1/rules/{id}/audit"),
    ("post", "/v1/rules/{id}/share/preview"),
    ("post", "/v1/rules/{id}/share"),
    ("delete", "/v1/rules/{id}/share"),
    ("get", "/v1/rules/{id}/pending"),
    ("post", "/v1/rules/{id}/pending/{pending}/accept"),
    ("post", "/v1/rules/{id}/pending/{pending}/reject"),
    ("post", "/v1/rules/{id}/verdicts"),
    ("get", "/v1/rules/{id}/quality"),
    ("get", "/v1/community/rules"),
    ("get", "/v1/community/rules/{id}"),
    ("post", "/v1/community/rules/{id}/import"),
];

#[test]
fn every_route_is_documented() {
    let doc = foundry_hub::openapi::document();
    for (method, path) in ROUTES {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        ROUTES.len(),
        "the document lists routes the router does not serve"
    );
    let bundle = &doc["components"]["schemas"]["BundleRule"]["properties"];
    for field in [
        "hub_rule_id",
        "version",
        "version_hash",
        "kind",
        "text",
        "title",
        "tlp",
        "confidence",
        "valid_until",
        "author",
        "origin",
        "source",
        "reviewed_by",
        "reviewed_at",
    ] {
        assert!(
            bundle[field].is_object(),
            "bundle field {field} undocumented"
        );
    }
}

#[test]
fn config_defaults_and_unknown_fields() {
    let c = HubConfig::from_toml("").unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8470");
    assert_eq!(c.db_url, "sqlite://foundry-hub.db?mode=rwc");
    let c = HubConfig::from_toml("flag_false_positives = 5\nlong_poll_max_secs = 9\n").unwrap();
    assert_eq!((c.flag_false_positives, c.long_poll_max_secs), (5, 9));
    let err = HubConfig::from_toml("listen_addr = \"0.0.0.0:1\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("listen_addr"), "{err}");
}
