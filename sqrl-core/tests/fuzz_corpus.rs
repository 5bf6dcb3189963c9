//! Replays every saved fuzz input (`fuzz/corpus/<target>/*`) through the same
//! entry points the fuzzers call, so CI exercises them without a fuzzer.

use std::path::Path;

use sqrl_core::fuzzing::TARGETS;

#[test]
fn replay_fuzz_corpus() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (name, target) in TARGETS {
        let dir = corpus.join(name);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus for {name} missing at {}: {e}", dir.display()));
        let mut replayed = 0;
        for entry in entries {
            let input = std::fs::read(entry.unwrap().path()).unwrap();
            target(&input);
            replayed += 1;
        }
        assert!(replayed > 0, "empty corpus for {name}");
        println!("{name}: {replayed} inputs replayed");
    }
}
