//! A plugin built against `jobrunner:plugin@0.2.0` (a copy of that WIT in
//! `testing/contracts`), to test which contract versions the runner loads.
//! `FutureContractJob` mails `args[0]` with the subject `args[1]`.

// The generated bindings take every field of a record as an argument.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({ path: "../contracts/0.2.0", world: "job-plugin" });

const NAME: &str = "future_contract";
const VERSION: &str = "0.2.0";
const CLASS: &str = "FutureContractJob";

include!("../../contracts/plugin_body.rs");
