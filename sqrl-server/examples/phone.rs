//! A throwaway SQRL identity that logs in to a running sqrl-server: what a
//! phone does after scanning the login page's code. For trying the service
//! without a SQRL app.
//!
//! ```text
//! cargo run -p sqrl-server --example phone -- 'qrl://127.0.0.1:8080/cli.sqrl?nut=...'
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/server/common/mod.rs"]
mod common;

use common::{Identity, NONE, SqrlConversation, http_client};

#[tokio::main]
async fn main() {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: phone <sqrl:// or qrl:// URL from the login page>");
        std::process::exit(2);
    };
    let http = http_client();
    let id = Identity::new();
    let mut conversation = SqrlConversation::new(&http, &url);
    let reply = conversation.query(&id, NONE).await;
    println!("query: tif {} ({})", reply.tif(), reply.tif().describe());
    let known = reply.tif().bits() & 0x01 != 0;
    let reply = conversation.ident(&id, NONE, !known).await;
    println!("ident: tif {} ({})", reply.tif(), reply.tif().describe());
}
