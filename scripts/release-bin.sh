# Sourced by the report scripts (from the repository root): sets `bin` to the release binary.
# target/release/tetriserve is used as it is when it exists and is newer than every source
# (src/, kernels/, Cargo.toml, Cargo.lock), so a report on a built checkout starts at once;
# otherwise it is built first with `cargo build --release`, which is what
# `cargo run --release --` would do, once, instead of on every call.
bin=target/release/tetriserve
if [ ! -x "$bin" ] || [ -n "$(find src kernels Cargo.toml Cargo.lock -newer "$bin" -print -quit)" ]; then
  cargo build --release --quiet
fi
