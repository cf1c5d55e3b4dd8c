-- Threat Foundry hub schema, version 1.
-- Portable between SQLite and PostgreSQL: TEXT and BIGINT only, booleans as 0/1,
-- timestamps as RFC 3339 UTC text, JSON arrays as TEXT.

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    pseudonym TEXT NOT NULL UNIQUE,
    sharing_opt_in BIGINT NOT NULL DEFAULT 0,
    attribution TEXT NOT NULL DEFAULT 'pseudonym',
    profile TEXT NOT NULL DEFAULT '{}',
    deploy_generation BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE rules (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    current_version BIGINT NOT NULL,
    origin TEXT NOT NULL,
    source_shared_id TEXT,
    source_version BIGINT,
    source_tlp TEXT,
    base_text TEXT,
    shared_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX rules_tenant ON rules (tenant_id);
CREATE INDEX rules_source ON rules (source_shared_id);

CREATE TABLE rule_versions (
    rule_id TEXT NOT NULL REFERENCES rules(id),
    version BIGINT NOT NULL,
    version_hash TEXT NOT NULL,
    text TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    tlp TEXT NOT NULL,
    confidence BIGINT NOT NULL,
    valid_until TEXT,
    author TEXT NOT NULL,
    source TEXT NOT NULL,
    refs TEXT NOT NULL,
    attack_tags TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (rule_id, version)
);

CREATE TABLE approvals (
    rule_id TEXT NOT NULL REFERENCES rules(id),
    version BIGINT NOT NULL,
    reviewer TEXT NOT NULL,
    approved_at TEXT NOT NULL,
    PRIMARY KEY (rule_id, version)
);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    rule_id TEXT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    at TEXT NOT NULL,
    version BIGINT,
    version_hash TEXT,
    diff TEXT NOT NULL
);
CREATE INDEX audit_rule ON audit_log (rule_id);

CREATE TABLE shared_rules (
    id TEXT PRIMARY KEY,
    owner_tenant_id TEXT NOT NULL REFERENCES tenants(id),
    rule_id TEXT NOT NULL REFERENCES rules(id),
    version BIGINT NOT NULL,
    local_version BIGINT NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    version_hash TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    tlp TEXT NOT NULL,
    confidence BIGINT NOT NULL,
    valid_until TEXT,
    author TEXT NOT NULL,
    source TEXT NOT NULL,
    refs TEXT NOT NULL,
    attack_tags TEXT NOT NULL,
    revoked BIGINT NOT NULL DEFAULT 0,
    flagged_at TEXT,
    shared_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE shared_recipients (
    shared_id TEXT NOT NULL REFERENCES shared_rules(id),
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    PRIMARY KEY (shared_id, tenant_id)
);

CREATE TABLE pending_updates (
    id TEXT PRIMARY KEY,
    rule_id TEXT NOT NULL REFERENCES rules(id),
    tenant_id TEXT NOT NULL,
    shared_id TEXT NOT NULL,
    upstream_version BIGINT NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX pending_rule ON pending_updates (rule_id);

CREATE TABLE verdicts (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    rule_id TEXT NOT NULL REFERENCES rules(id),
    version BIGINT NOT NULL,
    verdict TEXT NOT NULL,
    count BIGINT NOT NULL,
    actor TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX verdicts_rule ON verdicts (rule_id);
