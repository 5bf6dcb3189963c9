//! The PostgreSQL schema: the same migrations as [`super::sqlite`], version
//! for version, in PostgreSQL's dialect. Applied at start-up under an
//! advisory lock, so several instances starting at once apply each migration
//! exactly once (see `store::postgres::migrate`). Append new migrations to
//! both lists together; never edit an applied one.

/// `(version, name, SQL)`, in order.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial schema", INITIAL),
    (2, "indexed secrets and ask answers", SECRETS_AND_ANSWERS),
    (3, "who confirmed an attempt, and from where", CONFIRMATION),
    (4, "attempt states checked", ATTEMPT_STATES),
    (
        5,
        "login attempts, conversations and links kept in memory",
        EPHEMERAL_UNLOGGED,
    ),
    (6, "login events outbox", WEBHOOK_OUTBOX),
    (7, "account handles", ACCOUNT_HANDLES),
    (8, "openid connect provider", OPENID_PROVIDER),
];

const OPENID_PROVIDER: &str = r#"
-- See the SQLite migration of the same version for what each table is.
ALTER TABLE sessions ADD COLUMN method TEXT;

CREATE TABLE oidc_signing_keys (
    kid             TEXT PRIMARY KEY,
    alg             TEXT NOT NULL,
    private_der     BYTEA NOT NULL,
    created_at      BIGINT NOT NULL,
    signs_from      BIGINT NOT NULL,
    signs_until     BIGINT NOT NULL,
    published_until BIGINT NOT NULL
);

CREATE TABLE oidc_grants (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id   TEXT NOT NULL,
    account_id  BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    session_id  BIGINT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    scope       TEXT NOT NULL,
    nonce       TEXT,
    auth_time   BIGINT NOT NULL,
    amr         TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    subject     TEXT NOT NULL,
    sid         TEXT NOT NULL,
    logout_uri  TEXT
);
CREATE INDEX oidc_grants_session ON oidc_grants(session_id);
CREATE INDEX oidc_grants_account ON oidc_grants(account_id, client_id);

CREATE FUNCTION oidc_backchannel_logout() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    INSERT INTO webhook_outbox
        (event_id, endpoint, event_type, account_id, body, created_at, next_attempt_at)
    SELECT gen_random_uuid()::text, 'oidc-logout:' || g.client_id,
           'oidc.backchannel-logout', g.account_id,
           json_build_object('client_id', g.client_id, 'sub', g.subject, 'sid', g.sid)::text,
           extract(epoch FROM now())::bigint, extract(epoch FROM now())::bigint
      FROM (SELECT DISTINCT client_id, account_id, subject, sid FROM oidc_grants
             WHERE session_id = OLD.id AND logout_uri IS NOT NULL) g;
    RETURN OLD;
END
$body$;
CREATE TRIGGER oidc_backchannel_logout BEFORE DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION oidc_backchannel_logout();

CREATE TABLE oidc_codes (
    code_hash      BYTEA PRIMARY KEY CHECK (length(code_hash) = 32),
    grant_id       BIGINT NOT NULL REFERENCES oidc_grants(id) ON DELETE CASCADE,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT,
    expires_at     BIGINT NOT NULL,
    used           BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX oidc_codes_grant ON oidc_codes(grant_id);

CREATE TABLE oidc_tokens (
    token_hash  BYTEA PRIMARY KEY CHECK (length(token_hash) = 32),
    grant_id    BIGINT NOT NULL REFERENCES oidc_grants(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used        BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX oidc_tokens_grant ON oidc_tokens(grant_id);
CREATE INDEX oidc_tokens_expiry ON oidc_tokens(expires_at);

CREATE TABLE oidc_consents (
    account_id  BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    granted_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, client_id)
);

CREATE TABLE oidc_subjects (
    account_id  BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    sector      TEXT NOT NULL,
    subject     TEXT NOT NULL UNIQUE,
    PRIMARY KEY (account_id, sector)
);
"#;

const WEBHOOK_OUTBOX: &str = r#"
-- Login events for the site's webhook endpoints, one row per event and
-- endpoint, written in the transaction of the change (a logged table: it
-- survives a crash). Claimed under a lease with FOR UPDATE SKIP LOCKED, so
-- instances sharing the database never send a row twice at once.
CREATE TABLE webhook_outbox (
    id              BIGSERIAL PRIMARY KEY,
    event_id        TEXT NOT NULL,
    endpoint        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    account_id      BIGINT NOT NULL,
    body            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    leased_until    BIGINT,
    delivered_at    BIGINT,
    last_error      TEXT,
    UNIQUE (event_id, endpoint)
);
CREATE INDEX webhook_outbox_due ON webhook_outbox(endpoint, status, next_attempt_at);
"#;

const EPHEMERAL_UNLOGGED: &str = r#"
-- A pending login may be lost in a crash and is simply scanned again (the
-- durability contract in the server's README), so its tables stop paying for
-- the write-ahead log: UNLOGGED tables are not written to the WAL, a
-- transaction that touches only them commits without waiting for a flush,
-- and after a crash PostgreSQL empties them (never an older state brought
-- back: a spent link or collected attempt cannot come alive again).
-- Tables that reference another go first: a logged table may not reference
-- an unlogged one.
ALTER TABLE conversations SET UNLOGGED;
ALTER TABLE login_links SET UNLOGGED;
ALTER TABLE login_attempts SET UNLOGGED;
"#;

const ACCOUNT_HANDLES: &str = r#"
-- The name `/forward-auth` gives the reverse proxy for an account (the
-- `Remote-User` header): random, minted on first use, and kept for good, so
-- it stays the same when the account's identity is replaced, and, unlike the
-- row id, says nothing about how many accounts there are.
ALTER TABLE accounts ADD COLUMN handle TEXT;
CREATE UNIQUE INDEX accounts_handle ON accounts(handle);
"#;

const INITIAL: &str = r#"
CREATE TABLE accounts (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

-- SPEC 8.3: one SQRL association per account; the IDK is unique.
CREATE TABLE sqrl_identities (
    idk         BYTEA PRIMARY KEY CHECK (length(idk) = 32),
    account_id  BIGINT NOT NULL UNIQUE REFERENCES accounts(id) ON DELETE CASCADE,
    suk         BYTEA NOT NULL CHECK (length(suk) = 32),
    vuk         BYTEA NOT NULL CHECK (length(vuk) = 32),
    disabled    BOOLEAN NOT NULL DEFAULT FALSE,
    sqrl_only   BOOLEAN NOT NULL DEFAULT FALSE,
    hardlock    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- PITFALLS 25: the durable list of retired identity keys (TIF 0x200/0x240).
CREATE TABLE superseded_identities (
    idk           BYTEA PRIMARY KEY CHECK (length(idk) = 32),
    account_id    BIGINT REFERENCES accounts(id) ON DELETE SET NULL,
    superseded_at BIGINT NOT NULL
);

-- SPEC 8.1: a waiting browser. `id` is the page's first nut; `pag_hash` the
-- SHA-256 of the secret only that browser holds.
CREATE TABLE login_attempts (
    id          TEXT PRIMARY KEY,
    pag_hash    BYTEA NOT NULL CHECK (length(pag_hash) = 32),
    browser_ip  TEXT NOT NULL,
    user_agent  TEXT NOT NULL,
    state       TEXT NOT NULL,
    account_id  BIGINT REFERENCES accounts(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX login_attempts_expiry ON login_attempts(expires_at);

-- One conversation step per live nut (sqrl_core::server::Conversation).
-- `expected_server` is the concatenation of 32-byte SHA-256 digests.
CREATE TABLE conversations (
    nut             TEXT PRIMARY KEY,
    attempt_id      TEXT REFERENCES login_attempts(id) ON DELETE CASCADE,
    browser_ip      TEXT,
    expected_server BYTEA NOT NULL CHECK (length(expected_server) % 32 = 0),
    idk             BYTEA CHECK (idk IS NULL OR length(idk) = 32),
    sin             TEXT,
    asked           BOOLEAN NOT NULL,
    expires_at      BIGINT NOT NULL,
    CHECK ((attempt_id IS NULL) = (browser_ip IS NULL))
);
CREATE INDEX conversations_expiry ON conversations(expires_at);
CREATE INDEX conversations_attempt ON conversations(attempt_id);

-- Single-use, short-lived links that turn into a session (CPS url=, and the
-- link a confirmed page navigates to).
CREATE TABLE login_links (
    token_hash  BYTEA PRIMARY KEY CHECK (length(token_hash) = 32),
    account_id  BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    attempt_id  TEXT REFERENCES login_attempts(id) ON DELETE SET NULL,
    method      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX login_links_attempt ON login_links(attempt_id);
CREATE INDEX login_links_expiry ON login_links(expires_at);

CREATE TABLE sessions (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash   BYTEA NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    account_id   BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    ip           TEXT NOT NULL,
    user_agent   TEXT NOT NULL
);
CREATE INDEX sessions_account ON sessions(account_id);
CREATE INDEX sessions_expiry ON sessions(expires_at);

CREATE TABLE login_history (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    at          BIGINT NOT NULL,
    ip          TEXT NOT NULL,
    user_agent  TEXT NOT NULL,
    method      TEXT NOT NULL
);
CREATE INDEX login_history_account ON login_history(account_id, at);
"#;

const SECRETS_AND_ANSWERS: &str = r#"
-- SPEC 4.6: the indexed secret an identity first presented for a `sin`, as
-- SHA-256; follows its identity (deleted with it, moved by a replacement).
CREATE TABLE indexed_secrets (
    idk         BYTEA NOT NULL REFERENCES sqrl_identities(idk)
                    ON DELETE CASCADE ON UPDATE CASCADE,
    sin         TEXT NOT NULL,
    ins_hash    BYTEA NOT NULL CHECK (length(ins_hash) = 32),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (idk, sin)
);

-- SPEC 3 `ask`, 2.2 `btn`: the user's answer, carried from the confirmed
-- attempt (or CPS link) to the login history.
ALTER TABLE login_attempts ADD COLUMN ask_button SMALLINT CHECK (ask_button IN (0, 1, 2));
ALTER TABLE login_attempts ADD COLUMN ask_label TEXT;
ALTER TABLE login_attempts ADD COLUMN ask_url TEXT;
ALTER TABLE login_links ADD COLUMN ask_button SMALLINT CHECK (ask_button IN (0, 1, 2));
ALTER TABLE login_links ADD COLUMN ask_label TEXT;
ALTER TABLE login_links ADD COLUMN ask_url TEXT;
ALTER TABLE login_history ADD COLUMN ask_button SMALLINT CHECK (ask_button IN (0, 1, 2));
ALTER TABLE login_history ADD COLUMN ask_label TEXT;
ALTER TABLE login_history ADD COLUMN ask_url TEXT;
"#;

const CONFIRMATION: &str = r#"
-- The identity that confirmed an attempt, and whether its device was on the
-- browser's network (TIF 0x04); the same for a same-device (CPS) link.
ALTER TABLE login_attempts ADD COLUMN confirmed_idk BYTEA
    CHECK (confirmed_idk IS NULL OR length(confirmed_idk) = 32);
ALTER TABLE login_attempts ADD COLUMN device_on_browser_network BOOLEAN;
ALTER TABLE login_links ADD COLUMN device_on_browser_network BOOLEAN NOT NULL DEFAULT TRUE;
"#;

const ATTEMPT_STATES: &str = r#"
-- The attempt states (`AttemptState::ALL`).
ALTER TABLE login_attempts ADD CONSTRAINT login_attempts_state_check
    CHECK (state IN ('pending', 'scanned', 'confirmed', 'logged-in', 'client-session', 'rejected'));
"#;
