//! A third-party relying party's view of the OpenID Connect provider: the
//! `openidconnect` crate (the Rust OpenID Connect client library) does
//! discovery, builds the authorization request, exchanges the code, verifies
//! the ID token, reads userinfo, refreshes, introspects and revokes, with no
//! knowledge of this server beyond its issuer URL. Then the example app
//! (`examples/relying_party.rs`), built on the same crate, is run through a
//! whole sign-in and out, and through the replies it must refuse.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

// The example is documentation; compiling it into this test and driving its
// router keeps it working.
#[path = "../../examples/relying_party.rs"]
#[allow(dead_code)]
mod relying_party;

use std::str::FromStr as _;

use base64::Engine as _;
use common::oidc::{Outcome, encoded, location, param, run};
use common::{Browser, Harness, Identity, self_signed_tls};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient,
    CoreClientAuthMethod, CoreGenderClaim, CoreGrantType, CoreIdToken, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm,
    CoreResponseMode, CoreResponseType, CoreRevocableToken, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalClaims, AdditionalProviderMetadata, AuthorizationCode, ClaimsVerificationError,
    ClientId, ClientSecret, CsrfToken, IntrospectionUrl, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, ProviderMetadata, RedirectUrl, RequestTokenError, RevocationUrl, Scope,
    TokenIntrospectionResponse, TokenResponse, UserInfoClaims,
};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use sqrl_server::config::Config;
use sqrl_server::oidc::clients::{ClientSecretText, ClientSettings, OidcConfig, OidcSettings};

const APP: &str = "third-party-app";
const APP_SECRET: &str = "third-party-secret-0123456789-0123456789";
const APP_CB: &str = "http://127.0.0.1:9/app/callback";

/// What discovery offers beyond the metadata `openidconnect` types itself
/// (RFC 8414 names these endpoints).
#[derive(Clone, Debug, Deserialize, Serialize)]
struct OAuthEndpoints {
    revocation_endpoint: String,
    introspection_endpoint: String,
}
impl AdditionalProviderMetadata for OAuthEndpoints {}

type Metadata = ProviderMetadata<
    OAuthEndpoints,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// The provider's claim of scope `sqrl`.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct SqrlClaims {
    sqrl_fingerprint: Option<String>,
}
impl AdditionalClaims for SqrlClaims {}

/// One confidential client, `client_id` back to `callback`.
fn with_client(config: &mut Config, client_id: &str, secret: &str, callback: &str) {
    let settings = OidcSettings {
        clients: vec![ClientSettings {
            client_id: client_id.into(),
            name: Some("The Third-Party App".into()),
            client_secret: Some(ClientSecretText::new(secret)),
            redirect_uris: vec![callback.into()],
            ..ClientSettings::default()
        }],
        ..OidcSettings::default()
    };
    config.oidc = OidcConfig::from_settings(&settings).unwrap();
}

/// The fingerprint the account page shows the person signed in `browser`.
async fn fingerprint_on_account_page(browser: &mut Browser, expected: &str) {
    let account = browser.get("/account").await.text().await.unwrap();
    assert!(
        account.contains(expected),
        "the account page shows {expected}"
    );
}

/// `token` with one claim of its payload changed and its signature kept.
fn with_claim_changed(token: &str, claim: &str, value: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS");
    let mut payload: serde_json::Value =
        serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    assert!(payload.get(claim).is_some(), "{claim} in {payload}");
    payload[claim] = serde_json::Value::String(value.into());
    let payload = b64.encode(serde_json::to_vec(&payload).unwrap());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

/// A server with built-in TLS (a self-signed certificate for 127.0.0.1),
/// its test client trusting it, and the directory of its certificate. The
/// crate talks to the revocation endpoint only over https (RFC 7009 §2).
async fn https_server(configure: impl FnOnce(&mut Config)) -> (Harness, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (tls, certified) = self_signed_tls(dir.path());
    let mut h = Harness::start_with(|config| {
        configure(config);
        config.tls = Some(tls);
    })
    .await;
    assert!(h.base().starts_with("https://"), "{}", h.base());
    let trusted = reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap();
    h.http = reqwest::Client::builder()
        // The crate asks for a client that follows no redirects (SSRF).
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(trusted)
        .build()
        .unwrap();
    (h, dir)
}

#[tokio::test]
async fn the_openidconnect_crate_signs_a_person_in_refreshes_and_revokes() {
    let (h, _certificate) =
        https_server(|config| with_client(config, APP, APP_SECRET, APP_CB)).await;
    let http = h.http.clone();
    let id = Identity::new();
    let mut browser = h.browser();

    // Discovery from the issuer URL alone; the crate checks that the
    // document names the same issuer and fetches the published keys.
    let issuer = IssuerUrl::new(h.base()).unwrap();
    let metadata = Metadata::discover_async(issuer, &http)
        .await
        .unwrap_or_else(|e| panic!("discovery: {e:?}"));
    assert_eq!(metadata.issuer().as_str(), h.base());
    assert!(!metadata.jwks().keys().is_empty(), "keys are published");
    let endpoints = metadata.additional_metadata().clone();
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(APP.into()),
        Some(ClientSecret::new(APP_SECRET.into())),
    )
    .set_redirect_uri(RedirectUrl::new(APP_CB.into()).unwrap())
    .set_revocation_url(RevocationUrl::new(endpoints.revocation_endpoint).unwrap())
    .set_introspection_url(IntrospectionUrl::new(endpoints.introspection_endpoint).unwrap());

    // The authorization request: code flow, PKCE S256, state and nonce.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("sqrl".into()))
        .set_pkce_challenge(challenge)
        .url();
    assert!(
        authorize_url
            .as_str()
            .starts_with(&h.url("/oidc/authorize?"))
    );

    // The person signs in with SQRL and allows the app.
    let Outcome::Client(back) = run(&h, &mut browser, authorize_url.as_str(), &id).await else {
        panic!("the provider did not send the person back");
    };
    assert!(back.starts_with(APP_CB), "{back}");
    assert_eq!(
        param(&back, "state").as_deref(),
        Some(state.secret().as_str())
    );
    // RFC 9207: the reply names its issuer (the crate leaves this check to the app).
    assert_eq!(param(&back, "iss").as_deref(), Some(h.base().as_str()));
    let code = param(&back, "code").unwrap();

    // The code for tokens, authenticated with client_secret_basic (the
    // crate's default), proving PKCE.
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("code exchange: {e:?}"));
    let scopes: Vec<String> = tokens
        .scopes()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(scopes, ["openid", "sqrl"]);

    // The crate verifies the ID token: ES256 signature against the
    // published keys, issuer, audience, expiry, and our nonce.
    let verifier = client
        .id_token_verifier()
        .set_allowed_algs([CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let id_token = tokens.id_token().expect("an ID token");
    assert_eq!(
        *id_token.signing_alg().unwrap(),
        CoreJwsSigningAlgorithm::EcdsaP256Sha256
    );
    let claims = id_token
        .claims(&verifier, &nonce)
        .unwrap_or_else(|e| panic!("ID token refused: {e:?}"));
    let subject = claims.subject().clone();
    assert_eq!(claims.issuer().as_str(), h.base());
    assert_eq!(claims.audiences().len(), 1);
    assert_eq!(claims.audiences()[0].as_str(), APP);
    assert_eq!(
        claims.auth_context_ref().map(|acr| acr.as_str()),
        Some(sqrl_server::oidc::ACR_SQRL)
    );
    let amr: Vec<&str> = claims
        .auth_method_refs()
        .unwrap()
        .iter()
        .map(|amr| amr.as_str())
        .collect();
    assert_eq!(amr, ["sqrl", "xdev"]);
    assert!(claims.auth_time().is_some());

    // The same token is refused for another nonce (a replayed response).
    assert!(matches!(
        id_token.claims(&verifier, &Nonce::new("another".into())),
        Err(ClaimsVerificationError::InvalidNonce(_))
    ));
    // And once a claim is changed, whatever the claim, for its signature
    // (the untampered copy still passes, so the change alone is refused).
    let compact = id_token.to_string();
    assert!(
        CoreIdToken::from_str(&compact)
            .unwrap()
            .claims(&verifier, &nonce)
            .is_ok()
    );
    for (claim, value) in [("sub", "someone-else"), ("aud", "third-party-app")] {
        let tampered = CoreIdToken::from_str(&with_claim_changed(&compact, claim, value)).unwrap();
        let refused = tampered.claims(&verifier, &nonce);
        assert!(
            matches!(
                refused,
                Err(ClaimsVerificationError::SignatureVerification(_))
            ),
            "{claim} changed: {refused:?}"
        );
    }

    // Userinfo: the same subject (the crate compares it), and the SQRL
    // identity's fingerprint as the account page shows it.
    let info: UserInfoClaims<SqrlClaims, CoreGenderClaim> = client
        .user_info(tokens.access_token().clone(), Some(subject.clone()))
        .unwrap()
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("userinfo: {e:?}"));
    let fingerprint = info.additional_claims().sqrl_fingerprint.clone().unwrap();
    fingerprint_on_account_page(&mut browser, &fingerprint).await;

    // Introspection (RFC 7662) of our own access token.
    let about = client
        .introspect(tokens.access_token())
        .request_async(&http)
        .await
        .unwrap();
    assert!(about.active());
    assert_eq!(about.sub(), Some(subject.as_str()));

    // Refresh: a new refresh token (rotation), an ID token for the same
    // subject, a working access token.
    let refresh_token = tokens.refresh_token().expect("a refresh token");
    let refreshed = client
        .exchange_refresh_token(refresh_token)
        .unwrap()
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("refresh: {e:?}"));
    let new_refresh = refreshed.refresh_token().expect("a rotated refresh token");
    assert_ne!(new_refresh.secret(), refresh_token.secret());
    let refreshed_claims = refreshed
        .id_token()
        .expect("an ID token on refresh")
        .claims(&verifier, &nonce)
        .unwrap_or_else(|e| panic!("refreshed ID token refused: {e:?}"));
    assert_eq!(refreshed_claims.subject(), &subject);
    let still: UserInfoClaims<SqrlClaims, CoreGenderClaim> = client
        .user_info(refreshed.access_token().clone(), Some(subject.clone()))
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(still.subject(), &subject);

    // Revocation (RFC 7009) of the refresh token ends its grant: the
    // access token dies with it, and the refresh token is refused.
    client
        .revoke_token(CoreRevocableToken::from(new_refresh.clone()))
        .unwrap()
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("revocation: {e:?}"));
    let after = client
        .user_info(refreshed.access_token().clone(), None)
        .unwrap()
        .request_async::<SqrlClaims, _, CoreGenderClaim>(&http)
        .await;
    assert!(after.is_err(), "userinfo after revocation: {after:?}");
    assert!(
        !client
            .introspect(refreshed.access_token())
            .request_async(&http)
            .await
            .unwrap()
            .active()
    );
    let refused = client
        .exchange_refresh_token(new_refresh)
        .unwrap()
        .request_async(&http)
        .await;
    match refused {
        Err(RequestTokenError::ServerResponse(error)) => {
            assert_eq!(error.error().as_ref(), "invalid_grant")
        }
        other => panic!("a revoked refresh token was answered with {other:?}"),
    }
}

const DEMO: &str = "demo";
const DEMO_SECRET: &str = "demo-app-secret-0123456789-0123456789";

/// A server with the example app registered, and the app running against
/// it: the server, and the app's base URL.
async fn server_and_example_app() -> (Harness, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let callback = format!("http://127.0.0.1:{port}/callback");
    let h = Harness::start_with(|config| with_client(config, DEMO, DEMO_SECRET, &callback)).await;
    let settings = relying_party::Settings {
        issuer: h.base(),
        client_id: DEMO.into(),
        client_secret: ClientSecret::new(DEMO_SECRET.into()),
        port,
    };
    assert!(
        !format!("{settings:?}").contains(DEMO_SECRET),
        "the secret is never printed"
    );
    let app = relying_party::app(&settings).await.unwrap();
    tokio::spawn(axum::serve(listener, app).into_future());
    (h, format!("http://127.0.0.1:{port}"))
}

/// Starts a login at the example app in `browser`, signs `id` in at the
/// provider, and returns the callback URL the provider sends the browser to.
async fn callback_of_a_login(
    h: &Harness,
    app: &str,
    browser: &mut Browser,
    id: &Identity,
) -> String {
    let started = browser.get(&format!("{app}/login")).await;
    assert_eq!(started.status(), StatusCode::SEE_OTHER);
    let to_provider = location(&started);
    assert!(
        to_provider.starts_with(&h.url("/oidc/authorize?")),
        "{to_provider}"
    );
    let Outcome::Client(callback) = run(h, browser, &to_provider, id).await else {
        panic!("the provider did not send the person back to the app");
    };
    assert!(
        callback.starts_with(&format!("{app}/callback?")),
        "{callback}"
    );
    callback
}

/// The page the example app answers `url` with in `browser`: status and text.
async fn app_page(browser: &mut Browser, url: &str) -> (StatusCode, String) {
    let response = browser.get(url).await;
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn the_example_relying_party_signs_a_person_in_and_out() {
    let (h, app) = server_and_example_app().await;
    let id = Identity::new();
    let mut browser = h.browser();

    let (status, home) = app_page(&mut browser, &format!("{app}/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(home.contains("Log in with SQRL"), "{home}");
    assert!(home.contains("action=\"/login\""), "{home}");

    let callback = callback_of_a_login(&h, &app, &mut browser, &id).await;
    let signed_in = browser.get(&callback).await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&signed_in), "/");

    // Its page names the person by the subject the provider gave this app,
    // and the SQRL identity's fingerprint from userinfo.
    let (_, page) = app_page(&mut browser, &format!("{app}/")).await;
    assert!(page.contains("Signed in"), "{page}");
    let subject = between(&page, "<code id=\"subject\">", "</code>");
    assert!(subject.len() >= 20, "a pairwise subject: {subject}");
    // The verified claims, shown as JSON (HTML-escaped).
    assert!(
        page.contains(&format!("&quot;sub&quot;: &quot;{subject}&quot;")),
        "{page}"
    );
    let fingerprint = between(&page, "<code id=\"fingerprint\">", "</code>");
    fingerprint_on_account_page(&mut browser, &fingerprint).await;

    // Logging out of the app forgets the person there.
    let out = browser
        .fetch(reqwest::Method::POST, &format!("{app}/logout"))
        .await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let (_, page) = app_page(&mut browser, &format!("{app}/")).await;
    assert!(page.contains("Log in with SQRL"), "{page}");
    assert!(!page.contains(&subject), "{page}");
}

#[tokio::test]
async fn the_example_relying_party_refuses_replies_it_did_not_ask_for() {
    let (h, app) = server_and_example_app().await;
    let id = Identity::new();
    let mut browser = h.browser();
    let callback = callback_of_a_login(&h, &app, &mut browser, &id).await;
    let login_started = browser.cookies.clone();

    // Login CSRF: a browser that started no login is handed the reply.
    let mut stranger = h.browser();
    let (status, page) = app_page(&mut stranger, &callback).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("No login was started"), "{page}");

    // A reply naming another issuer (a mix-up, RFC 9207) is refused before
    // its code is used, and ends the login it claims to answer.
    let mixed_up = callback.replace(
        &format!("iss={}", encoded(&h.base())),
        "iss=https%3A%2F%2Fprovider.example",
    );
    assert_ne!(mixed_up, callback);
    let (status, page) = app_page(&mut browser, &mixed_up).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("another issuer"), "{page}");

    // So the genuine reply, even with the login's cookie put back, finds
    // nothing left to finish.
    browser.cookies = login_started;
    let (status, page) = app_page(&mut browser, &callback).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("expired or was already used"), "{page}");

    // The reply to one login does not finish another of the same browser:
    // the state differs (its code is unused and its PKCE verifier gone, so
    // the provider would refuse it too; the state check comes first).
    let _second = callback_of_a_login(&h, &app, &mut browser, &id).await;
    let (status, page) = app_page(&mut browser, &callback).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("state does not match"), "{page}");

    // A login begun and finished in order still signs in.
    let callback = callback_of_a_login(&h, &app, &mut browser, &id).await;
    let (status, page) = app_page(&mut browser, &callback).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
}

fn between(text: &str, start: &str, end: &str) -> String {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{start} not in {text}"))
        + start.len();
    text[from..from + text[from..].find(end).unwrap()].to_owned()
}
