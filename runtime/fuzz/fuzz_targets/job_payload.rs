//! Feeds arbitrary bytes to the job payload decoder, as a queue might hold
//! them: it must return a job or an error, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(job) = jobrunner::job::Job::parse(data, "default") {
        let _ = job.to_wit();
    }
});
