//! EnScrypt, EnHash and key-hierarchy vectors.

use sqrl_core::enscrypt::{EnScryptParams, enscrypt as run_enscrypt};
use sqrl_core::keys::{IdentityMasterKey, IdentityUnlockKey, RandomLockKey, ServerUnlockKey};
use sqrl_core::url::{SiteKeyString, SqrlUrl};

use crate::text::{b64_array, csv_fields, expect_eq, hex, hex_array, to_hex};

fn fields<const N: usize>(row: &str) -> Result<[String; N], String> {
    let fields = csv_fields(row)?;
    let count = fields.len();
    fields
        .try_into()
        .map_err(|_| format!("expected {N} fields, got {count}"))
}

fn enscrypt_hex(
    password: &[u8],
    salt: &[u8],
    iterations: &str,
    log_n: u8,
) -> Result<String, String> {
    let iterations: u32 = iterations
        .trim()
        .parse()
        .map_err(|_| format!("bad iteration count {iterations:?}"))?;
    let key = run_enscrypt(
        password,
        salt,
        EnScryptParams { log_n, iterations },
        &mut |_| {},
    )
    .map_err(|e| e.to_string())?;
    Ok(to_hex(key.as_slice()))
}

/// `"Password","Salt",Iterations,"Result(b64)","Result(hex)"`.
pub fn sqrldev_enscrypt(row: &str) -> Result<(), String> {
    let [password, salt, iterations, result_b64, result_hex] = fields(row)?;
    let got = enscrypt_hex(password.as_bytes(), salt.as_bytes(), &iterations, 9)?;
    expect_eq("EnScrypt (hex column)", got.as_str(), result_hex.as_str())?;
    let b64 = sqrl_core::base64url::encode(hex(&got)?);
    expect_eq(
        "EnScrypt (base64url column)",
        b64.as_str(),
        result_b64.as_str(),
    )
}

/// `password,salt(hex),iterations,logN,result(hex)`.
pub fn libsqrl_enscrypt(row: &str) -> Result<(), String> {
    let [password, salt, iterations, log_n, result] = fields(row)?;
    let log_n: u8 = log_n
        .trim()
        .parse()
        .map_err(|_| format!("bad logN {log_n:?}"))?;
    let got = enscrypt_hex(password.as_bytes(), &hex(&salt)?, &iterations, log_n)?;
    expect_eq("EnScrypt", got.as_str(), result.trim())
}

/// `"input b64","EnHash b64"`.
pub fn enhash(row: &str) -> Result<(), String> {
    let [input, output] = fields(row)?;
    let got = sqrl_core::enhash::enhash(&b64_array::<32>(&input)?);
    expect_eq("EnHash", sqrl_core::base64url::encode(*got), output)
}

/// The site key string for a vector's `domain` column, derived the way a client
/// does: through a SQRL URL whose `x=` covers the whole path. This checks the URL
/// rules (host lower-cased, path case kept) rather than re-stating them.
fn site_key_string(domain: &str, alt_id: &str) -> Result<SiteKeyString, String> {
    let path_len = domain.find('/').map_or(0, |slash| domain.len() - slash);
    let url = format!("sqrl://{domain}?x={path_len}&nut=vector");
    let parsed = SqrlUrl::parse(&url).map_err(|e| format!("{url}: {e}"))?;
    Ok(parsed.site_key_string().clone().with_alt_id(alt_id))
}

/// `IUK, ILK, IMK, domain, Alt-ID, IDK` (base64url keys).
pub fn identity(row: &str) -> Result<(), String> {
    let [iuk, ilk, imk, domain, alt_id, idk] = fields(row)?;
    let iuk = IdentityUnlockKey::from_bytes(b64_array(&iuk)?);
    expect_eq("ILK", iuk.lock_key().as_bytes(), &b64_array::<32>(&ilk)?)?;
    let master = iuk.master_key();
    expect_eq("IMK", master.as_bytes(), &b64_array::<32>(&imk)?)?;
    let site = site_key_string(&domain, &alt_id)?;
    expect_eq(
        "IDK",
        master.site_key(&site).public_key().to_base64url(),
        idk,
    )
}

/// `IUK, ILK, RLK, SUK, DHKA, VUK` (hex). Checks both sides of the lock:
/// the client's RLK path and the rescue path through the IUK and the SUK.
pub fn identity_lock(row: &str) -> Result<(), String> {
    let [iuk, ilk, rlk, suk, dhka, vuk] = fields(row)?;
    let iuk = IdentityUnlockKey::from_bytes(hex_array(&iuk)?);
    let lock_key = iuk.lock_key();
    expect_eq("ILK", to_hex(lock_key.as_bytes()), ilk)?;
    let rlk = RandomLockKey::from_bytes(hex_array(&rlk)?);
    expect_eq(
        "DHKA = X25519(RLK, ILK)",
        to_hex(rlk.agreement(&lock_key).as_slice()),
        dhka.clone(),
    )?;
    let (made_suk, made_vuk) = rlk.lock(&lock_key).map_err(|e| e.to_string())?;
    expect_eq("SUK", to_hex(made_suk.as_bytes()), suk.clone())?;
    expect_eq("VUK", to_hex(&made_vuk.to_bytes()), vuk.clone())?;
    // The rescue path: X25519(IUK, SUK) must give the same DHKA, hence the same VUK.
    let suk = ServerUnlockKey::from_bytes(hex_array(&suk)?);
    let ursk = iuk
        .unlock_request_signing_key(&suk)
        .map_err(|e| e.to_string())?;
    expect_eq(
        "VUK via X25519(IUK, SUK)",
        to_hex(&ursk.verify_unlock_key().to_bytes()),
        vuk,
    )
}

/// `IMK, domain, SIN, INS`.
pub fn indexed_secret(row: &str) -> Result<(), String> {
    let [imk, domain, sin, ins] = fields(row)?;
    let master = IdentityMasterKey::from_bytes(b64_array(&imk)?);
    let site_key = master.site_key(&site_key_string(&domain, "")?);
    expect_eq("INS", site_key.indexed_secret(&sin).to_base64url(), ins)
}
