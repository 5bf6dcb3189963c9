//! The OpenID Connect provider over real HTTP: a relying party's whole
//! code flow with a SQRL sign-in on the login page, and each way it must
//! refuse. ID tokens are checked as a relying party would: the signature
//! against the published key set, then `iss`, `aud`, `exp` and `nonce`.
//! `tests/browser` (sqrl-client) runs the same flow with Chromium, the `sqrl`
//! CLI and the certified `openid-client` library; `oidc_openidconnect.rs`
//! with the Rust `openidconnect` crate and the example relying party.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use base64::Engine as _;
use common::oidc::{Outcome, allow, answer, consent_request, encoded, location, param, run};
use common::{
    Browser, Harness, Identity, NONE, OPERATOR_TOKEN, Request, SqrlConversation, TestDatabase,
    assert_tif, scan_in,
};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use sqrl_core::base64url;
use sqrl_core::msg::Command;
use sqrl_server::config::{Config, OperatorToken};
use sqrl_server::oidc::clients::{ClientSecretText, ClientSettings, OidcConfig, OidcSettings};
use sqrl_server::store::Database;

const WIKI: &str = "wiki";
const WIKI_SECRET: &str = "wiki-secret-0123456789-0123456789-abc";
const WIKI_CB: &str = "http://127.0.0.1:9/wiki/callback";
const WIKI_BYE: &str = "http://127.0.0.1:9/wiki/signed-out";
const CHAT: &str = "chat";
const CHAT_SECRET: &str = "chat-secret-0123456789-0123456789-xyz";
const CHAT_CB: &str = "http://127.0.0.1:9/chat/callback";
const SPA: &str = "spa";
const SPA_CB: &str = "http://localhost:9/spa/callback";

/// Three relying parties: two confidential ones of different sectors, one
/// public (PKCE only) with public subject identifiers.
fn with_clients(config: &mut Config) {
    let confidential = |id: &str, secret: &str, cb: &str| ClientSettings {
        client_id: id.into(),
        name: Some(format!("The {id}")),
        client_secret: Some(ClientSecretText::new(secret)),
        redirect_uris: vec![cb.into()],
        ..ClientSettings::default()
    };
    let mut wiki = confidential(WIKI, WIKI_SECRET, WIKI_CB);
    wiki.post_logout_redirect_uris = vec![WIKI_BYE.into()];
    let settings = OidcSettings {
        clients: vec![
            wiki,
            confidential(CHAT, CHAT_SECRET, CHAT_CB),
            ClientSettings {
                client_id: SPA.into(),
                public: true,
                subject_type: Some("public".into()),
                redirect_uris: vec![SPA_CB.into()],
                ..ClientSettings::default()
            },
        ],
        ..OidcSettings::default()
    };
    config.oidc = OidcConfig::from_settings(&settings).unwrap();
}

async fn start() -> Harness {
    Harness::start_with(with_clients).await
}

/// A PKCE verifier and its S256 challenge.
fn pkce() -> (String, String) {
    let verifier = base64url::encode(rand_bytes());
    let challenge = base64url::encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn rand_bytes() -> [u8; 32] {
    use sqrl_core::rand_core::{OsRng, RngCore as _};
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

/// An authorization request of `client` back to `cb`, with `extra` pairs.
fn authorize_path(client: &str, cb: &str, extra: &[(&str, &str)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("response_type", "code")
        .append_pair("client_id", client)
        .append_pair("redirect_uri", cb)
        .append_pair("scope", "openid sqrl");
    for (name, value) in extra {
        query.append_pair(name, value);
    }
    format!("/oidc/authorize?{}", query.finish())
}

/// The code a successful outcome carries, after checking `state` and `iss`.
fn code_of(h: &Harness, outcome: Outcome, state: &str) -> String {
    let Outcome::Client(url) = outcome else {
        panic!("expected a redirect to the client, got {outcome:?}");
    };
    assert_eq!(param(&url, "state").as_deref(), Some(state), "{url}");
    assert_eq!(
        param(&url, "iss").as_deref(),
        Some(h.base().as_str()),
        "{url}"
    );
    param(&url, "code").unwrap_or_else(|| panic!("no code in {url}"))
}

fn error_of(outcome: &Outcome) -> String {
    let Outcome::Client(url) = outcome else {
        panic!("expected a redirect to the client, got {outcome:?}");
    };
    param(url, "error").unwrap_or_else(|| panic!("no error in {url}"))
}

/// A token request with `client_secret_basic`.
async fn token_request(
    h: &Harness,
    client: (&str, &str),
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let response = h
        .http
        .post(h.url("/oidc/token"))
        .basic_auth(client.0, Some(client.1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn exchange(
    h: &Harness,
    client: (&str, &str),
    code: &str,
    cb: &str,
    verifier: &str,
) -> (StatusCode, Value) {
    token_request(
        h,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", cb),
            ("code_verifier", verifier),
        ],
    )
    .await
}

async fn refresh(h: &Harness, client: (&str, &str), token: &str) -> (StatusCode, Value) {
    token_request(
        h,
        client,
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

async fn userinfo(h: &Harness, access_token: &str) -> (StatusCode, Value) {
    let response = h
        .http
        .get(h.url("/oidc/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Whether the access token of `tokens` is refused by userinfo and their
/// refresh token at the token endpoint.
async fn assert_revoked(h: &Harness, client: (&str, &str), tokens: &Value) {
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        userinfo(h, access).await.0,
        StatusCode::UNAUTHORIZED,
        "access token"
    );
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let (status, error) = refresh(h, client, refresh_token).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "refresh token"
    );
}

/// A code for `client` back to `cb` with PKCE, `state=s` and `extra`; and
/// its verifier.
async fn code_with_pkce(
    h: &Harness,
    browser: &mut Browser,
    id: &Identity,
    (client, cb): (&str, &str),
    extra: &[(&str, &str)],
) -> (String, String) {
    let (verifier, challenge) = pkce();
    let mut params = vec![
        ("state", "s"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    params.extend_from_slice(extra);
    let path = authorize_path(client, cb, &params);
    (code_of(h, run(h, browser, &path, id).await, "s"), verifier)
}

/// The claims of an ID token, verified as a relying party would.
async fn verify_id_token(h: &Harness, id_token: &str, audience: &str) -> Value {
    verify_signed_by(h, id_token, audience, Algorithm::ES256).await
}

/// The claims of an ID token that must be signed with `alg`, verified as
/// a relying party would.
async fn verify_signed_by(h: &Harness, id_token: &str, audience: &str, alg: Algorithm) -> Value {
    let discovery: Value = h
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], h.base());
    let jwks: JwkSet = h
        .http
        .get(discovery["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(header.alg, alg);
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("the key is published");
    let mut validation = Validation::new(alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[h.base()]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(id_token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .unwrap_or_else(|e| panic!("ID token refused: {e}"))
        .claims
}

/// A signed-in code flow of the wiki for `id`: the token response.
async fn wiki_tokens(h: &Harness, browser: &mut Browser, id: &Identity) -> Value {
    let (verifier, challenge) = pkce();
    let path = authorize_path(
        WIKI,
        WIKI_CB,
        &[
            ("state", "s1"),
            ("nonce", "n1"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let code = code_of(h, run(h, browser, &path, id).await, "s1");
    let (status, tokens) = exchange(h, (WIKI, WIKI_SECRET), &code, WIKI_CB, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens
}

#[tokio::test]
async fn a_relying_party_signs_a_person_in_and_keeps_them_with_refresh_tokens() {
    let h = start().await;
    let id = Identity::new();
    let mut browser = h.browser();

    // Discovery names every endpoint under the issuer, and what is offered.
    let discovery: Value = h
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    for endpoint in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
    ] {
        assert!(discovery[endpoint].as_str().unwrap().starts_with(&h.base()));
    }
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        discovery["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256", "RS256", "EdDSA"])
    );

    // Not signed in: the login page, then consent naming the client and
    // what it gets, then a code.
    let (verifier, challenge) = pkce();
    let path = authorize_path(
        WIKI,
        WIKI_CB,
        &[
            ("state", "xyz"),
            ("nonce", "nonce-123"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let first = browser.get(&path).await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let login = location(&first);
    assert!(login.starts_with("/?rd="), "{login}");
    let back = scan_in(&h, &mut browser, &login, &id).await;
    assert!(back.starts_with(&h.url("/oidc/authorize?")), "{back}");
    let consent = browser.get(&back).await;
    assert_eq!(consent.status(), StatusCode::OK);
    let csp = consent.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:9"),
        "{csp}"
    );
    let html = consent.text().await.unwrap();
    assert!(html.contains("The wiki"), "{html}");
    assert!(html.contains("data-scope=\"sqrl\""), "{html}");
    let to_client = allow(&mut browser, &html).await;
    let code = code_of(&h, Outcome::Client(to_client), "xyz");

    let (status, tokens) = exchange(&h, (WIKI, WIKI_SECRET), &code, WIKI_CB, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "openid sqrl");
    let claims = verify_id_token(&h, tokens["id_token"].as_str().unwrap(), WIKI).await;
    assert_eq!(claims["nonce"], "nonce-123", "the nonce is echoed");
    assert_eq!(claims["amr"], serde_json::json!(["sqrl", "xdev"]));
    assert_eq!(claims["azp"], WIKI);
    let sub = claims["sub"].as_str().unwrap().to_owned();
    let now = sqrl_server::clock::unix_now();
    assert!(claims["auth_time"].as_u64().unwrap() <= now);

    // Userinfo names the same subject, and the identity's fingerprint the
    // account page shows.
    let (status, info) = userinfo(&h, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["sub"], sub.as_str());
    let fingerprint = info["sqrl_fingerprint"].as_str().unwrap();
    let account = browser.get("/account").await.text().await.unwrap();
    assert!(
        account.contains(fingerprint),
        "account page shows {fingerprint}"
    );

    // A second sign-in of the same client: consent is remembered.
    let code = code_of(
        &h,
        run(
            &h,
            &mut browser,
            &authorize_path(
                WIKI,
                WIKI_CB,
                &[
                    ("state", "again"),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                ],
            ),
            &id,
        )
        .await,
        "again",
    );
    let (status, again) = exchange(&h, (WIKI, WIKI_SECRET), &code, WIKI_CB, &verifier).await;
    assert_eq!(status, StatusCode::OK);
    let claims = verify_id_token(&h, again["id_token"].as_str().unwrap(), WIKI).await;
    assert_eq!(
        claims["sub"],
        sub.as_str(),
        "the same person, the same subject"
    );
    assert!(claims.get("nonce").is_none());

    // Refresh: new tokens, the same subject; the old access token stays
    // valid until it expires, the old refresh token is spent.
    let (status, refreshed) = refresh(
        &h,
        (WIKI, WIKI_SECRET),
        tokens["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_ne!(refreshed["refresh_token"], tokens["refresh_token"]);
    let claims = verify_id_token(&h, refreshed["id_token"].as_str().unwrap(), WIKI).await;
    assert_eq!(claims["sub"], sub.as_str());
    assert_eq!(
        userinfo(&h, refreshed["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::OK
    );

    // Revocation (RFC 7009) of the refresh token ends its whole grant.
    let revoked = h
        .http
        .post(h.url("/oidc/revoke"))
        .basic_auth(WIKI, Some(WIKI_SECRET))
        .form(&[("token", refreshed["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(
        userinfo(&h, refreshed["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        userinfo(&h, tokens["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // The other grant (the second sign-in) is untouched.
    assert_eq!(
        userinfo(&h, again["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_wrong_redirect_uri_or_unknown_client_is_refused_on_a_page_never_followed() {
    let h = start().await;
    let mut browser = h.browser();
    for path in [
        authorize_path(WIKI, "http://127.0.0.1:9/evil", &[]),
        authorize_path(WIKI, &format!("{WIKI_CB}/"), &[]),
        authorize_path(WIKI, CHAT_CB, &[]),
        authorize_path("nobody", WIKI_CB, &[]),
        format!(
            "{}&redirect_uri={}",
            authorize_path(WIKI, WIKI_CB, &[]),
            encoded(WIKI_CB)
        ),
        "/oidc/authorize?response_type=code&client_id=wiki&scope=openid".to_owned(),
    ] {
        let response = browser.get(&path).await;
        assert!(response.headers().get(LOCATION).is_none(), "{path}");
        let Outcome::Page(status, html) = run(&h, &mut browser, &path, &Identity::new()).await
        else {
            panic!("{path} was followed");
        };
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(html.contains("cannot be used"), "{html}");
    }
}

#[tokio::test]
async fn malformed_requests_go_back_to_the_client_as_errors() {
    let h = start().await;
    let mut browser = h.browser();
    let id = Identity::new();
    let (_, challenge) = pkce();
    for (extra, scope, expected) in [
        (
            vec![("response_type", "token")],
            None,
            "unsupported_response_type",
        ),
        (vec![], Some("profile"), "invalid_scope"),
        (
            vec![
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "plain"),
            ],
            None,
            "invalid_request",
        ),
        (
            vec![
                ("code_challenge", "short"),
                ("code_challenge_method", "S256"),
            ],
            None,
            "invalid_request",
        ),
        (vec![("response_mode", "fragment")], None, "invalid_request"),
        (vec![("prompt", "none login")], None, "invalid_request"),
        (vec![("max_age", "soon")], None, "invalid_request"),
        (vec![("request", "eyJ")], None, "invalid_request"),
    ] {
        let mut path = authorize_path(WIKI, WIKI_CB, &[("state", "st")]);
        for (name, value) in &extra {
            if *name == "response_type" {
                path = path.replace("response_type=code", &format!("response_type={value}"));
            } else {
                path.push_str(&format!("&{name}={}", encoded(value)));
            }
        }
        if let Some(scope) = scope {
            path = path.replace("scope=openid+sqrl", &format!("scope={scope}"));
        }
        let outcome = run(&h, &mut browser, &path, &id).await;
        assert_eq!(error_of(&outcome), expected, "{path}");
        let Outcome::Client(url) = &outcome else {
            unreachable!()
        };
        assert_eq!(param(url, "state").as_deref(), Some("st"));
    }
    // A public client must use PKCE.
    let outcome = run(&h, &mut browser, &authorize_path(SPA, SPA_CB, &[]), &id).await;
    assert_eq!(error_of(&outcome), "invalid_request");
    // No identity was ever asked to sign in for any of these.
    assert_eq!(h.identity_count(), 0);
}

#[tokio::test]
async fn a_missing_or_wrong_pkce_verifier_is_refused_and_spends_the_code() {
    let h = start().await;
    let id = Identity::new();
    let mut browser = h.browser();
    let (verifier, challenge) = pkce();
    let pkce_params = [
        ("state", "p"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    for bad in [None, Some(pkce().0), Some(challenge.clone())] {
        let code = code_of(
            &h,
            run(
                &h,
                &mut browser,
                &authorize_path(WIKI, WIKI_CB, &pkce_params),
                &id,
            )
            .await,
            "p",
        );
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", WIKI_CB),
        ];
        if let Some(bad) = &bad {
            form.push(("code_verifier", bad));
        }
        let (status, error) = token_request(&h, (WIKI, WIKI_SECRET), &form).await;
        assert_eq!(
            (status, error["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant")),
            "{bad:?}"
        );
        // The right verifier comes too late: the code is spent.
        let (status, _) = exchange(&h, (WIKI, WIKI_SECRET), &code, WIKI_CB, &verifier).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    // A verifier for a code issued without a challenge (stripped from the
    // request on the way) is refused too.
    let code = code_of(
        &h,
        run(
            &h,
            &mut browser,
            &authorize_path(WIKI, WIKI_CB, &[("state", "p")]),
            &id,
        )
        .await,
        "p",
    );
    let (status, error) = exchange(&h, (WIKI, WIKI_SECRET), &code, WIKI_CB, &verifier).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    // And the redirect URI must be the request's.
    let code = code_of(
        &h,
        run(
            &h,
            &mut browser,
            &authorize_path(WIKI, WIKI_CB, &pkce_params),
            &id,
        )
        .await,
        "p",
    );
    let (status, error) = exchange(&h, (WIKI, WIKI_SECRET), &code, CHAT_CB, &verifier).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn a_replayed_code_revokes_the_tokens_it_issued() {
    let h = start().await;
    let id = Identity::new();
    let mut browser = h.browser();
    let (code, verifier) = code_with_pkce(&h, &mut browser, &id, (WIKI, WIKI_CB), &[]).await;
    let (status, tokens) = exchange(&h, (WIKI, WIKI_SECRET), &code, WIKI_CB, &verifier).await;
    assert_eq!(status, StatusCode::OK);
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&h, access).await.0, StatusCode::OK);

    let (status, error) = exchange(&h, (WIKI, WIKI_SECRET), &code, WIKI_CB, &verifier).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_revoked(&h, (WIKI, WIKI_SECRET), &tokens).await;
}

#[tokio::test]
async fn a_replayed_refresh_token_revokes_the_whole_family() {
    let h = start().await;
    let id = Identity::new();
    let mut browser = h.browser();
    let tokens = wiki_tokens(&h, &mut browser, &id).await;
    let first = tokens["refresh_token"].as_str().unwrap();
    let (status, second) = refresh(&h, (WIKI, WIKI_SECRET), first).await;
    assert_eq!(status, StatusCode::OK);
    let (status, third) = refresh(
        &h,
        (WIKI, WIKI_SECRET),
        second["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        userinfo(&h, third["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::OK
    );

    // The first, already used, comes back (stolen and replayed): every
    // token of the family dies, the newest included.
    let (status, error) = refresh(&h, (WIKI, WIKI_SECRET), first).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(
        userinfo(&h, third["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = refresh(
        &h,
        (WIKI, WIKI_SECRET),
        third["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The person's browser session is not the family: it lives on.
    assert_eq!(browser.get("/account").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let h = start().await;
    let id = Identity::new();
    let mut browser = h.browser();
    let (code, verifier) = code_with_pkce(&h, &mut browser, &id, (WIKI, WIKI_CB), &[]).await;
    h.server
        .clock()
        .advance(sqrl_server::oidc::authorize::CODE_LIFETIME);
    let (status, error) = exchange(&h, (WIKI, WIKI_SECRET), &code, WIKI_CB, &verifier).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn a_code_or_token_of_client_a_is_refused_for_client_b() {
    let h = start().await;
    let id = Identity::new();
    let mut browser = h.browser();
    let tokens = wiki_tokens(&h, &mut browser, &id).await;

    // The chat presents the wiki's code (with the right verifier).
    let (code, verifier) = code_with_pkce(&h, &mut browser, &id, (WIKI, WIKI_CB), &[]).await;
    let (status, error) = exchange(&h, (CHAT, CHAT_SECRET), &code, WIKI_CB, &verifier).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    // ... and the wiki can no longer use it either: the code is spent.
    let (status, _) = exchange(&h, (WIKI, WIKI_SECRET), &code, WIKI_CB, &verifier).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The chat refreshes, introspects and revokes the wiki's tokens: to
    // the chat they are no tokens at all.
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let (status, error) = refresh(&h, (CHAT, CHAT_SECRET), refresh_token).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let introspect = |client: (&'static str, &'static str), token: String| {
        let http = h.http.clone();
        let url = h.url("/oidc/introspect");
        async move {
            let response = http
                .post(url)
                .basic_auth(client.0, Some(client.1))
                .form(&[("token", token)])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(
        introspect((CHAT, CHAT_SECRET), access.to_owned()).await["active"],
        false
    );
    let own = introspect((WIKI, WIKI_SECRET), access.to_owned()).await;
    assert_eq!(own["active"], true);
    assert_eq!(own["client_id"], WIKI);
    let revoked = h
        .http
        .post(h.url("/oidc/revoke"))
        .basic_auth(CHAT, Some(CHAT_SECRET))
        .form(&[("token", refresh_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(
        userinfo(&h, access).await.0,
        StatusCode::OK,
        "the chat cannot revoke it"
    );
    let (status, _) = refresh(&h, (WIKI, WIKI_SECRET), refresh_token).await;
    assert_eq!(status, StatusCode::OK, "the wiki still can refresh");
}

#[tokio::test]
async fn clients_must_authenticate_as_registered() {
    let h = start().await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", "AAAAAAAAAAAAAAAAAAAAAA"),
        ("redirect_uri", WIKI_CB),
    ];
    // Wrong secret, unknown client, a public client with a secret.
    for client in [
        (WIKI, "wrong-secret"),
        ("nobody", WIKI_SECRET),
        (SPA, "a-secret"),
    ] {
        let (status, error) = token_request(&h, client, &form).await;
        assert_eq!(
            (status, error["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client")),
            "{client:?}"
        );
    }
    // A confidential client without its secret.
    let body = "grant_type=authorization_code&code=AAAAAAAAAAAAAAAAAAAAAA&client_id=wiki";
    let response = h
        .http
        .post(h.url("/oidc/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("www-authenticate"));
    // Two methods at once.
    let both = format!("{body}&client_secret={WIKI_SECRET}");
    let response = h
        .http
        .post(h.url("/oidc/token"))
        .basic_auth(WIKI, Some(WIKI_SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(both)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // client_secret_post works like Basic (the code is unknown: invalid_grant, not invalid_client).
    let post = format!(
        "{body}&client_secret={WIKI_SECRET}&redirect_uri={}",
        encoded(WIKI_CB)
    );
    let response = h
        .http
        .post(h.url("/oidc/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(post)
        .send()
        .await
        .unwrap();
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"], "invalid_grant");
    // A parameter given twice is refused.
    let twice = format!("{body}&client_secret={WIKI_SECRET}&code=BBBBBBBBBBBBBBBBBBBBBB");
    let response = h
        .http
        .post(h.url("/oidc/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(twice)
        .send()
        .await
        .unwrap();
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"], "invalid_request");
}

#[tokio::test]
async fn prompt_none_without_a_session_answers_login_required_and_without_consent_consent_required()
{
    let h = start().await;
    let id = Identity::new();
    let mut browser = h.browser();
    let none = [("prompt", "none"), ("state", "n")];
    let outcome = run(&h, &mut browser, &authorize_path(WIKI, WIKI_CB, &none), &id).await;
    assert_eq!(error_of(&outcome), "login_required");
    assert_eq!(h.identity_count(), 0, "no sign-in was shown");

    // Signed in (through the chat), but the wiki was never allowed.
    let (code, verifier) = code_with_pkce(&h, &mut browser, &id, (CHAT, CHAT_CB), &[]).await;
    assert_eq!(
        exchange(&h, (CHAT, CHAT_SECRET), &code, CHAT_CB, &verifier)
            .await
            .0,
        StatusCode::OK
    );
    let outcome = run(&h, &mut browser, &authorize_path(WIKI, WIKI_CB, &none), &id).await;
    assert_eq!(error_of(&outcome), "consent_required");
    // The chat, allowed before, gets a code without any screen.
    let path = authorize_path(CHAT, CHAT_CB, &[("prompt", "none"), ("state", "c2")]);
    let response = browser.get(&path).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(param(&location(&response), "code").is_some());
}

#[tokio::test]
async fn refusing_consent_sends_access_denied_and_remembers_nothing() {
    let h = start().await;
    let id = Identity::new();
    let mut browser = h.browser();
    let path = authorize_path(WIKI, WIKI_CB, &[("state", "d")]);
    let to = browser.get(&path).await;
    let back = scan_in(&h, &mut browser, &location(&to), &id).await;
    let html = browser.get(&back).await.text().await.unwrap();
    let refused = answer(&mut browser, &html, "deny").await;
    assert_eq!(param(&refused, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&refused, "state").as_deref(), Some("d"));
    // Asked again, the screen shows again.
    let again = browser.get(&path).await;
    assert_eq!(again.status(), StatusCode::OK);
    // A consent form posted from another site is refused.
    let forged = browser
        .request(reqwest::Method::POST, "/oidc/authorize")
        .header("sec-fetch-site", "cross-site")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "request={}&decision=allow",
            encoded(&consent_request(&html))
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn prompt_login_and_max_age_demand_a_fresh_scan() {
    let h = start().await;
    let id = Identity::new();
    let mut browser = h.browser();
    let first = wiki_tokens(&h, &mut browser, &id).await;
    let first = verify_id_token(&h, first["id_token"].as_str().unwrap(), WIKI).await;
    h.server.clock().advance(120);

    for extra in [("prompt", "login"), ("max_age", "60")] {
        let (verifier, challenge) = pkce();
        let path = authorize_path(
            WIKI,
            WIKI_CB,
            &[
                extra,
                ("state", "f"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        );
        // Signed in, yet sent to the login page, which shows its code.
        let response = browser.get(&path).await;
        let login = location(&response);
        assert!(
            login.starts_with("/?rd=") && login.ends_with("&fresh=1"),
            "{extra:?}: {login}"
        );
        let code = code_of(&h, run(&h, &mut browser, &path, &id).await, "f");
        let (_, tokens) = exchange(&h, (WIKI, WIKI_SECRET), &code, WIKI_CB, &verifier).await;
        let claims = verify_id_token(&h, tokens["id_token"].as_str().unwrap(), WIKI).await;
        assert!(
            claims["auth_time"].as_u64() > first["auth_time"].as_u64(),
            "{extra:?}: a fresh sign-in"
        );
        assert_eq!(claims["sub"], first["sub"]);
        h.server.clock().advance(120);
    }
    // With a fresh enough session, max_age lets it through without a scan.
    let path = authorize_path(WIKI, WIKI_CB, &[("max_age", "3600"), ("state", "m")]);
    let response = browser.get(&path).await;
    assert!(param(&location(&response), "code").is_some());
    // prompt=none and a stale session: login_required, not a page.
    let path = authorize_path(
        WIKI,
        WIKI_CB,
        &[("max_age", "1"), ("prompt", "none"), ("state", "m")],
    );
    let response = browser.get(&path).await;
    assert_eq!(
        param(&location(&response), "error").as_deref(),
        Some("login_required")
    );
}

#[tokio::test]
async fn subjects_are_pairwise_per_sector_unless_the_client_is_public() {
    let h = start().await;
    let id = Identity::new();
    let mut browser = h.browser();
    let wiki = wiki_tokens(&h, &mut browser, &id).await;
    let wiki = verify_id_token(&h, wiki["id_token"].as_str().unwrap(), WIKI).await;

    let (code, verifier) = code_with_pkce(&h, &mut browser, &id, (CHAT, CHAT_CB), &[]).await;
    let (_, chat) = exchange(&h, (CHAT, CHAT_SECRET), &code, CHAT_CB, &verifier).await;
    let chat = verify_id_token(&h, chat["id_token"].as_str().unwrap(), CHAT).await;
    assert_ne!(
        wiki["sub"], chat["sub"],
        "two sectors cannot tell it is one person"
    );

    // The public client (PKCE, no secret) sees the account handle.
    let (code, verifier) = code_with_pkce(&h, &mut browser, &id, (SPA, SPA_CB), &[]).await;
    let body = format!(
        "grant_type=authorization_code&client_id={SPA}&code={code}&redirect_uri={}&code_verifier={verifier}",
        encoded(SPA_CB)
    );
    let response = h
        .http
        .post(h.url("/oidc/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let spa: Value = response.json().await.unwrap();
    let spa = verify_id_token(&h, spa["id_token"].as_str().unwrap(), SPA).await;
    let handle: String = h.value("SELECT handle FROM accounts");
    assert_eq!(spa["sub"], handle.as_str());
    assert_ne!(spa["sub"], wiki["sub"]);
    // The database keeps no token in the clear.
    let stored: i64 = h.value("SELECT count(*) FROM oidc_tokens WHERE length(token_hash) = 32");
    assert!(stored >= 6);
}

#[tokio::test]
async fn logout_session_revocation_and_disable_end_every_derived_token() {
    let h = start().await;
    let id = Identity::new();
    let wiki = (WIKI, WIKI_SECRET);

    // Logout.
    let mut browser = h.browser();
    let tokens = wiki_tokens(&h, &mut browser, &id).await;
    let logout = browser.post("/logout").await;
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    assert_revoked(&h, wiki, &tokens).await;

    // The session revoked from another browser's account page.
    let mut phone = h.browser();
    let tokens = wiki_tokens(&h, &mut phone, &id).await;
    let mut laptop = h.logged_in_browser(&id, "Laptop").await;
    let phone_session: i64 = h.value("SELECT id FROM sessions ORDER BY id LIMIT 1");
    let revoke = format!("/account/sessions/{phone_session}/revoke");
    assert_eq!(laptop.post(&revoke).await.status(), StatusCode::SEE_OTHER);
    assert_revoked(&h, wiki, &tokens).await;

    // The identity disabled by its owner's SQRL client.
    let tokens = wiki_tokens(&h, &mut laptop, &id).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&h, access).await.0, StatusCode::OK);
    let mut c = SqrlConversation::new(&h.http, &h.minted_url().await);
    c.query(&id, NONE).await;
    assert_tif(&c.run(Request::new(Command::Disable, &id)).await, 0x0D);
    assert_revoked(&h, wiki, &tokens).await;
    let grants = h.count("SELECT count(*) FROM oidc_grants");
    assert_eq!(grants, 0, "no grant outlives its session");
}

#[tokio::test]
async fn secrets_and_tokens_never_reach_the_metrics() {
    let h = Harness::start_with(|config| {
        with_clients(config);
        config.operator_token = Some(OperatorToken::new(OPERATOR_TOKEN));
    })
    .await;
    let id = Identity::new();
    let mut browser = h.browser();
    let tokens = wiki_tokens(&h, &mut browser, &id).await;
    let metrics = h
        .http
        .get(h.url("/metrics"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for secret in [
        tokens["access_token"].as_str().unwrap(),
        tokens["refresh_token"].as_str().unwrap(),
        WIKI_SECRET,
    ] {
        assert!(!metrics.contains(secret));
    }
    assert!(
        metrics.contains("sqrl_oidc_outcomes_total{outcome=\"tokens-issued\"} 1"),
        "{metrics}"
    );
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{WIKI}:{WIKI_SECRET}"));
    assert!(!metrics.contains(&basic));
}

#[tokio::test]
async fn the_provider_is_off_without_clients() {
    let h = Harness::start().await;
    assert_eq!(
        h.get("/.well-known/openid-configuration").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.get("/oidc/authorize").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_postgres,
    ignore = "needs SQRL_TEST_POSTGRES=postgres://user@host/db"
)]
async fn two_instances_on_one_postgres_database_share_keys_grants_and_tokens() {
    let database = TestDatabase::create().await;
    // Both answer one public name, as behind a load balancer; each test
    // client reaches one of them under it.
    let public = "sqrl.test";
    let start = || async {
        let mut config = Config::for_tests("unused.db");
        config.rate_limit = None;
        config.db = Database::Postgres(database.url());
        config.public_origin =
            Some(sqrl_server::config::PublicOrigin::parse(&format!("http://{public}")).unwrap());
        with_clients(&mut config);
        sqrl_server::start(config).await.unwrap()
    };
    let a = start().await;
    let b = start().await;
    let reaching = |server: &sqrl_server::RunningServer| {
        reqwest::Client::builder()
            .resolve(public, server.addr())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    };
    let (http_a, http_b) = (reaching(&a), reaching(&b));
    let base = format!("http://{public}");

    // Both publish the same key set.
    let jwks = |http: &reqwest::Client| {
        let request = http.get(format!("{base}/oidc/jwks"));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let (jwks_a, jwks_b) = (jwks(&http_a).await, jwks(&http_b).await);
    assert_eq!(jwks_a, jwks_b);
    // One key per algorithm, made once for both.
    assert_eq!(jwks_a["keys"].as_array().unwrap().len(), 3);

    // Sign-in and consent on A, the code redeemed on B, userinfo on A,
    // refresh on B.
    let id = Identity::new();
    let mut browser = Browser::new(&http_a, &base);
    let (verifier, challenge) = pkce();
    let path = authorize_path(
        WIKI,
        WIKI_CB,
        &[
            ("state", "pg"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let login = location(&browser.get(&path).await);
    let page = browser.get(&login).await.text().await.unwrap();
    let between = |start: &str, end: &str| {
        let from = page.find(start).unwrap() + start.len();
        page[from..from + page[from..].find(end).unwrap()].replace("&amp;", "&")
    };
    let (nut, sqrl_url) = (
        between("data-nut=\"", "\""),
        between("<code id=\"url\">", "</code>"),
    );
    let mut c = SqrlConversation::new(&http_a, &sqrl_url);
    c.query(&id, NONE).await;
    c.ident(&id, NONE, true).await;
    let collect = browser.pag_url(&nut).await;
    let (_, back) = browser.collect(&collect).await;
    let html = browser.get(&back.unwrap()).await.text().await.unwrap();
    let code = param(&allow(&mut browser, &html).await, "code").unwrap();
    let token_at = |http: &reqwest::Client, form: Vec<(&'static str, String)>| {
        http.post(format!("{base}/oidc/token"))
            .basic_auth(WIKI, Some(WIKI_SECRET))
            .form(&form)
            .send()
    };
    let redeem = |code: &str, verifier: &str| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", WIKI_CB.to_owned()),
            ("code_verifier", verifier.to_owned()),
        ]
    };
    let tokens: Value = token_at(&http_b, redeem(&code, &verifier))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let userinfo_at = |http: &reqwest::Client| {
        http.get(format!("{base}/oidc/userinfo"))
            .bearer_auth(&access)
            .send()
    };
    assert_eq!(userinfo_at(&http_a).await.unwrap().status(), StatusCode::OK);
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let refreshed = token_at(
        &http_b,
        vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh_token),
        ],
    )
    .await
    .unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);
    // The code replayed on A revokes what B issued.
    let replay = token_at(&http_a, redeem(&code, &verifier)).await.unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        userinfo_at(&http_b).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    a.shutdown().await;
    b.shutdown().await;
    database.drop().await;
}

/// A relying party's back-channel logout endpoint: keeps each
/// `logout_token` it is sent; answers 503 to the first `refuse_first`
/// requests (an app restarting), 200 after.
struct LogoutReceiver {
    url: String,
    tokens: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl LogoutReceiver {
    async fn start(refuse_first: usize) -> Self {
        use std::sync::atomic::Ordering;
        let tokens = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (kept, counted) = (tokens.clone(), requests.clone());
        let app = axum::Router::new().route(
            "/backchannel",
            axum::routing::post(move |body: String| {
                let (kept, counted) = (kept.clone(), counted.clone());
                async move {
                    if counted.fetch_add(1, Ordering::SeqCst) < refuse_first {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let token = url::form_urlencoded::parse(body.as_bytes())
                        .find(|(name, _)| name == "logout_token")
                        .map(|(_, value)| value.into_owned())
                        .unwrap_or_default();
                    kept.lock().unwrap().push(token);
                    StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/backchannel", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url,
            tokens,
            requests,
        }
    }

    /// The tokens received, once there are `count` of them (within 15 s).
    async fn received(&self, count: usize) -> Vec<String> {
        for _ in 0..150 {
            let tokens = self.tokens.lock().unwrap().clone();
            if tokens.len() >= count {
                return tokens;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!(
            "{count} logout tokens expected; got {:?} after {} requests",
            self.tokens.lock().unwrap(),
            self.requests.load(std::sync::atomic::Ordering::SeqCst)
        );
    }
}

/// The wiki alone, with its back-channel logout endpoint at `url`.
fn wiki_told_at(url: String) -> OidcSettings {
    OidcSettings {
        clients: vec![ClientSettings {
            client_id: WIKI.into(),
            client_secret: Some(ClientSecretText::new(WIKI_SECRET)),
            redirect_uris: vec![WIKI_CB.into()],
            backchannel_logout_uri: Some(url),
            ..ClientSettings::default()
        }],
        ..OidcSettings::default()
    }
}

/// The claims of a logout token, verified as a relying party must (§2.6):
/// signature, `typ`, issuer, audience, the event, no `nonce`.
async fn verify_logout_token(h: &Harness, token: &str, audience: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let jwks: JwkSet = h.get("/oidc/jwks").await.json().await.unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[h.base()]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "iat"]);
    let claims =
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .unwrap_or_else(|e| panic!("logout token refused: {e}"))
            .claims;
    assert!(
        claims["events"]
            .get("http://schemas.openid.net/event/backchannel-logout")
            .is_some(),
        "{claims}"
    );
    assert!(claims.get("nonce").is_none(), "{claims}");
    assert!(claims["jti"].as_str().is_some_and(|jti| !jti.is_empty()));
    claims
}

#[tokio::test]
async fn relying_parties_are_told_by_back_channel_when_the_session_ends() {
    let receiver = LogoutReceiver::start(1).await;
    let url = receiver.url.clone();
    let h = Harness::start_with(move |config| {
        // The wiki asks to be told; the chat does not.
        let mut settings = wiki_told_at(url);
        settings.clients.push(ClientSettings {
            client_id: CHAT.into(),
            client_secret: Some(ClientSecretText::new(CHAT_SECRET)),
            redirect_uris: vec![CHAT_CB.into()],
            ..ClientSettings::default()
        });
        config.oidc = OidcConfig::from_settings(&settings).unwrap();
        config.webhook_delivery.retry_base = std::time::Duration::from_secs(1);
    })
    .await;
    let id = Identity::new();
    let mut browser = h.browser();
    let tokens = wiki_tokens(&h, &mut browser, &id).await;
    let signed_in = verify_id_token(&h, tokens["id_token"].as_str().unwrap(), WIKI).await;
    let sid = signed_in["sid"].as_str().unwrap().to_owned();
    // A second sign-in of the wiki in the same session, and the chat's.
    wiki_tokens(&h, &mut browser, &id).await;
    let (code, verifier) = code_with_pkce(&h, &mut browser, &id, (CHAT, CHAT_CB), &[]).await;
    assert_eq!(
        exchange(&h, (CHAT, CHAT_SECRET), &code, CHAT_CB, &verifier)
            .await
            .0,
        StatusCode::OK
    );
    assert!(receiver.tokens.lock().unwrap().is_empty());

    // The owner disables the identity from their SQRL client: the session
    // ends, and the wiki is told once (after one refused attempt), for
    // the session it knows, with the subject it knows.
    let mut c = SqrlConversation::new(&h.http, &h.minted_url().await);
    c.query(&id, NONE).await;
    assert_tif(&c.run(Request::new(Command::Disable, &id)).await, 0x0D);
    let received = receiver.received(1).await;
    let claims = verify_logout_token(&h, &received[0], WIKI).await;
    assert_eq!(claims["sid"], sid.as_str());
    assert_eq!(claims["sub"], signed_in["sub"]);
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        120
    );
    assert_revoked(&h, (WIKI, WIKI_SECRET), &tokens).await;
    // Retried once after the 503, then never again, and nothing for the
    // chat, which registered no endpoint.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        receiver.requests.load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    assert_eq!(receiver.tokens.lock().unwrap().len(), 1);
    let pending: i64 = h.value("SELECT count(*) FROM webhook_outbox WHERE status <> 'delivered'");
    assert_eq!(pending, 0);
}

#[tokio::test]
async fn logout_here_tells_the_relying_party_of_that_session_only() {
    logout_tells_the_relying_party_of_that_session(None).await;
}

#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs SQRL_TEST_POSTGRES=postgres://user@host/db"
)]
async fn on_postgres_logout_tells_the_relying_party_of_that_session_only() {
    let database = TestDatabase::create().await;
    logout_tells_the_relying_party_of_that_session(Some(database.url())).await;
    database.drop().await;
}

/// Two browsers of one person signed in to the wiki; one logs out. On
/// SQLite, or on the PostgreSQL database `postgres`.
async fn logout_tells_the_relying_party_of_that_session(postgres: Option<String>) {
    let receiver = LogoutReceiver::start(0).await;
    let url = receiver.url.clone();
    let h = Harness::start_with(move |config| {
        if let Some(postgres) = postgres {
            config.db = Database::Postgres(postgres);
        }
        let settings = wiki_told_at(url);
        config.oidc = OidcConfig::from_settings(&settings).unwrap();
    })
    .await;
    let id = Identity::new();
    let mut laptop = h.browser();
    let mut phone = h.browser();
    let on_laptop = wiki_tokens(&h, &mut laptop, &id).await;
    let on_phone = wiki_tokens(&h, &mut phone, &id).await;
    let laptop_sid =
        verify_id_token(&h, on_laptop["id_token"].as_str().unwrap(), WIKI).await["sid"].clone();
    let phone_sid =
        verify_id_token(&h, on_phone["id_token"].as_str().unwrap(), WIKI).await["sid"].clone();
    assert_ne!(laptop_sid, phone_sid);

    assert_eq!(laptop.post("/logout").await.status(), StatusCode::SEE_OTHER);
    let received = receiver.received(1).await;
    let claims = verify_logout_token(&h, &received[0], WIKI).await;
    assert_eq!(claims["sid"], laptop_sid);
    assert_revoked(&h, (WIKI, WIKI_SECRET), &on_laptop).await;
    // The phone's session, and its tokens, live on.
    assert_eq!(
        userinfo(&h, on_phone["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::OK
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(receiver.tokens.lock().unwrap().len(), 1);
}

/// `/oidc/logout?...` with `pairs`.
fn logout_path(pairs: &[(&str, &str)]) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("/oidc/logout?{query}")
}

#[tokio::test]
async fn a_relying_party_signs_the_person_out_with_the_hint_of_their_session() {
    let h = start().await;
    let id = Identity::new();
    let mut browser = h.browser();
    let tokens = wiki_tokens(&h, &mut browser, &id).await;
    let hint = tokens["id_token"].as_str().unwrap();

    let response = browser
        .get(&logout_path(&[
            ("id_token_hint", hint),
            ("post_logout_redirect_uri", WIKI_BYE),
            ("state", "bye-1"),
        ]))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), format!("{WIKI_BYE}?state=bye-1"));
    assert!(!browser.has_cookie("sqrl_session"), "the cookie is removed");
    assert_revoked(&h, (WIKI, WIKI_SECRET), &tokens).await;
    assert_eq!(h.count("SELECT count(*) FROM sessions"), 0);
}

#[tokio::test]
async fn a_sign_out_without_the_sessions_hint_asks_first_and_only_this_site_can_answer() {
    let h = start().await;
    let id = Identity::new();
    let mut laptop = h.browser();
    let mut phone = h.browser();
    let on_laptop = wiki_tokens(&h, &mut laptop, &id).await;
    let on_phone = wiki_tokens(&h, &mut phone, &id).await;

    // A link with only the client, or with the phone's ID token, opened
    // in the laptop's browser: a question, not a sign-out.
    let phone_hint = on_phone["id_token"].as_str().unwrap();
    for pairs in [
        vec![("client_id", WIKI), ("post_logout_redirect_uri", WIKI_BYE)],
        vec![
            ("id_token_hint", phone_hint),
            ("post_logout_redirect_uri", WIKI_BYE),
        ],
    ] {
        let response = laptop.get(&logout_path(&pairs)).await;
        assert_eq!(response.status(), StatusCode::OK, "{pairs:?}");
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("form-action 'self' http://127.0.0.1:9"),
            "{csp}"
        );
        let html = response.text().await.unwrap();
        assert!(html.contains("id=\"sign-out\""), "{html}");
    }
    assert_eq!(laptop.get("/account").await.status(), StatusCode::OK);

    let request = logout_path(&[
        ("client_id", WIKI),
        ("post_logout_redirect_uri", WIKI_BYE),
        ("state", "s2"),
    ]);
    let form = format!(
        "request={}&confirm=yes",
        encoded(request.strip_prefix("/oidc/logout?").unwrap())
    );
    // Another site's page posting the form signs nobody out.
    let forged = laptop
        .request(reqwest::Method::POST, "/oidc/logout")
        .header("sec-fetch-site", "cross-site")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        userinfo(&h, on_laptop["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::OK
    );
    // The person clicks "Sign out" on our page.
    let answered = laptop
        .request(reqwest::Method::POST, "/oidc/logout")
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&answered), format!("{WIKI_BYE}?state=s2"));
    assert_revoked(&h, (WIKI, WIKI_SECRET), &on_laptop).await;
    // The phone's session was never the one signed out.
    assert_eq!(
        userinfo(&h, on_phone["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_sign_out_request_is_refused_unless_its_return_is_registered_and_its_hint_ours() {
    let h = start().await;
    let id = Identity::new();
    let mut browser = h.browser();
    let tokens = wiki_tokens(&h, &mut browser, &id).await;
    let hint = tokens["id_token"].as_str().unwrap();
    // One claim changed, the signature kept.
    let mut parts: Vec<String> = hint.split('.').map(str::to_owned).collect();
    let mut claims: Value = serde_json::from_slice(&base64url::decode(&parts[1]).unwrap()).unwrap();
    claims["sid"] = Value::String("another-session".into());
    parts[1] = base64url::encode(serde_json::to_vec(&claims).unwrap());
    let tampered = parts.join(".");
    for pairs in [
        vec![
            ("client_id", WIKI),
            ("post_logout_redirect_uri", "https://evil.example/"),
        ],
        vec![("client_id", WIKI), ("post_logout_redirect_uri", WIKI_CB)],
        vec![("post_logout_redirect_uri", WIKI_BYE)],
        vec![("client_id", CHAT), ("post_logout_redirect_uri", WIKI_BYE)],
        vec![
            ("id_token_hint", tampered.as_str()),
            ("post_logout_redirect_uri", WIKI_BYE),
        ],
        vec![("id_token_hint", hint), ("client_id", CHAT)],
    ] {
        let response = browser.get(&logout_path(&pairs)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{pairs:?}");
        assert!(response.headers().get(LOCATION).is_none());
    }
    assert_eq!(
        userinfo(&h, tokens["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::OK
    );
    // Without a session, a valid request just returns.
    let mut stranger = h.browser();
    let response = stranger
        .get(&logout_path(&[
            ("id_token_hint", hint),
            ("post_logout_redirect_uri", WIKI_BYE),
        ]))
        .await;
    assert_eq!(location(&response), WIKI_BYE);
}

#[tokio::test]
async fn a_client_gets_its_id_tokens_signed_with_the_algorithm_it_registered() {
    let h = Harness::start_with(|config| {
        let client = |id: &str, alg: Option<&str>| ClientSettings {
            client_id: id.into(),
            client_secret: Some(ClientSecretText::new(WIKI_SECRET)),
            redirect_uris: vec![format!("http://127.0.0.1:9/{id}/callback")],
            id_token_signed_response_alg: alg.map(str::to_owned),
            ..ClientSettings::default()
        };
        let settings = OidcSettings {
            clients: vec![
                client("default", None),
                client("rsa", Some("RS256")),
                client("edwards", Some("EdDSA")),
            ],
            ..OidcSettings::default()
        };
        config.oidc = OidcConfig::from_settings(&settings).unwrap();
    })
    .await;
    let discovery: Value = h
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        discovery["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256", "RS256", "EdDSA"])
    );
    let jwks: Value = h.get("/oidc/jwks").await.json().await.unwrap();
    let kinds: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kty"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 3);
    for kty in ["EC", "RSA", "OKP"] {
        assert!(kinds.contains(&kty), "{jwks}");
    }

    let id = Identity::new();
    let mut browser = h.browser();
    let mut subjects = Vec::new();
    for (client, alg) in [
        ("default", Algorithm::ES256),
        ("rsa", Algorithm::RS256),
        ("edwards", Algorithm::EdDSA),
    ] {
        let cb = format!("http://127.0.0.1:9/{client}/callback");
        let (code, verifier) = code_with_pkce(&h, &mut browser, &id, (client, &cb), &[]).await;
        let (status, tokens) = exchange(&h, (client, WIKI_SECRET), &code, &cb, &verifier).await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        let claims = verify_signed_by(&h, tokens["id_token"].as_str().unwrap(), client, alg).await;
        subjects.push(claims["sub"].as_str().unwrap().to_owned());
    }
    assert_eq!(subjects.len(), 3);
}

#[tokio::test]
async fn acr_values_ask_a_phone_signed_session_for_a_same_device_sign_in() {
    let h = start().await;
    let id = Identity::new();
    let mut browser = h.browser();
    let first = wiki_tokens(&h, &mut browser, &id).await;
    let first = verify_id_token(&h, first["id_token"].as_str().unwrap(), WIKI).await;
    assert_eq!(first["acr"], "urn:sqrl:xdev");

    let (verifier, challenge) = pkce();
    let path = authorize_path(
        WIKI,
        WIKI_CB,
        &[
            ("acr_values", "urn:sqrl:cps"),
            ("state", "c"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    // Signed in from a phone: asked to sign in again, even with a session.
    let login = location(&browser.get(&path).await);
    assert!(login.ends_with("&fresh=1"), "{login}");
    // This time with the SQRL app on this device (CPS): its link signs the
    // browser in and returns it to the request.
    let page = browser.get(&login).await.text().await.unwrap();
    let from = page.find("<code id=\"url\">").unwrap() + "<code id=\"url\">".len();
    let url = page[from..from + page[from..].find('<').unwrap()].replace("&amp;", "&");
    let mut c = SqrlConversation::new(&h.http, &url);
    c.query(&id, sqrl_core::msg::ClientOptions::CPS).await;
    let reply = c
        .ident(&id, sqrl_core::msg::ClientOptions::CPS, false)
        .await;
    let (status, back) = browser.collect(reply.url().unwrap()).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let response = browser.get(&back.unwrap()).await;
    let code = param(&location(&response), "code").expect("a code, no more sign-in");
    let (_, tokens) = exchange(&h, (WIKI, WIKI_SECRET), &code, WIKI_CB, &verifier).await;
    let claims = verify_id_token(&h, tokens["id_token"].as_str().unwrap(), WIKI).await;
    assert_eq!(claims["acr"], "urn:sqrl:cps");
    assert_eq!(claims["amr"], serde_json::json!(["sqrl", "cps"]));
    // The same-device session now satisfies the request at once.
    let again = browser.get(&path).await;
    assert!(param(&location(&again), "code").is_some());
}

#[tokio::test]
async fn the_operator_api_lists_the_registered_clients_without_their_secrets() {
    let h = Harness::start_with(|config| {
        with_clients(config);
        config.operator_token = Some(OperatorToken::new(OPERATOR_TOKEN));
    })
    .await;
    let refused = h.http.get(h.url("/api/oidc/clients")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let listed = h
        .http
        .get(h.url("/api/oidc/clients"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    let text = listed.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    let ids: Vec<&str> = body["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|client| client["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [WIKI, CHAT, SPA]);
    assert_eq!(body["clients"][0]["name"], "The wiki");
    assert_eq!(body["clients"][0]["post_logout_redirect_uris"][0], WIKI_BYE);
    assert_eq!(body["clients"][2]["public"], true);
    assert_eq!(body["clients"][2]["subject_type"], "public");
    assert_eq!(body["clients"][0]["id_token_signed_response_alg"], "ES256");
    let hash = sqrl_server::oidc::clients::SecretHash::of(WIKI_SECRET).to_hex();
    assert!(
        !text.contains(WIKI_SECRET) && !text.contains(&hash),
        "{text}"
    );
}

#[tokio::test]
async fn signing_keys_sealed_at_rest_open_only_with_their_key_file() {
    use sqrl_server::oidc::sealing::{KeyEncryptionKey, MAGIC};
    const KEK: &str = "5f1e0c9a3b7d2e4f60718293a4b5c6d7e8f90112233445566778899aabbccdde";
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sqrl.db");
    let start_with_kek = |kek: Option<String>| {
        let mut config = Config::for_tests(&db);
        config.rate_limit = None;
        with_clients(&mut config);
        config.oidc.key_encryption_key = kek.map(|hex| KeyEncryptionKey::parse(&hex).unwrap());
        sqrl_server::start(config)
    };
    let jwks = |server: &sqrl_server::RunningServer| {
        let url = format!("{}/oidc/jwks", server.base_url());
        async move {
            let response = common::http_client().get(url).send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };

    let sealed = start_with_kek(Some(KEK.into())).await.unwrap();
    let (status, published) = jwks(&sealed).await;
    assert_eq!(status, StatusCode::OK);
    let stored: Vec<Vec<u8>> = common::rows(
        &rusqlite::Connection::open(&db).unwrap(),
        "SELECT private_der FROM oidc_signing_keys",
        |row| row.get(0),
    );
    assert_eq!(stored.len(), 3);
    for key in &stored {
        assert!(key.starts_with(MAGIC), "a key is stored unsealed");
    }
    sealed.shutdown().await;

    // Without the file, or with another, nothing is signed or published,
    // and no new key is made in place of the sealed ones.
    let other = KEK.replace('5', "6");
    for kek in [None, Some(other)] {
        let server = start_with_kek(kek.clone()).await.unwrap();
        let (status, body) = jwks(&server).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{kek:?}: {body}");
        server.shutdown().await;
    }
    let count: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM oidc_signing_keys", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(count, 3);

    // With it, the same keys are published again.
    let again = start_with_kek(Some(KEK.into())).await.unwrap();
    assert_eq!(jwks(&again).await, (StatusCode::OK, published));
    again.shutdown().await;
}

#[tokio::test]
async fn a_browser_app_may_call_the_token_side_from_its_own_origin_only() {
    let h = start().await;
    let spa_origin = "http://localhost:9";
    let preflight = |origin: &'static str| {
        h.http
            .request(reqwest::Method::OPTIONS, h.url("/oidc/token"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight(spa_origin).await.unwrap();
    assert_eq!(allowed.status(), StatusCode::NO_CONTENT);
    assert_eq!(allowed.headers()["access-control-allow-origin"], spa_origin);
    assert!(
        allowed.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    // The wiki is confidential (its server calls, not a page), and any
    // other page is nobody's: no permission for either.
    for origin in ["http://127.0.0.1:9", "https://evil.example"] {
        let refused = preflight(origin).await.unwrap();
        assert!(
            refused
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{origin}"
        );
    }
    // The answers themselves name the origin, and vary by it.
    let (verifier, challenge) = pkce();
    let id = Identity::new();
    let mut browser = h.browser();
    let path = authorize_path(
        SPA,
        SPA_CB,
        &[
            ("state", "s"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let code = code_of(&h, run(&h, &mut browser, &path, &id).await, "s");
    let response = h
        .http
        .post(h.url("/oidc/token"))
        .header("origin", spa_origin)
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", SPA),
            ("code", code.as_str()),
            ("redirect_uri", SPA_CB),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        spa_origin
    );
    assert!(
        response.headers()["vary"]
            .to_str()
            .unwrap()
            .contains("origin")
    );
    // Discovery and the key set are for everyone.
    for path in ["/.well-known/openid-configuration", "/oidc/jwks"] {
        let response = h
            .http
            .get(h.url(path))
            .header("origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "*",
            "{path}"
        );
    }
}
