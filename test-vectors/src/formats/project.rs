//! The project's own vectors, for values no one has published: `urs`, `pins`,
//! a type-3 block under a known password, and complete exchanges.
//!
//! They were generated once by `generate-project-vectors` and cross-checked by
//! `tools/crosscheck.py`, which recomputes them with Python's `cryptography` and
//! `hashlib` (OpenSSL), independent of sqrl-core.

use sqrl_core::keys::{IdentityUnlockKey, RandomLockKey, ServerUnlockKey};
use sqrl_core::secret::Password;
use sqrl_core::storage::{RescueCode, S4};

use crate::exchange::{self, Step};
use crate::text::{b64_array, csv_fields, expect_eq, hex_array, to_hex};

/// `IUK(hex),RLK(hex),SUK(hex),VUK(hex),Message(b64u),URS(b64u)`.
pub fn urs(row: &str) -> Result<(), String> {
    let fields = csv_fields(row)?;
    let [iuk, rlk, suk, vuk, message, urs] = fields.as_slice() else {
        return Err("expected 6 fields".into());
    };
    let iuk = IdentityUnlockKey::from_bytes(hex_array(iuk)?);
    let (made_suk, made_vuk) = RandomLockKey::from_bytes(hex_array(rlk)?)
        .lock(&iuk.lock_key())
        .map_err(|e| e.to_string())?;
    expect_eq("SUK", to_hex(made_suk.as_bytes()), suk.clone())?;
    expect_eq("VUK", to_hex(&made_vuk.to_bytes()), vuk.clone())?;
    let suk = ServerUnlockKey::from_bytes(hex_array(suk)?);
    let ursk = iuk
        .unlock_request_signing_key(&suk)
        .map_err(|e| e.to_string())?;
    let message = sqrl_core::base64url::decode(message).map_err(|e| e.to_string())?;
    let signature = ursk.sign(&message);
    expect_eq("URS", signature.to_base64url(), urs.clone())?;
    made_vuk
        .verify(&message, &signature)
        .map_err(|e| format!("VUK rejects URS: {e}"))
}

/// `PIUK(b64u),Domain,SIN,PIDK(b64u),PINS(b64u)`.
pub fn pins(row: &str) -> Result<(), String> {
    let fields = csv_fields(row)?;
    let [piuk, domain, sin, pidk, pins] = fields.as_slice() else {
        return Err("expected 5 fields".into());
    };
    let piuk = IdentityUnlockKey::from_bytes(b64_array(piuk)?);
    let site = sqrl_core::url::SiteKeyString::new(domain.as_str());
    let key = piuk.master_key().site_key(&site);
    expect_eq("PIDK", key.public_key().to_base64url(), pidk.clone())?;
    expect_eq("PINS", key.indexed_secret(sin).to_base64url(), pins.clone())
}

fn value<'a>(text: &'a str, key: &str) -> Result<&'a str, String> {
    text.lines()
        .filter_map(|l| l.split_once(" = "))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
        .ok_or_else(|| format!("no `{key} = ...` line"))
}

/// An identity with blocks 1, 2 and 3 and its published secrets.
pub fn type3_identity(text: &str) -> Result<(), String> {
    let s4 = S4::parse(value(text, "s4")?.as_bytes()).map_err(|e| e.to_string())?;
    let password = Password::from(value(text, "password")?);
    let code = RescueCode::parse(value(text, "rescue_code")?).map_err(|e| e.to_string())?;
    let iuk = IdentityUnlockKey::from_bytes(hex_array(value(text, "iuk")?)?);
    let unlocked = s4
        .unlock(&password, &mut |_, _| {})
        .map_err(|e| e.to_string())?;
    expect_eq("IMK", unlocked.master_key(), &iuk.master_key())?;
    expect_eq("ILK", unlocked.lock_key(), iuk.lock_key())?;
    let recovered = s4
        .recover_unlock_key(&code, &mut |_, _| {})
        .map_err(|e| e.to_string())?;
    expect_eq("IUK", &recovered, &iuk)?;
    let previous = s4
        .previous_unlock_keys(unlocked.master_key())
        .map_err(|e| e.to_string())?;
    let edition: u16 = value(text, "edition")?
        .parse()
        .map_err(|_| "bad edition".to_owned())?;
    expect_eq("edition", previous.edition, edition)?;
    let expected: Vec<String> = value(text, "piuks")?
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect();
    let got: Vec<String> = previous.keys.iter().map(|k| to_hex(k.as_bytes())).collect();
    expect_eq("previous IUKs, newest first", got, expected)?;
    if s4.to_original_form() != value(text, "s4")?.as_bytes() {
        return Err("identity does not write back byte for byte".into());
    }
    Ok(())
}

/// Reads the recorded steps of an exchange file.
pub fn recorded_steps(text: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let mut current: Vec<(&str, &str)> = Vec::new();
    for (key, val) in text.lines().filter_map(|l| l.split_once(" = ")) {
        if key == "post" && !current.is_empty() {
            steps.push(step(&current)?);
            current.clear();
        }
        if matches!(key, "post" | "body" | "reply" | "tif") {
            current.push((key, val));
        }
    }
    if !current.is_empty() {
        steps.push(step(&current)?);
    }
    Ok(steps)
}

fn step(fields: &[(&str, &str)]) -> Result<Step, String> {
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
            .ok_or_else(|| format!("step without `{name}`"))
    };
    Ok(Step {
        post: get("post")?,
        body: get("body")?,
        reply: get("reply")?,
        tif: get("tif")?,
    })
}

/// A recorded exchange: replaying the scenario with the recorded seed must give
/// the same requests and replies, byte for byte.
pub fn exchange(text: &str) -> Result<(), String> {
    let scenario = value(text, "scenario")?;
    let seed = hex_array::<32>(value(text, "seed")?)?;
    let recorded = recorded_steps(text)?;
    let replayed = exchange::run(scenario, seed)?;
    expect_eq("number of steps", replayed.len(), recorded.len())?;
    for (i, (got, want)) in replayed.iter().zip(&recorded).enumerate() {
        if got != want {
            let field = if got.post != want.post {
                "POST URL"
            } else if got.body != want.body {
                "request body"
            } else if got.reply != want.reply {
                "reply"
            } else {
                "tif"
            };
            return Err(format!("step {}: {field} differs", i + 1));
        }
    }
    Ok(())
}
