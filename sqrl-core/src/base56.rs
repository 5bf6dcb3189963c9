//! base56 with per-line check characters (SPEC 5.5).
