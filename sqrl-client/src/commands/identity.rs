//! `sqrl identity ...`: create, import, export, show, password, rekey, list, default.

use std::fs;
use std::io::{self, IsTerminal as _, Read as _, Write as _};
use std::path::Path;

use rand_core::OsRng;
use serde_json::json;
use sqrl_core::storage::{Block, OptionFlags, RekeyAuthority, RescueCode, S4, S4Form};
use sqrl_core::url::{SiteKeyString, SqrlUrl};

use super::Context;
use super::rescue_code::Delivery;
use crate::cli::{
    CreateArgs, ExportArgs, ExportFormat, IdentityCommand, ImportArgs, RekeyArgs, ShowArgs,
};
use crate::error::{Error, QrFailure, Result};
use crate::identity::{KdfProgress, StoredIdentity, format_error, read_rescue_code, storage_error};
use crate::qr;
use crate::store;

/// Largest file `import` reads (an identity is a few hundred bytes; a QR screenshot
/// a few MiB).
const MAX_IMPORT_BYTES: u64 = qr::MAX_IMAGE_BYTES as u64;

/// Runs an identity command.
pub fn run(context: &Context, command: IdentityCommand) -> Result<()> {
    match command {
        IdentityCommand::Create(args) => create(context, &args),
        IdentityCommand::Import(args) => import(context, &args),
        IdentityCommand::Export(args) => export(context, &args),
        IdentityCommand::Show(args) => show(context, &args),
        IdentityCommand::Password(_) => change_password(context),
        IdentityCommand::Rekey(args) => rekey(context, &args),
        IdentityCommand::List => list(context),
        IdentityCommand::Default { name } => default(context, name.as_deref()),
    }
}

fn progress(context: &Context) -> KdfProgress {
    KdfProgress::new(context.out.show_progress())
}

/// `identity create`, in GRC's order: the rescue code is shown and typed back
/// first, then the password is asked twice, then both blocks are encrypted
/// (EnScrypt, time-based) and only then is anything written.
fn create(context: &Context, args: &CreateArgs) -> Result<()> {
    let name = &args.name;
    // Refuse before asking anything.
    if context.store.exists(name)? {
        return Err(Error::IdentityExists(name.clone()));
    }
    let delivery = Delivery::choose(context, args.rescue_code_out.as_deref())?;
    let preread = context.secrets.preread_new_identity_password()?;
    let code = RescueCode::generate(&mut OsRng);
    delivery.show(&code)?;
    let password = match preread {
        Some(password) => password,
        None => context.secrets.new_identity_password()?,
    };
    context.out.note(&format!(
        "Encrypting the identity{}...",
        context.costs.duration_note()
    ));
    let s4 = S4::create_with_rescue_code(
        &mut OsRng,
        &code,
        &password,
        &context.costs.create_options(),
        &mut progress(context).callback(),
    )
    .map_err(|e| storage_error(name, e))?;
    let shown = delivery.hand_over(context, &code)?;
    let path = context.store.create(name, &s4.to_bytes())?;
    if args.default {
        context.store.set_default(name)?;
    }
    let mut value = json!({
        "name": name,
        "path": path,
        "created": true,
        "default": context.store.default_name()?.as_deref() == Some(name.as_str()),
    });
    if let Some(code) = shown {
        value["rescue_code"] = json!(code.as_str());
    }
    if let Some(path) = &args.rescue_code_out {
        value["rescue_code_file"] = json!(path);
    }
    context.out.result(
        &value,
        &format!("Created identity {name:?} at {}.", path.display()),
    )
}

fn read_source(source: &Path) -> Result<(Vec<u8>, String)> {
    let mut bytes = Vec::new();
    let label = if source == Path::new("-") {
        if io::stdin().is_terminal() {
            let _ = writeln!(
                io::stderr(),
                "Type or paste the identity, then press Ctrl-D on a new line:"
            );
        }
        io::stdin()
            .lock()
            .take(MAX_IMPORT_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::ReadFile {
                path: source.to_owned(),
                source: e,
            })?;
        "standard input".to_owned()
    } else {
        fs::File::open(source)
            .and_then(|f| f.take(MAX_IMPORT_BYTES).read_to_end(&mut bytes))
            .map_err(|e| Error::ReadFile {
                path: source.to_owned(),
                source: e,
            })?;
        source.display().to_string()
    };
    Ok((bytes, label))
}

/// Parses imported bytes in any form; a PNG/JPEG is scanned for an exported QR code.
fn parse_import(bytes: &[u8], label: &str) -> Result<S4> {
    if qr::looks_like_image(bytes) {
        let payloads = qr::decode_image(bytes)?;
        let mut first_error = None;
        for payload in payloads {
            match S4::import(&payload) {
                Ok(s4) => return Ok(s4),
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        return Err(match first_error {
            Some(e) => format_error(&format!("the QR code in {label}"), e),
            None => QrFailure::NoIdentity(label.to_owned()).into(),
        });
    }
    S4::import(bytes).map_err(|e| format_error(label, e))
}

fn form_name(form: S4Form) -> &'static str {
    match form {
        S4Form::Binary => "S4 binary",
        S4Form::Text => "S4 text",
        S4Form::HeaderlessBinary => "rescue block (binary)",
        S4Form::HeaderlessText => "rescue block (base64url)",
        S4Form::Textual => "textual identity",
        _ => "S4",
    }
}

fn import(context: &Context, args: &ImportArgs) -> Result<()> {
    let (bytes, label) = read_source(&args.source)?;
    let mut s4 = parse_import(&bytes, &label)?;
    let name = match &args.name {
        Some(name) => name.clone(),
        None => default_import_name(&args.source),
    };
    store::validate_name(&name)?;
    if context.store.exists(&name)? {
        return Err(Error::IdentityExists(name));
    }
    let form = form_name(s4.form());
    let full = s4.password_block().is_some();
    if full {
        if args.verify {
            // Proves the password (and that block 3 belongs to the same identity).
            StoredIdentity {
                name: name.clone(),
                s4: s4.clone(),
            }
            .unlock(&context.secrets, &mut progress(context))?;
        }
    } else {
        // A rescue identity: recover the IUK and give it a password block.
        context
            .out
            .note("This is a rescue identity: its rescue code and a new password are needed.");
        let code = read_rescue_code(&context.secrets)?;
        let password = context.secrets.new_identity_password()?;
        let mut bars = progress(context);
        s4.reset_password(
            &mut OsRng,
            &code,
            &password,
            context.costs.password,
            &mut bars.callback(),
        )
        .map_err(|e| storage_error(&name, e))?;
        // The previous-keys block, if any, must decrypt under the recovered identity.
        StoredIdentity {
            name: name.clone(),
            s4: s4.clone(),
        }
        .unlock_with(&password, &mut bars)?;
    }
    let path = context.store.create(&name, &s4.to_bytes())?;
    if args.default {
        context.store.set_default(&name)?;
    }
    let value = json!({
        "name": name,
        "path": path,
        "imported_form": form,
        "rescue_only": !full,
        "verified": full && args.verify,
        "default": context.store.default_name()?.as_deref() == Some(name.as_str()),
    });
    let mut human = format!("Imported identity {name:?} ({form}) to {}.", path.display());
    if full && !args.verify {
        human.push_str(" Its password was not checked (use --verify).");
    }
    context.out.result(&value, &human)
}

fn default_import_name(source: &Path) -> String {
    source
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| store::validate_name(s).is_ok() && *s != "-")
        .unwrap_or("imported")
        .to_owned()
}

fn export(context: &Context, args: &ExportArgs) -> Result<()> {
    let name = context.identity_name()?;
    let stored = StoredIdentity::load(&context.store, &name)?;
    let s4 = if args.rescue_only {
        stored
            .s4
            .rescue_only(true)
            .map_err(|e| storage_error(&name, e))?
    } else {
        stored.s4.clone()
    };
    let (bytes, binary): (Vec<u8>, bool) = match args.format {
        ExportFormat::S4 => (s4.to_bytes(), true),
        ExportFormat::S4Text => (format!("{}\n", s4.to_base64url_text()).into_bytes(), false),
        ExportFormat::Base56 => {
            let text = s4
                .to_textual_identity(true)
                .map_err(|e| storage_error(&name, e))?;
            (format!("{text}\n").into_bytes(), false)
        }
        ExportFormat::Qr => (
            qr::render_terminal(s4.to_base64url_text().as_bytes())?.into_bytes(),
            false,
        ),
        ExportFormat::QrPng => (qr::render_png(s4.to_base64url_text().as_bytes())?, true),
    };
    let format = args.format.to_possible_value_name();
    match &args.output {
        Some(path) => {
            store::write_new_file(path, &bytes)?;
            context.out.result(
                &json!({"name": name, "format": format, "output": path, "bytes": bytes.len()}),
                &format!(
                    "Exported identity {name:?} ({format}) to {}.",
                    path.display()
                ),
            )
        }
        None if binary => {
            if context.out.is_json() || io::stdout().is_terminal() {
                return Err(Error::BinaryExportToTerminal {
                    format: format.to_string(),
                });
            }
            let mut stdout = io::stdout().lock();
            stdout
                .write_all(&bytes)
                .and_then(|()| stdout.flush())
                .map_err(Error::Output)
        }
        None if context.out.is_json() => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            context
                .out
                .result(&json!({"name": name, "format": format, "data": text}), "")
        }
        None => {
            let mut stdout = io::stdout().lock();
            stdout
                .write_all(&bytes)
                .and_then(|()| stdout.flush())
                .map_err(Error::Output)
        }
    }
}

trait PossibleValueName {
    fn to_possible_value_name(&self) -> String;
}

impl PossibleValueName for ExportFormat {
    fn to_possible_value_name(&self) -> String {
        clap::ValueEnum::to_possible_value(self)
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }
}

fn show(context: &Context, args: &ShowArgs) -> Result<()> {
    let name = context.identity_name()?;
    let stored = StoredIdentity::load(&context.store, &name)?;
    if let Some(site) = &args.site {
        return show_site(context, &stored, site, args.alt_id.as_deref());
    }
    let s4 = &stored.s4;
    let mut value = json!({
        "name": name,
        "path": context.store.identity_path(&name)?,
        "default": context.store.default_name()?.as_deref() == Some(name.as_str()),
        "blocks": s4.blocks().iter().map(Block::block_type).collect::<Vec<_>>(),
    });
    let mut human = format!("Identity {name:?}\n");
    if let Some(block) = s4.password_block() {
        let kdf = block.kdf_params();
        let settings = block.settings();
        let options = settings.options;
        value["password_block"] = json!({
            "enscrypt_iterations": kdf.iterations,
            "enscrypt_log_n": kdf.log_n,
            "option_flags": format!("{:04x}", options.bits()),
            "sqrl_only": options.contains(OptionFlags::SQRL_ONLY),
            "hard_lock": options.contains(OptionFlags::HARD_LOCK),
            "quickpass_hint_length": settings.hint_length,
            "password_seconds": settings.password_seconds,
            "idle_timeout_minutes": settings.idle_timeout_minutes,
        });
        human.push_str(&format!(
            "  password block: EnScrypt {} iterations (log2 N = {}), options 0x{:04x}{}{}\n",
            kdf.iterations,
            kdf.log_n,
            options.bits(),
            if options.contains(OptionFlags::SQRL_ONLY) {
                ", SQRL only"
            } else {
                ""
            },
            if options.contains(OptionFlags::HARD_LOCK) {
                ", hard lock"
            } else {
                ""
            },
        ));
    } else {
        human.push_str("  no password block: a rescue identity (import it to use it)\n");
    }
    if let Some(block) = s4.rescue_block() {
        let kdf = block.kdf_params();
        value["rescue_block"] = json!({
            "enscrypt_iterations": kdf.iterations,
            "enscrypt_log_n": kdf.log_n,
        });
        human.push_str(&format!(
            "  rescue block: EnScrypt {} iterations (log2 N = {})\n",
            kdf.iterations, kdf.log_n
        ));
    }
    if let Some(block) = s4.previous_keys_block() {
        value["previous_identities"] = json!({
            "edition": block.edition(),
            "count": block.key_count(),
        });
        human.push_str(&format!(
            "  previous identities: {} kept (rekeyed {} times)\n",
            block.key_count(),
            block.edition()
        ));
    }
    let unknown: Vec<u16> = s4
        .blocks()
        .iter()
        .filter(|b| matches!(b, Block::Unknown(_)))
        .map(Block::block_type)
        .collect();
    if !unknown.is_empty() {
        human.push_str(&format!(
            "  other blocks (kept as they are): types {unknown:?}\n"
        ));
        value["unknown_blocks"] = json!(unknown);
    }
    context.out.result(&value, &human)
}

/// The site key string for `--site`: from a SQRL URL, or taken as written
/// (host plus any path) when it is not one.
pub fn site_key_string(site: &str, alt_id: Option<&str>) -> Result<SiteKeyString> {
    let key = if site.contains("://") {
        SqrlUrl::parse(site)
            .map_err(|error| Error::InvalidSiteUrl {
                site: site.to_owned(),
                error,
            })?
            .site_key_string()
            .clone()
    } else {
        if site.is_empty() || !site.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::NotASite(site.to_owned()));
        }
        // Only the host is case-insensitive (SPEC 1.2 rule 4).
        let (host, path) = site.split_at(site.find('/').unwrap_or(site.len()));
        SiteKeyString::new(format!("{}{path}", host.to_ascii_lowercase()))
    };
    Ok(match alt_id {
        Some(alt) => key.with_alt_id(alt),
        None => key,
    })
}

fn show_site(
    context: &Context,
    stored: &StoredIdentity,
    site: &str,
    alt_id: Option<&str>,
) -> Result<()> {
    let key = site_key_string(site, alt_id)?;
    let keys = super::site::SiteKeys::get(context, stored, &key)?;
    let keys = keys.keys();
    let public = keys.site_signer(&key)?.public_key();
    let idk = public.to_base64url();
    let fingerprint = public.fingerprint();
    let previous: Vec<String> = keys
        .previous_site_signers(&key)?
        .iter()
        .map(|k| k.public_key().to_base64url())
        .collect();
    context.out.result(
        &json!({
            "name": stored.name,
            "site": key.domain(),
            "alt_id": key.alt_id(),
            "idk": idk,
            "fingerprint": fingerprint,
            "previous_idks": previous,
        }),
        &format!("{idk}\nfingerprint: {fingerprint}"),
    )
}

fn change_password(context: &Context) -> Result<()> {
    let name = context.identity_name()?;
    let mut stored = StoredIdentity::load(&context.store, &name)?;
    let old = context.secrets.password(&name)?;
    let new = context.secrets.changed_password()?;
    stored
        .s4
        .change_password(
            &mut OsRng,
            &old,
            &new,
            context.costs.password,
            &mut progress(context).callback(),
        )
        .map_err(|e| storage_error(&name, e))?;
    let path = context.store.replace(&name, &stored.s4.to_bytes())?;
    context.out.result(
        &json!({"name": name, "path": path, "password_changed": true}),
        &format!("Changed the password of identity {name:?}."),
    )
}

fn rekey(context: &Context, args: &RekeyArgs) -> Result<()> {
    let name = context.identity_name()?;
    let delivery = Delivery::choose(context, args.rescue_code_out.as_deref())?;
    let mut stored = StoredIdentity::load(&context.store, &name)?;
    context.out.note(
        "Rekeying replaces this identity's keys. Sites move over when you next log in; the old rescue code stops working.",
    );
    let code = read_rescue_code(&context.secrets)?;
    let password = context.secrets.password(&name)?;
    // As in `create`: the new code is shown (and typed back) before the
    // EnScrypt work, so a slip costs no wait, and before the rekeyed file
    // replaces the old one, so a mismatch leaves the identity as it was.
    let new_code = RescueCode::generate(&mut OsRng);
    delivery.show(&new_code)?;
    stored
        .s4
        .rekey_with_rescue_code(
            &mut OsRng,
            RekeyAuthority::RescueCode(&code),
            &new_code,
            &password,
            &context.costs.create_options(),
            &mut progress(context).callback(),
        )
        .map_err(|e| storage_error(&name, e))?;
    let shown = delivery.hand_over(context, &new_code)?;
    let path = context.store.replace(&name, &stored.s4.to_bytes())?;
    let previous = stored.s4.previous_keys_block().map_or(0, |b| b.key_count());
    let mut value = json!({
        "name": name,
        "path": path,
        "rekeyed": true,
        "previous_identities": previous,
    });
    if let Some(code) = shown {
        value["rescue_code"] = json!(code.as_str());
    }
    context.out.result(
        &value,
        &format!("Rekeyed identity {name:?}; it keeps {previous} previous identities for sites to move over."),
    )
}

fn list(context: &Context) -> Result<()> {
    let names = context.store.list()?;
    let default = context.store.default_name()?;
    let entries: Vec<serde_json::Value> = names
        .iter()
        .map(|n| json!({"name": n, "default": default.as_deref() == Some(n.as_str())}))
        .collect();
    let human: String = names
        .iter()
        .map(|n| {
            let mark = if default.as_deref() == Some(n.as_str()) {
                "* "
            } else {
                "  "
            };
            format!("{mark}{n}\n")
        })
        .collect();
    if names.is_empty() {
        // On stderr, so that a script reading the names gets none.
        context.out.note(&format!(
            "No identities in {}. Create one with `sqrl identity create`, or import one with \
             `sqrl identity import FILE`.",
            context.store.root().display()
        ));
    }
    context.out.result(&json!({"identities": entries}), &human)
}

fn default(context: &Context, name: Option<&str>) -> Result<()> {
    match name {
        Some(name) => {
            store::validate_name(name)?;
            context.store.set_default(name)?;
            context.out.result(
                &json!({"default": name}),
                &format!("Default identity: {name}"),
            )
        }
        None => {
            let current = context.store.default_name()?;
            let human = current.clone().unwrap_or_else(|| "(none)".to_owned());
            context.out.result(&json!({"default": current}), &human)
        }
    }
}
