//! The OpenAPI 3.1 document served at `/openapi.json`, written by hand.
//!
//! Hand-written rather than derived: the API is small, and one readable file keeps the
//! document next to the decisions it describes. `tests/openapi.rs` checks that every route the
//! router serves is documented here.

use serde_json::{json, Map, Value};

fn op(summary: &str, tag: &str, body: Option<&str>, ok: &str) -> Value {
    let mut o = json!({
        "summary": summary,
        "tags": [tag],
        "security": [{"bearer": []}],
        "responses": {
            ok: {"description": "success", "content": {"application/json": {}}},
            "default": {"description": "error", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}}
        }
    });
    if let Some(schema) = body {
        o["requestBody"] = json!({"required": true, "content": {"application/json": {
            "schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
    }
    o
}

fn params(o: &mut Value, names: &[&str]) {
    o["parameters"] = Value::Array(
        names
            .iter()
            .map(|n| json!({"name": n, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect(),
    );
}

fn add(paths: &mut Map<String, Value>, path: &str, method: &str, mut o: Value) {
    let names: Vec<&str> = path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect();
    if !names.is_empty() && o.get("parameters").is_none() {
        params(&mut o, &names);
    }
    let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
    entry[method] = o;
}

/// Builds the document.
pub fn document() -> Value {
    let mut paths = Map::new();
    add(
        &mut paths,
        "/healthz",
        "get",
        json!({"summary": "Liveness", "responses": {"200": {"description": "ok"}}}),
    );
    add(
        &mut paths,
        "/openapi.json",
        "get",
        json!({"summary": "This document", "responses": {"200": {"description": "ok"}}}),
    );
    add(
        &mut paths,
        "/v1/me",
        "get",
        op("The caller and its tenant", "tenants", None, "200"),
    );
    add(
        &mut paths,
        "/v1/tenants/{tenant}/settings",
        "get",
        op("Sharing settings", "tenants", None, "200"),
    );
    add(
        &mut paths,
        "/v1/tenants/{tenant}/settings",
        "put",
        op(
            "Opt in/out of community sharing (admin); opting out revokes every shared rule of the \
         tenant for everyone",
            "tenants",
            Some("Settings"),
            "200",
        ),
    );
    add(
        &mut paths,
        "/v1/tenants/{tenant}/profile",
        "get",
        op("Sanitization profile", "tenants", None, "200"),
    );
    add(
        &mut paths,
        "/v1/tenants/{tenant}/profile",
        "put",
        op(
            "Replace the sanitization profile (admin)",
            "tenants",
            Some("SanitizeProfile"),
            "200",
        ),
    );
    add(
        &mut paths,
        "/v1/tenants/{tenant}/users",
        "post",
        op(
            "Create a user; the token is shown once (admin)",
            "tenants",
            Some("NewUser"),
            "201",
        ),
    );
    let mut deployable = op(
        "The tenant's deployable rule set (approved or deployed, approval record for the current \
         version, not expired) as one bundle. ETag = bundle version; If-None-Match answers 304; \
         ?wait=N long-polls up to N seconds (capped by long_poll_max_secs) for a change.",
        "deployment",
        None,
        "200",
    );
    deployable["parameters"] = json!([
        {"name": "tenant", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "wait", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0}},
        {"name": "If-None-Match", "in": "header", "required": false, "schema": {"type": "string"}}
    ]);
    deployable["responses"]["200"]["content"]["application/json"] =
        json!({"schema": {"$ref": "#/components/schemas/Bundle"}});
    deployable["responses"]["304"] = json!({"description": "unchanged since If-None-Match"});
    add(
        &mut paths,
        "/v1/tenants/{tenant}/deployable",
        "get",
        deployable,
    );
    add(
        &mut paths,
        "/v1/rules",
        "get",
        op(
            "The tenant's rules (?status= filters)",
            "rules",
            None,
            "200",
        ),
    );
    add(
        &mut paths,
        "/v1/rules",
        "post",
        op(
            "Create a rule (engineer); compiled before it is stored; starts \
        as draft",
            "rules",
            Some("RuleWrite"),
            "201",
        ),
    );
    add(
        &mut paths,
        "/v1/rules/{id}",
        "get",
        op("One rule with its current version", "rules", None, "200"),
    );
    add(
        &mut paths,
        "/v1/rules/{id}/versions",
        "get",
        op("All immutable versions", "rules", None, "200"),
    );
    add(
        &mut paths,
        "/v1/rules/{id}/versions",
        "post",
        op(
            "Write a new version (engineer); omitted metadata \
        is kept; the rule returns to draft",
            "rules",
            Some("RuleWrite"),
            "201",
        ),
    );
    add(
        &mut paths,
        "/v1/rules/{id}/versions/{version}",
        "get",
        op("One version", "rules", None, "200"),
    );
    add(
        &mut paths,
        "/v1/rules/{id}/status",
        "post",
        op(
            "Review transition: draft→proposed (engineer), \
        proposed→approved|draft (reviewer), approved→deployed, any→deprecated, any→revoked \
        (reviewer)",
            "review",
            Some("StatusChange"),
            "200",
        ),
    );
    add(
        &mut paths,
        "/v1/rules/{id}/audit",
        "get",
        op(
            "Audit trail: who, when, version hash, diff",
            "rules",
            None,
            "200",
        ),
    );
    add(
        &mut paths,
        "/v1/rules/{id}/share/preview",
        "post",
        op(
            "Sanitized preview and diff; says whether \
        the sanitized rule compiles and may be shared",
            "sharing",
            None,
            "200",
        ),
    );
    add(
        &mut paths,
        "/v1/rules/{id}/share",
        "post",
        op(
            "Share (or republish) the sanitized current version \
        (engineer of an opted-in tenant); RED and AMBER+STRICT are refused; AMBER needs \
        recipients",
            "sharing",
            Some("ShareRequest"),
            "200",
        ),
    );
    add(
        &mut paths,
        "/v1/rules/{id}/share",
        "delete",
        op(
            "Withdraw from the community; every importer's \
        copy is revoked",
            "sharing",
            None,
            "200",
        ),
    );
    add(
        &mut paths,
        "/v1/rules/{id}/pending",
        "get",
        op(
            "Upstream updates offered to an imported copy, with \
        upstream and local diffs",
            "review",
            None,
            "200",
        ),
    );
    add(
        &mut paths,
        "/v1/rules/{id}/pending/{pending}/accept",
        "post",
        op(
            "Accept an upstream update \
        (reviewer): a new approved version; send merged 'text' if the copy was tuned locally",
            "review",
            Some("Accept"),
            "200",
        ),
    );
    add(
        &mut paths,
        "/v1/rules/{id}/pending/{pending}/reject",
        "post",
        op(
            "Reject an upstream update \
        (reviewer)",
            "review",
            None,
            "200",
        ),
    );
    add(
        &mut paths,
        "/v1/rules/{id}/verdicts",
        "post",
        op(
            "Post verdicts on hits of a rule version",
            "feedback",
            Some("VerdictInput"),
            "201",
        ),
    );
    add(
        &mut paths,
        "/v1/rules/{id}/quality",
        "get",
        op(
            "Precision and volume here; anonymised community \
        aggregate for shared or imported rules; flag for owners",
            "feedback",
            None,
            "200",
        ),
    );
    add(
        &mut paths,
        "/v1/community/rules",
        "get",
        op(
            "Community rules the caller may see",
            "community",
            None,
            "200",
        ),
    );
    add(
        &mut paths,
        "/v1/community/rules/{id}",
        "get",
        op(
            "One community rule with attribution and community \
        quality; a rule you may not see answers exactly like one that does not exist",
            "community",
            None,
            "200",
        ),
    );
    add(
        &mut paths,
        "/v1/community/rules/{id}/import",
        "post",
        op(
            "Import as a local copy in 'proposed' \
        (engineer); nothing is deployed before a reviewer approves",
            "community",
            None,
            "201",
        ),
    );

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Threat Foundry hub",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Tenants keep Sigma and YARA-X rules, share sanitized rules under TLP \
                2.0, review imports, and serve each tenant's deployable set to workers. Every \
                error is JSON {code, message}."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas()
        }
    })
}

fn schemas() -> Value {
    let tlp = json!({"type": "string", "enum": ["TLP:CLEAR", "TLP:GREEN", "TLP:AMBER",
        "TLP:AMBER+STRICT", "TLP:RED"]});
    json!({
        "Error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string", "description": "stable: unauthorized, forbidden_role, \
                not_found, invalid_request, rule_invalid, rule_too_large, sanitized_rule_invalid, \
                tlp_forbids_sharing, tlp_weaker_than_source, sharing_disabled, \
                invalid_transition, version_conflict, merge_required, already_imported, \
                own_rule, not_shared, not_pending, rule_revoked, rule_retired, \
                profile_invalid, no_such_route, method_not_allowed, internal"},
            "message": {"type": "string", "description": "what went wrong and what to fix"}}},
        "RuleWrite": {"type": "object", "additionalProperties": false, "properties": {
            "kind": {"type": "string", "enum": ["sigma", "yara"]},
            "text": {"type": "string"}, "title": {"type": "string"},
            "description": {"type": "string"}, "tlp": tlp,
            "confidence": {"type": "integer", "minimum": 0, "maximum": 100},
            "valid_until": {"type": "string", "format": "date-time"},
            "author": {"type": "string"}, "source": {"type": "string"},
            "references": {"type": "array", "items": {"type": "string"}},
            "attack_tags": {"type": "array", "items": {"type": "string"}},
            "comment": {"type": "string"}}},
        "StatusChange": {"type": "object", "required": ["status"], "properties": {
            "status": {"type": "string", "enum": ["draft", "proposed", "approved", "deployed",
                "deprecated", "revoked"]},
            "comment": {"type": "string"}}},
        "ShareRequest": {"type": "object", "properties": {
            "recipients": {"type": "array", "items": {"type": "string"},
                "description": "tenant ids; required for TLP:AMBER, refused otherwise"}}},
        "Accept": {"type": "object", "properties": {"text": {"type": "string"},
            "comment": {"type": "string"}}},
        "VerdictInput": {"type": "object", "required": ["verdict"], "properties": {
            "verdict": {"type": "string", "enum": ["true_positive", "false_positive", "benign"]},
            "version": {"type": "integer"}, "count": {"type": "integer", "minimum": 1}}},
        "Settings": {"type": "object", "required": ["sharing_opt_in"], "properties": {
            "sharing_opt_in": {"type": "boolean"},
            "attribution": {"type": "string", "enum": ["name", "pseudonym"]}}},
        "SanitizeProfile": {"type": "object", "properties": {
            "internal_domains": {"type": "array", "items": {"type": "string"}},
            "host_patterns": {"type": "array", "items": {"type": "string"},
                "description": "regular expressions"},
            "user_names": {"type": "array", "items": {"type": "string"}},
            "address_ranges": {"type": "array", "items": {"type": "string"},
                "description": "CIDR"},
            "ticket_patterns": {"type": "array", "items": {"type": "string"},
                "description": "regular expressions"}}},
        "NewUser": {"type": "object", "required": ["name", "role"], "properties": {
            "name": {"type": "string"},
            "role": {"type": "string", "enum": ["engineer", "reviewer", "admin", "reader"]}}},
        "Bundle": {"type": "object", "required": ["tenant", "version", "generated_at", "rules"],
            "properties": {
                "tenant": {"type": "string"},
                "version": {"type": "string", "description": "content hash; also the ETag"},
                "generated_at": {"type": "string", "format": "date-time"},
                "rules": {"type": "array", "items": {"$ref": "#/components/schemas/BundleRule"}}}},
        "BundleRule": {"type": "object", "properties": {
            "hub_rule_id": {"type": "string"}, "version": {"type": "integer"},
            "version_hash": {"type": "string"},
            "kind": {"type": "string", "enum": ["sigma", "yara"]},
            "text": {"type": "string"}, "title": {"type": "string"}, "tlp": tlp,
            "confidence": {"type": "integer"},
            "valid_until": {"type": ["string", "null"], "format": "date-time"},
            "author": {"type": "string"},
            "origin": {"type": "string", "enum": ["local", "community"]},
            "source": {"type": ["object", "null"], "properties": {
                "attribution": {"type": "string"}, "rule_id": {"type": "string"},
                "version": {"type": "integer"}}},
            "reviewed_by": {"type": "string"},
            "reviewed_at": {"type": "string", "format": "date-time"}}}
    })
}
