#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sqrl_core::fuzzing::url(data));
