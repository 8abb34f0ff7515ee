//! The Rust side of `wit/plugin.wit`: the types and traits the host and
//! its plugins share. Every module that speaks the contract (the plugin
//! engine, mail's input, the policy, a job as the plugin sees it) takes
//! them from here, so none of them needs the plugin engine itself.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "job-plugin",
    imports: {
        "jobrunner:plugin/mail.send-mail": async,
        "jobrunner:plugin/mail.send-mail-with-attachments": async,
        "jobrunner:plugin/records.locate": async,
        "jobrunner:plugin/records.find": async,
        "jobrunner:plugin/records.find-all-by": async,
        "jobrunner:plugin/records.find-batch": async,
        "jobrunner:plugin/records.find-many": async,
        "jobrunner:plugin/records.update": async,
        "jobrunner:plugin/records.delete": async,
        "jobrunner:plugin/records.insert": async,
        "jobrunner:plugin/blobs.read": async,
        "jobrunner:plugin/blobs.read-range": async,
        "jobrunner:plugin/blobs.size": async,
        "jobrunner:plugin/blobs.write": async,
        "jobrunner:plugin/blobs.delete": async,
        "jobrunner:plugin/blobs.delete-prefixed": async,
        "jobrunner:plugin/blobs.mirror": async,
        "jobrunner:plugin/blobs.append": async,
        "jobrunner:plugin/blobs.finish": async,
        "jobrunner:plugin/iteration.checkpoint": async,
    },
    exports: { default: async },
});

pub use self::jobrunner::plugin::mail::{Email, MailError};
