//! The client side of a SQRL transaction (SPEC 6).
