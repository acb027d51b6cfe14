//! Fuzz target: `palisade_helper::fuzzing::policy_merge` (what it checks is documented there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| palisade_helper::fuzzing::policy_merge(data));
