//! Compiling a plugin: in a child process, on a bounded pool, under a
//! wall-clock budget and a memory bound.
//!
//! Compiling untrusted WebAssembly is the one step whose cost the plugin's
//! author controls and nothing inside the compiler bounds: a generated
//! 1.5 MB component can take minutes and gigabytes. So each compile runs in
//! a child `runner compile-plugin` that builds the same engine, reads the
//! component on stdin and writes the compiled code on stdout. The child's
//! data segment is capped with `RLIMIT_DATA` and it is killed at the
//! budget; whatever it does, the runner's own memory and threads are
//! untouched. At most [`COMPILE_SLOTS`] compile at once, so a stream of
//! heavy files can't crowd the machine, and a heavy file never holds up a
//! light one for longer than the budget.
//!
//! No cap on function count or size is applied before compiling: the
//! budget and the memory bound hold whatever the input's shape, while such
//! a cap would refuse big legitimate guests (an embedded interpreter has
//! tens of thousands of functions).

use crate::engine::{CodeGen, EngineLimits};
use anyhow::{Context, Result, bail};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::Semaphore;

/// Compiles that may run at once.
pub const COMPILE_SLOTS: usize = 2;

/// How much of the child's stderr explains a failure.
const MAX_ERROR: usize = 4 * 1024;

/// The bounds on one compile.
#[derive(Clone, Copy, Debug)]
pub struct CompileLimits {
    /// Wall-clock time one compile may take.
    pub budget: Duration,
    /// Bytes of memory (data segment) the compiling process may use.
    pub memory_bytes: u64,
    /// The compiler to use.
    pub codegen: CodeGen,
}

impl Default for CompileLimits {
    fn default() -> CompileLimits {
        CompileLimits {
            budget: Duration::from_secs(30),
            memory_bytes: 1024 * 1024 * 1024,
            codegen: CodeGen::default(),
        }
    }
}

/// Compiles components for one engine in child processes.
pub struct Compiler {
    /// What the engine was built with; the child builds the same one, so
    /// the code it returns loads into ours.
    engine: EngineLimits,
    /// The bounds on each compile.
    limits: CompileLimits,
    /// Caps the compiles running at once.
    slots: Semaphore,
}

impl Compiler {
    pub fn new(engine: EngineLimits, limits: CompileLimits) -> Compiler {
        Compiler { engine, limits, slots: Semaphore::new(COMPILE_SLOTS) }
    }

    /// The compiler it runs.
    pub fn codegen(&self) -> CodeGen {
        self.engine.codegen
    }

    /// Compiles `wasm`, returning the code as `Component::serialize` would.
    pub async fn compile(&self, wasm: &[u8]) -> Result<Vec<u8>> {
        let _slot = self.slots.acquire().await.expect("the compile semaphore is never closed");
        let exe = std::env::current_exe().context("finding the runner's own executable")?;
        let mut command = Command::new(exe);
        command
            .args(["compile-plugin", "--concurrency", &self.engine.concurrency.to_string()])
            .args(["--memory-bytes", &self.engine.memory_bytes.to_string()])
            .args(["--compiler", self.engine.codegen.as_str()])
            // It needs nothing from the environment, and the secrets there
            // (REDIS_URL, SMTP_URL, ...) have no business near hostile input.
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let data = self.limits.memory_bytes;
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                let limit = libc::rlimit { rlim_cur: data, rlim_max: data };
                if libc::setrlimit(libc::RLIMIT_DATA, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().context("starting the compiling process")?;
        let (mut stdin, mut stdout, mut stderr) =
            (child.stdin.take().unwrap(), child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let work = async {
            let (mut code, mut error) = (Vec::new(), Vec::new());
            let mut stderr = (&mut stderr).take(MAX_ERROR as u64);
            let feed = async {
                // A child that dies early closes the pipe; its status says why.
                let _ = stdin.write_all(wasm).await;
                drop(stdin);
            };
            let (_, read, _) =
                tokio::join!(feed, stdout.read_to_end(&mut code), stderr.read_to_end(&mut error));
            read.context("reading the compiled code")?;
            let status = child.wait().await.context("waiting for the compiling process")?;
            anyhow::Ok((status, code, error))
        };
        let (status, code, error) = match tokio::time::timeout(self.limits.budget, work).await {
            Ok(outcome) => outcome?,
            Err(_) => bail!(
                "compiling it took longer than the {}s allowed (--compile-timeout)",
                self.limits.budget.as_secs_f64()
            ),
        };
        if status.success() {
            return Ok(code);
        }
        let error = String::from_utf8_lossy(&error);
        // The allocator's panic, or the engine's own set-up failing to map
        // memory (ENOMEM) under the cap.
        let starved = ["memory allocation", "out of memory", "Cannot allocate memory"];
        if starved.iter().any(|sign| error.contains(sign)) {
            bail!(
                "compiling it needed more than the {} MiB allowed (--compile-memory)",
                self.limits.memory_bytes / (1024 * 1024)
            );
        }
        match error.trim() {
            "" => bail!("the compiling process failed ({status})"),
            error => bail!("{error}"),
        }
    }
}

/// `runner compile-plugin`: the child's side. Reads a component on stdin,
/// writes its compiled code on stdout; an error goes to stderr.
pub fn compile_stdin(engine: EngineLimits) -> Result<()> {
    use std::io::{Read, Write};
    let mut wasm = Vec::new();
    std::io::stdin().read_to_end(&mut wasm).context("reading the component")?;
    let engine = crate::engine::build(engine)?;
    let code = engine
        .precompile_component(&wasm)
        .map_err(anyhow::Error::from)
        .context("not a valid WebAssembly component")?;
    std::io::stdout().write_all(&code).context("writing the compiled code")?;
    Ok(())
}
