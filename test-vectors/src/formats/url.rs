//! SQRL URL vectors: site key strings and POST URLs.

use sqrl_core::url::SqrlUrl;

use crate::text::{expect_eq, pipe_cells};

/// `sqrl_url | site_key_string | post_url | notes`; `(invalid)` means the URL
/// must be rejected.
pub fn libsqrl_uri(row: &str) -> Result<(), String> {
    let cells = pipe_cells(row);
    let [url, site, post_url, ..] = cells.as_slice() else {
        return Err("expected at least 3 cells".into());
    };
    match SqrlUrl::parse(url) {
        Err(_) if *site == "(invalid)" => Ok(()),
        Ok(_) if *site == "(invalid)" => Err(format!("{url} accepted, must be rejected")),
        Err(e) => Err(format!("{url}: {e}")),
        Ok(parsed) => {
            expect_eq("site key string", parsed.site_key_string().domain(), site)?;
            expect_eq("POST URL", parsed.post_url().as_str(), post_url)
        }
    }
}

/// `sqrl_url | site key string | rule`. `{domain}` stands for any domain; a rule
/// naming a "POST target" also checks the POST URL's scheme, host and port.
pub fn grc_url(row: &str) -> Result<(), String> {
    let cells = pipe_cells(row);
    let [url, site, rule, ..] = cells.as_slice() else {
        return Err("expected 3 cells".into());
    };
    let url = url.replace("{domain}", "example.com");
    let site = site.replace("{domain}", "example.com");
    let parsed = SqrlUrl::parse(&url).map_err(|e| format!("{url}: {e}"))?;
    expect_eq(
        "site key string",
        parsed.site_key_string().domain(),
        site.as_str(),
    )?;
    if let Some(target) = rule.split("POST target ").nth(1) {
        let target = target.split_whitespace().next().unwrap_or_default();
        let prefix = target.trim_end_matches("...");
        if !parsed.post_url().starts_with(prefix) {
            return Err(format!(
                "POST URL {} does not start with {prefix}",
                parsed.post_url()
            ));
        }
    }
    Ok(())
}
