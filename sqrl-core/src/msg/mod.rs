//! Protocol messages (SPEC 2–3): client requests, server replies, TIF, versions, `ask`.
