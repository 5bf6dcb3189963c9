//! The agent's side of signing: the socket requests that need the unlocked
//! identity, answered inside the agent.
//!
//! | op         | asks                                               | answers                          |
//! |------------|----------------------------------------------------|----------------------------------|
//! | `site`     | `site`, `alt_id`                                   | `idk`, `pidk[]`, `ilk`, flags    |
//! | `sign`     | `site`, `alt_id`, `key`, `index`, `message`        | `signature`, `public_key`        |
//! | `index`    | `site`, `alt_id`, `key`, `index`, `sin`            | `ins`                            |
//! | `sign_urs` | `previous`, `suk`, `message`                       | `signature`                      |
//!
//! `key` is `current` or `previous` (then `index`, 0 = newest); `message` is
//! base64url. The agent derives the key for the site the request names, uses
//! it and drops it: what leaves is public keys, signatures, and one site's
//! indexed secret for the `sin` that site asked for (SPEC 4.6), which the
//! client sends to that site anyway. No seed, no IUK, no master key.

use serde_json::{Value, json};
use sqrl_core::base64url;
use sqrl_core::keys::{ServerUnlockKey, SiteKey, UrsSigner as _};
use sqrl_core::url::SiteKeyString;
use zeroize::Zeroizing;

use super::socket::plain;
use crate::identity::Unlocked;

/// The ops answered here.
pub const OPS: [&str; 4] = ["site", "sign", "index", "sign_urs"];

/// Answers one of [`OPS`] with the unlocked identity.
pub fn answer(op: &str, request: &Value, unlocked: &Unlocked) -> Zeroizing<String> {
    let answered = match op {
        "site" => site(request, unlocked),
        "sign" => sign(request, unlocked),
        "index" => index(request, unlocked),
        "sign_urs" => sign_urs(request, unlocked),
        _ => Err("bad_request"),
    };
    answered.unwrap_or_else(|error| plain(&json!({ "error": error })))
}

/// An answer, or the error code to send instead.
type Answered = std::result::Result<Zeroizing<String>, &'static str>;

fn requested_site(request: &Value) -> std::result::Result<SiteKeyString, &'static str> {
    let domain = request["site"].as_str().ok_or("bad_request")?;
    let site = SiteKeyString::new(domain.to_owned());
    Ok(match request["alt_id"].as_str() {
        Some(alt) => site.with_alt_id(alt),
        None => site,
    })
}

fn requested_index(value: &Value) -> std::result::Result<usize, &'static str> {
    value
        .as_u64()
        .and_then(|i| usize::try_from(i).ok())
        .ok_or("bad_request")
}

fn requested_message(request: &Value) -> std::result::Result<Vec<u8>, &'static str> {
    let text = request["message"].as_str().ok_or("bad_request")?;
    base64url::decode(text).map_err(|_| "bad_request")
}

/// The key `request` names for its site, derived here and now.
fn requested_key(
    request: &Value,
    unlocked: &Unlocked,
) -> std::result::Result<SiteKey, &'static str> {
    let site = requested_site(request)?;
    match request["key"].as_str() {
        Some("current") => Ok(unlocked.site_key(&site)),
        Some("previous") => unlocked
            .previous_site_key(&site, requested_index(&request["index"])?)
            .ok_or("no_such_previous_identity"),
        _ => Err("bad_request"),
    }
}

/// What a transaction with one site starts from: all public.
fn site(request: &Value, unlocked: &Unlocked) -> Answered {
    let site = requested_site(request)?;
    let previous: Vec<String> = unlocked
        .previous_site_keys(&site)
        .iter()
        .map(|key| key.public_key().to_base64url())
        .collect();
    let (sqrl_only, hard_lock) = unlocked.sqrl_only_and_hard_lock();
    super::log(&format!("signing for {}", site.domain()));
    Ok(plain(&json!({
        "idk": unlocked.site_key(&site).public_key().to_base64url(),
        "pidk": previous,
        "ilk": base64url::encode(unlocked.lock_key().as_bytes()),
        "sqrl_only": sqrl_only,
        "hard_lock": hard_lock,
    })))
}

fn sign(request: &Value, unlocked: &Unlocked) -> Answered {
    let message = requested_message(request)?;
    let key = requested_key(request, unlocked)?;
    Ok(plain(&json!({
        "signature": key.sign(&message).to_base64url(),
        "public_key": key.public_key().to_base64url(),
    })))
}

/// The answer line is written by hand, so that the secret's text only ever
/// lives in buffers wiped on drop (base64url needs no JSON escaping).
fn index(request: &Value, unlocked: &Unlocked) -> Answered {
    let sin = request["sin"].as_str().ok_or("bad_request")?;
    let key = requested_key(request, unlocked)?;
    let ins = key.indexed_secret(sin);
    let text = Zeroizing::new(base64url::encode(ins.as_bytes()));
    let mut line = Zeroizing::new(String::with_capacity(64));
    line.push_str("{\"ins\":\"");
    line.push_str(&text);
    line.push_str("\"}");
    Ok(line)
}

/// `urs` for a previous identity whose association a site is moving to the
/// current one (SPEC 4.5): the IUK stays here, with the SUK the site returned.
fn sign_urs(request: &Value, unlocked: &Unlocked) -> Answered {
    let message = requested_message(request)?;
    let suk = request["suk"]
        .as_str()
        .and_then(|text| ServerUnlockKey::from_base64url(text).ok())
        .ok_or("bad_request")?;
    let piuk = unlocked
        .previous_unlock_key(requested_index(&request["previous"])?)
        .ok_or("no_such_previous_identity")?;
    let signature = piuk.sign_urs(&suk, &message).map_err(|_| "unusable_suk")?;
    Ok(plain(&json!({ "signature": signature.to_base64url() })))
}
