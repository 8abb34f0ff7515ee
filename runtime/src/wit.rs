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

impl<T: Send + 'static> JobPluginPre<T> {
    /// [`Self::instantiate_async`] without checking the exports' types
    /// again for every instance: [`JobPluginPre::new`] checked them against
    /// the types every instance of this `InstancePre` has (its imports are
    /// fixed), and the generated per-instance check only repeats that.
    /// That holds while neither export's signature has a resource the
    /// component defines itself (each instance would have its own type).
    /// About 0.4 µs of a fresh Rust no-op instance's 10.
    pub async fn instantiate_checked(
        &self,
        mut store: impl wasmtime::AsContextMut<Data = T>,
    ) -> wasmtime::Result<JobPlugin> {
        let mut store = store.as_context_mut();
        let instance = self.instance_pre.instantiate_async(&mut store).await?;
        let mut export = |index, name: &str| {
            instance
                .get_func(&mut store, index)
                .ok_or_else(|| wasmtime::format_err!("no export `{name}` found"))
        };
        let describe = export(&self.indices.describe, "describe")?;
        let perform = export(&self.indices.perform, "perform")?;
        Ok(JobPlugin { describe, perform })
    }
}
