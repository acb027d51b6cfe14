//! The helper program; everything is in the library (see `lib.rs`).

fn main() -> anyhow::Result<()> {
    palisade_helper::main()
}
