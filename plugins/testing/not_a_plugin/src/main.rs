//! A valid WebAssembly component of the wrong world (a WASI command), for
//! the runner's tests: dropping it into the plugins directory must be
//! refused without disturbing the plugins already serving.

fn main() {}
