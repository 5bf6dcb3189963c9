//! The SQLite schema, as an ordered list of migrations applied at start-up.
//!
//! Each migration runs once, in its own transaction, and is recorded in
//! `schema_migrations`. Append new migrations; never edit an applied one.

/// `(version, name, SQL)`, in order.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial schema", INITIAL),
    (2, "indexed secrets and ask answers", SECRETS_AND_ANSWERS),
    (3, "who confirmed an attempt, and from where", CONFIRMATION),
    (4, "attempt states checked", ATTEMPT_STATES),
    (
        5,
        "login attempts, conversations and links kept in memory",
        EPHEMERAL_MOVED_OUT,
    ),
    (6, "login events outbox", WEBHOOK_OUTBOX),
    (7, "account handles", ACCOUNT_HANDLES),
    (8, "openid connect provider", OPENID_PROVIDER),
];

const OPENID_PROVIDER: &str = r#"
-- How a session was signed in (`cross-device`, `same-device`), for the
-- `amr` claim of the ID tokens issued from it. NULL for older sessions.
ALTER TABLE sessions ADD COLUMN method TEXT;

-- The provider's token signing keys, shared by every instance. A key is
-- published (JWKS) from its creation, signs from `signs_from` to
-- `signs_until`, and stays published until `published_until`, when no token
-- it signed is still valid.
CREATE TABLE oidc_signing_keys (
    kid             TEXT PRIMARY KEY,
    alg             TEXT NOT NULL,
    private_der     BLOB NOT NULL,
    created_at      INTEGER NOT NULL,
    signs_from      INTEGER NOT NULL,
    signs_until     INTEGER NOT NULL,
    published_until INTEGER NOT NULL
) STRICT;

-- What a person allowed a relying party, in one browser session: every code
-- and token issued for it dies with the session (logout, revocation, the
-- identity disabled or removed) or with the grant (a replayed code, a reused
-- refresh token, a revocation).
CREATE TABLE oidc_grants (
    id          INTEGER PRIMARY KEY,
    client_id   TEXT NOT NULL,
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    session_id  INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    scope       TEXT NOT NULL,
    nonce       TEXT,
    auth_time   INTEGER NOT NULL,
    amr         TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    -- The client's name for the person (`sub`) and for the session (`sid`).
    subject     TEXT NOT NULL,
    sid         TEXT NOT NULL,
    -- The client's back-channel logout URI when the grant was given.
    logout_uri  TEXT
) STRICT;
CREATE INDEX oidc_grants_session ON oidc_grants(session_id);
CREATE INDEX oidc_grants_account ON oidc_grants(account_id, client_id);

-- Back-channel logout: when a session ends, for whatever reason, each
-- relying party it signed in (and that asked to be told) gets a logout
-- token. The deliveries are outbox rows written by the deletion itself, so
-- no way of ending a session can forget them; they are sent, retried and
-- given up like login events (endpoint `oidc-logout:<client>`).
CREATE TRIGGER oidc_backchannel_logout BEFORE DELETE ON sessions
BEGIN
    INSERT INTO webhook_outbox
        (event_id, endpoint, event_type, account_id, body, created_at, next_attempt_at)
    SELECT lower(hex(randomblob(16))), 'oidc-logout:' || client_id,
           'oidc.backchannel-logout', account_id,
           json_object('client_id', client_id, 'sub', subject, 'sid', sid),
           unixepoch(), unixepoch()
      FROM (SELECT DISTINCT client_id, account_id, subject, sid FROM oidc_grants
             WHERE session_id = OLD.id AND logout_uri IS NOT NULL);
END;

-- Authorization codes (SHA-256 of the code): single use; a used code
-- presented again revokes its grant.
CREATE TABLE oidc_codes (
    code_hash      BLOB PRIMARY KEY CHECK (length(code_hash) = 32),
    grant_id       INTEGER NOT NULL REFERENCES oidc_grants(id) ON DELETE CASCADE,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT,
    expires_at     INTEGER NOT NULL,
    used           INTEGER NOT NULL DEFAULT 0 CHECK (used IN (0, 1))
) STRICT;
CREATE INDEX oidc_codes_grant ON oidc_codes(grant_id);

-- Access and refresh tokens (SHA-256 of the token). A refresh token is used
-- once; a used one presented again revokes its grant, the whole family.
CREATE TABLE oidc_tokens (
    token_hash  BLOB PRIMARY KEY CHECK (length(token_hash) = 32),
    grant_id    INTEGER NOT NULL REFERENCES oidc_grants(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used        INTEGER NOT NULL DEFAULT 0 CHECK (used IN (0, 1))
) STRICT;
CREATE INDEX oidc_tokens_grant ON oidc_tokens(grant_id);
CREATE INDEX oidc_tokens_expiry ON oidc_tokens(expires_at);

-- The scopes a person allowed a relying party, remembered until withdrawn.
CREATE TABLE oidc_consents (
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    granted_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, client_id)
) STRICT;

-- Pairwise subject identifiers: random, one per account and sector, so two
-- relying parties of different sectors cannot tell they see one person.
CREATE TABLE oidc_subjects (
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    sector      TEXT NOT NULL,
    subject     TEXT NOT NULL UNIQUE,
    PRIMARY KEY (account_id, sector)
) STRICT;
"#;

const WEBHOOK_OUTBOX: &str = r#"
-- Login events waiting for, or done with, delivery to the site's webhook
-- endpoints: one row per event and endpoint, written in the transaction of
-- the change it reports (durable: never in the in-memory schema). No
-- reference to `accounts`: an event outlives what it reports.
CREATE TABLE webhook_outbox (
    id              INTEGER PRIMARY KEY,
    event_id        TEXT NOT NULL,
    endpoint        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    account_id      INTEGER NOT NULL,
    body            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    leased_until    INTEGER,
    delivered_at    INTEGER,
    last_error      TEXT,
    UNIQUE (event_id, endpoint)
) STRICT;
CREATE INDEX webhook_outbox_due ON webhook_outbox(endpoint, status, next_attempt_at);
"#;

const EPHEMERAL_MOVED_OUT: &str = r#"
-- A pending login may be lost in a crash and is simply scanned again (the
-- durability contract in the server's README), so it no longer pays for a
-- synced commit: these tables now live in the server's memory
-- (`store::sqlite` module `in_flight`). Whatever was pending at the upgrade is dropped with them.
DROP TABLE conversations;
DROP TABLE login_links;
DROP TABLE login_attempts;
"#;

const ATTEMPT_STATES: &str = r#"
-- The attempt states (`AttemptState::ALL`): SQLite cannot add a CHECK to an
-- existing column, so triggers refuse any other value.
CREATE TRIGGER login_attempts_state_insert BEFORE INSERT ON login_attempts
WHEN NEW.state NOT IN ('pending', 'scanned', 'confirmed', 'logged-in', 'client-session', 'rejected')
BEGIN SELECT RAISE(ABORT, 'login_attempts.state: not an attempt state'); END;
CREATE TRIGGER login_attempts_state_update BEFORE UPDATE OF state ON login_attempts
WHEN NEW.state NOT IN ('pending', 'scanned', 'confirmed', 'logged-in', 'client-session', 'rejected')
BEGIN SELECT RAISE(ABORT, 'login_attempts.state: not an attempt state'); END;
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
    id          INTEGER PRIMARY KEY,
    created_at  INTEGER NOT NULL
) STRICT;

-- SPEC 8.3: one SQRL association per account; the IDK is unique.
CREATE TABLE sqrl_identities (
    idk         BLOB PRIMARY KEY CHECK (length(idk) = 32),
    account_id  INTEGER NOT NULL UNIQUE REFERENCES accounts(id) ON DELETE CASCADE,
    suk         BLOB NOT NULL CHECK (length(suk) = 32),
    vuk         BLOB NOT NULL CHECK (length(vuk) = 32),
    disabled    INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    sqrl_only   INTEGER NOT NULL DEFAULT 0 CHECK (sqrl_only IN (0, 1)),
    hardlock    INTEGER NOT NULL DEFAULT 0 CHECK (hardlock IN (0, 1)),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

-- PITFALLS 25: the durable list of retired identity keys (TIF 0x200/0x240).
CREATE TABLE superseded_identities (
    idk           BLOB PRIMARY KEY CHECK (length(idk) = 32),
    account_id    INTEGER REFERENCES accounts(id) ON DELETE SET NULL,
    superseded_at INTEGER NOT NULL
) STRICT;

-- SPEC 8.1: a waiting browser. `id` is the page's first nut; `pag_hash` the
-- SHA-256 of the secret only that browser holds.
CREATE TABLE login_attempts (
    id          TEXT PRIMARY KEY,
    pag_hash    BLOB NOT NULL CHECK (length(pag_hash) = 32),
    browser_ip  TEXT NOT NULL,
    user_agent  TEXT NOT NULL,
    state       TEXT NOT NULL,
    account_id  INTEGER REFERENCES accounts(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX login_attempts_expiry ON login_attempts(expires_at);

-- One conversation step per live nut (sqrl_core::server::Conversation).
-- `expected_server` is the concatenation of 32-byte SHA-256 digests.
CREATE TABLE conversations (
    nut             TEXT PRIMARY KEY,
    attempt_id      TEXT REFERENCES login_attempts(id) ON DELETE CASCADE,
    browser_ip      TEXT,
    expected_server BLOB NOT NULL CHECK (length(expected_server) % 32 = 0),
    idk             BLOB CHECK (idk IS NULL OR length(idk) = 32),
    sin             TEXT,
    asked           INTEGER NOT NULL CHECK (asked IN (0, 1)),
    expires_at      INTEGER NOT NULL,
    CHECK ((attempt_id IS NULL) = (browser_ip IS NULL))
) STRICT;
CREATE INDEX conversations_expiry ON conversations(expires_at);
CREATE INDEX conversations_attempt ON conversations(attempt_id);

-- Single-use, short-lived links that turn into a session (CPS url=, and the
-- link a confirmed page navigates to).
CREATE TABLE login_links (
    token_hash  BLOB PRIMARY KEY CHECK (length(token_hash) = 32),
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    attempt_id  TEXT REFERENCES login_attempts(id) ON DELETE SET NULL,
    method      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX login_links_attempt ON login_links(attempt_id);

CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY,
    token_hash   BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    account_id   INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    ip           TEXT NOT NULL,
    user_agent   TEXT NOT NULL
) STRICT;
CREATE INDEX sessions_account ON sessions(account_id);

CREATE TABLE login_history (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    ip          TEXT NOT NULL,
    user_agent  TEXT NOT NULL,
    method      TEXT NOT NULL
) STRICT;
CREATE INDEX login_history_account ON login_history(account_id, at);
"#;

const CONFIRMATION: &str = r#"
-- The identity that confirmed an attempt, and whether its device was on the
-- browser's network (TIF 0x04). When it was not, the waiting page shows the
-- identity's fingerprint and waits for a click before it signs in: a code
-- relayed to someone else, or answered first by whoever photographed it,
-- would otherwise sign this browser in to a stranger's account unseen.
ALTER TABLE login_attempts ADD COLUMN confirmed_idk BLOB
    CHECK (confirmed_idk IS NULL OR length(confirmed_idk) = 32);
ALTER TABLE login_attempts ADD COLUMN device_on_browser_network INTEGER
    CHECK (device_on_browser_network IN (0, 1));
-- The same for a same-device (CPS) link: confirmed from another network,
-- it signs in only after the person has seen the identity and clicked.
ALTER TABLE login_links ADD COLUMN device_on_browser_network INTEGER NOT NULL DEFAULT 1
    CHECK (device_on_browser_network IN (0, 1));
"#;

const SECRETS_AND_ANSWERS: &str = r#"
-- SPEC 4.6: the indexed secret (`ins`) an identity first presented for a
-- `sin`, kept as SHA-256 (only ever compared, never used as a key) and checked
-- on every later request that answers the same `sin`. The row follows its
-- identity: deleted with the association, moved by an identity replacement
-- (which then stores the new identity's `ins`).
CREATE TABLE indexed_secrets (
    idk         BLOB NOT NULL REFERENCES sqrl_identities(idk)
                    ON DELETE CASCADE ON UPDATE CASCADE,
    sin         TEXT NOT NULL,
    ins_hash    BLOB NOT NULL CHECK (length(ins_hash) = 32),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (idk, sin)
) STRICT;

-- SPEC 3 `ask`, 2.2 `btn`: the answer the user gave on the device, carried
-- from the confirmed attempt (or CPS link) to the login history; `ask_url`
-- is where the browser goes once logged in.
ALTER TABLE login_attempts ADD COLUMN ask_button INTEGER CHECK (ask_button IN (0, 1, 2));
ALTER TABLE login_attempts ADD COLUMN ask_label TEXT;
ALTER TABLE login_attempts ADD COLUMN ask_url TEXT;
ALTER TABLE login_links ADD COLUMN ask_button INTEGER CHECK (ask_button IN (0, 1, 2));
ALTER TABLE login_links ADD COLUMN ask_label TEXT;
ALTER TABLE login_links ADD COLUMN ask_url TEXT;
ALTER TABLE login_history ADD COLUMN ask_button INTEGER CHECK (ask_button IN (0, 1, 2));
ALTER TABLE login_history ADD COLUMN ask_label TEXT;
ALTER TABLE login_history ADD COLUMN ask_url TEXT;
"#;
