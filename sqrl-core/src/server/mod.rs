//! The server side: request validation in SPEC 3.2 order and command semantics (SPEC 8).
