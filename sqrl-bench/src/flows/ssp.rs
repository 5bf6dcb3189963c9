//! The SSP flow (SPEC 9): the browser mints a nut at `/nut.sqrl` and keeps
//! its `pag` secret (and any cookie), the phone answers the SQRL URL of that
//! nut, and the browser polls `/pag.sqrl` until it names the URL the
//! logged-in visitor goes to.
//!
//! Servers differ in details the API leaves open, so the answers are read
//! leniently: `/nut.sqrl` as a form or JSON whatever was asked for, and
//! `/pag.sqrl` as "pending" when it is empty (`200`, `{"url": ""}`, `204`) or
//! `404` (GRC's Go server knows the `pag` only once the login is done).

use std::time::Instant;

use super::{Devices, Settings, follow};
use crate::outcome::{ErrorKind, LoginError, Step, Trace};
use crate::phone::Phone;

/// What `/nut.sqrl` gave the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minted {
    /// The nut of the SQRL URL.
    pub nut: String,
    /// The secret to poll `/pag.sqrl` with, if the server gave one.
    pub pag: Option<String>,
}

/// Reads a `/nut.sqrl` answer: `nut=..&pag=..&exp=..`, or the same as JSON.
pub fn parse_nut_reply(body: &str) -> Result<Minted, &'static str> {
    let body = body.trim();
    let (nut, pag) = if body.starts_with('{') {
        let value: serde_json::Value =
            serde_json::from_str(body).map_err(|_| "/nut.sqrl answered broken JSON")?;
        let field = |name: &str| {
            value
                .get(name)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        (field("nut"), field("pag"))
    } else {
        let mut nut = None;
        let mut pag = None;
        for (name, value) in url::form_urlencoded::parse(body.as_bytes()) {
            match name.as_ref() {
                "nut" => nut = Some(value.into_owned()),
                "pag" => pag = Some(value.into_owned()),
                _ => {}
            }
        }
        (nut, pag)
    };
    let nut = nut
        .filter(|nut| !nut.is_empty())
        .ok_or("/nut.sqrl answered no nut")?;
    // The nut goes into a URL as is (SPEC 1.1: base64url-safe text).
    if !nut
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    {
        return Err("/nut.sqrl answered a nut that is not base64url text");
    }
    Ok(Minted {
        nut,
        pag: pag.filter(|pag| !pag.is_empty()),
    })
}

/// What one `/pag.sqrl` answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PagState {
    /// Not logged in yet.
    Pending,
    /// Logged in: the URL the page navigates to.
    Ready(String),
}

/// Reads a `/pag.sqrl` answer.
pub fn parse_pag_reply(status: u16, body: &str) -> Result<PagState, ErrorKind> {
    match status {
        200 => {}
        202 | 204 | 404 => return Ok(PagState::Pending),
        other => return Err(ErrorKind::HttpStatus(other)),
    }
    let body = body.trim();
    let url = if body.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(body)
            .map_err(|_| ErrorKind::protocol("/pag.sqrl answered broken JSON"))?;
        match value.get("url") {
            Some(serde_json::Value::String(url)) => url.trim().to_owned(),
            None | Some(serde_json::Value::Null) => String::new(),
            Some(_) => return Err(ErrorKind::protocol("/pag.sqrl url is not a string")),
        }
    } else {
        body.to_owned()
    };
    if url.is_empty() {
        return Ok(PagState::Pending);
    }
    // An answer that is no URL (an HTML error page with status 200, say) is
    // an error, not a login.
    let looks_like_url =
        (url.starts_with("http://") || url.starts_with("https://") || url.starts_with('/'))
            && url.len() <= 4096
            && !url.contains(|c: char| c.is_whitespace() || c == '<' || c == '"');
    if !looks_like_url {
        return Err(ErrorKind::protocol(
            "/pag.sqrl answered something that is not a URL",
        ));
    }
    Ok(PagState::Ready(url))
}

/// One login through the SSP API.
pub async fn login(
    settings: &Settings,
    devices: &mut Devices,
    phone: &Phone,
    trace: &mut Trace,
) -> Result<(), LoginError> {
    let site = &settings.site;
    let accept = [("accept", settings.nut_format.accept())];

    let (reply, took) = devices
        .browser
        .get(&site.endpoint("/nut.sqrl"), &accept)
        .await
        .map_err(|kind| LoginError::new(Step::Nut, kind))?;
    if reply.status != 200 {
        return Err(
            LoginError::new(Step::Nut, ErrorKind::HttpStatus(reply.status)).with_body(&reply.body),
        );
    }
    let minted = parse_nut_reply(&reply.body).map_err(|reason| {
        LoginError::new(Step::Nut, ErrorKind::protocol(reason)).with_body(&reply.body)
    })?;
    trace.step(Step::Nut, took);

    let link = site.sqrl_url(&minted.nut);
    let queried = phone.query(&link, site, &mut devices.phone, trace).await?;
    phone
        .ident(queried, site, &mut devices.phone, trace)
        .await?;

    // The browser polls with the secret in the query (and whatever cookie
    // `/nut.sqrl` set), as a page that fetched its own nut does.
    let query = {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("nut", &minted.nut);
        if let Some(pag) = &minted.pag {
            query.append_pair("pag", pag);
        }
        query.finish()
    };
    let poll_url = format!("{}?{query}", site.endpoint("/pag.sqrl"));
    let started = Instant::now();
    let deadline = started + settings.timeout;
    let url = loop {
        trace.polls += 1;
        let (reply, _) = devices
            .browser
            .get(&poll_url, &accept)
            .await
            .map_err(|kind| LoginError::new(Step::Pag, kind))?;
        match parse_pag_reply(reply.status, &reply.body) {
            Ok(PagState::Ready(url)) => break url,
            Ok(PagState::Pending) => {
                if Instant::now() + settings.poll_interval >= deadline {
                    return Err(LoginError::new(Step::Pag, ErrorKind::Timeout).with_body(
                        &format!(
                            "still pending; last answer HTTP {}: {}",
                            reply.status, reply.body
                        ),
                    ));
                }
                tokio::time::sleep(settings.poll_interval).await;
            }
            Err(kind) => return Err(LoginError::new(Step::Pag, kind).with_body(&reply.body)),
        }
    };
    trace.step(Step::Pag, started.elapsed());

    if settings.follow {
        follow(settings, &mut devices.browser, &url, trace).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nut_answers_as_form_or_json() {
        let form = parse_nut_reply("nut=abc_DEF-1&pag=p&exp=120\n").unwrap();
        assert_eq!(form.nut, "abc_DEF-1");
        assert_eq!(form.pag.as_deref(), Some("p"));
        let json = parse_nut_reply(r#"{"nut":"n1","pag":"p1","exp":300}"#).unwrap();
        assert_eq!(json.nut, "n1");
        let no_pag = parse_nut_reply("nut=n2").unwrap();
        assert_eq!(no_pag.pag, None);
        assert!(parse_nut_reply("garbage").is_err());
        assert!(parse_nut_reply("{\"nut\":").is_err());
        assert!(parse_nut_reply("nut=a%20b").is_err());
    }

    #[test]
    fn reads_pag_answers_leniently() {
        assert_eq!(parse_pag_reply(200, ""), Ok(PagState::Pending));
        assert_eq!(parse_pag_reply(404, ""), Ok(PagState::Pending));
        assert_eq!(parse_pag_reply(204, ""), Ok(PagState::Pending));
        assert_eq!(
            parse_pag_reply(200, r#"{"url":"","state":"pending"}"#),
            Ok(PagState::Pending)
        );
        assert_eq!(
            parse_pag_reply(200, "http://a/login/collect?nut=1&pag=2\n"),
            Ok(PagState::Ready(
                "http://a/login/collect?nut=1&pag=2".to_owned()
            ))
        );
        assert_eq!(
            parse_pag_reply(200, r#"{"url":"https://b/success.html?idk=x"}"#),
            Ok(PagState::Ready("https://b/success.html?idk=x".to_owned()))
        );
        assert_eq!(parse_pag_reply(410, ""), Err(ErrorKind::HttpStatus(410)));
        assert!(parse_pag_reply(200, "<html>oops</html>").is_err());
        assert!(parse_pag_reply(200, "{\"url\": 3}").is_err());
    }
}
