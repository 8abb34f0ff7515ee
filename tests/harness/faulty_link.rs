//! A TCP link the test controls, in front of a real server on loopback:
//! noxious (a Rust port of Toxiproxy's toxics) adds latency to it. This
//! machine's kernel has no `netem`, so the faults live in the path.
//!
//! Its stall (Toxiproxy's `timeout` toxic) is no partition: it drops the
//! bytes it holds, which TCP never does; [`crate::Partition`] makes one.

use crate::free_port;
use noxious::proxy::{ProxyConfig, ProxyRunner, Runner as _, Toxics};
use noxious::signal::{Close, Stop, Stopper};
use noxious::socket::TcpListener;
use noxious::toxic::{StreamDirection, Toxic, ToxicEvent, ToxicEventKind, ToxicEventResult, ToxicKind};

/// A proxy from `127.0.0.1:<port>` to a server, stopped when dropped.
pub struct FaultyLink {
    /// Where clients connect instead of the server.
    pub port: u16,
    /// The proxy's own runtime, apart from the test's.
    runtime: tokio::runtime::Runtime,
    /// Adds and removes faults.
    events: bmrng::RequestSender<ToxicEvent, ToxicEventResult>,
    /// Stops the proxy.
    stopper: Option<Stopper>,
    /// Held while the proxy runs.
    _close: Close,
}

impl FaultyLink {
    /// A clean link to the server on `upstream_port`.
    pub fn start(upstream_port: u16) -> FaultyLink {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("the link's runtime");
        let port = free_port();
        let config = ProxyConfig {
            name: "link".into(),
            listen: format!("127.0.0.1:{port}"),
            upstream: format!("127.0.0.1:{upstream_port}"),
            enabled: true,
            rand_seed: None,
        };
        let (events, receiver) = bmrng::channel(16);
        let (stop, stopper) = Stop::new();
        let (close, closer) = Close::new();
        let (listener, info) = runtime
            .block_on(ProxyRunner::initialize_proxy::<TcpListener>(config, Toxics::empty()))
            .expect("binding the faulty link");
        runtime.spawn(async move {
            let _ = ProxyRunner::run_proxy(listener, info, receiver, stop, closer).await;
        });
        FaultyLink { port, runtime, events, stopper: Some(stopper), _close: close }
    }

    /// `redis://127.0.0.1:<port>`, for a Redis behind the link.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Adds `ms` milliseconds to every round trip, half each way.
    pub fn latency(&self, ms: u64) {
        let half = ToxicKind::Latency { latency: ms / 2, jitter: 0 };
        self.add("latency-up", half, StreamDirection::Upstream);
        self.add("latency-down", half, StreamDirection::Downstream);
    }

    fn add(&self, name: &str, kind: ToxicKind, direction: StreamDirection) {
        let toxic = Toxic { kind, name: name.into(), toxicity: 1.0, direction };
        self.event(ToxicEventKind::AddToxic(toxic));
    }

    fn event(&self, kind: ToxicEventKind) {
        let event = ToxicEvent { proxy_name: "link".into(), kind };
        let answer = self.runtime.block_on(self.events.send_receive(event));
        assert!(matches!(answer, Ok(Ok(()))), "the link refused a fault: {answer:?}");
    }
}

impl Drop for FaultyLink {
    fn drop(&mut self) {
        if let Some(stopper) = self.stopper.take() {
            stopper.stop();
        }
    }
}
