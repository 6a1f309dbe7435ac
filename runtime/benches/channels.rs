//! Dispatch throughput of the real channels:
//!
//!     CAIRN_TEST_PYTHON=target/sdk-venv/bin/python \
//!         cargo bench -p cairn-runtime --bench channels
//!
//! Email: messages queued in a SQLite store are dispatched over pooled SMTP connections
//! to aiosmtpd (a Python server, itself the bottleneck), or to the server at
//! `CAIRN_BENCH_SMTP=host:port` (postfix's `smtp-sink`, say). SMS: the same through the
//! generic JSON provider API to an HTTP server on loopback. Each figure is the median of
//! `CAIRN_BENCH_RUNS` runs (default 3) of `CAIRN_BENCH_MESSAGES` messages (default 5000),
//! counted from the first claim to the last result recorded; `CAIRN_BENCH_POOLS` lists the
//! SMTP pool sizes to measure (default `1,10,100`).

use cairn_runtime::channels::bench::{SmtpSink, drain, queue, sms_config, sms_sink, smtp_config};
use cairn_runtime::store::Store;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing to run.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let messages = setting("CAIRN_BENCH_MESSAGES", 5_000);
    let runs = setting("CAIRN_BENCH_RUNS", 3).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (_sink, host, port, what) = match std::env::var("CAIRN_BENCH_SMTP") {
            Ok(address) => {
                let (host, port) = address
                    .rsplit_once(':')
                    .expect("CAIRN_BENCH_SMTP is host:port");
                let port = port.parse().expect("CAIRN_BENCH_SMTP's port is a number");
                (None, host.to_string(), port, format!("the SMTP server at {address}"))
            }
            Err(_) => {
                let python = std::env::var("CAIRN_TEST_PYTHON")
                    .expect("set CAIRN_TEST_PYTHON (a Python with aiosmtpd) or CAIRN_BENCH_SMTP");
                let sink = SmtpSink::start(&python, &dir.path().join("mail"), true)
                    .expect("the SMTP server");
                let port = sink.port;
                (Some(sink), "127.0.0.1".to_string(), port, "aiosmtpd".to_string())
            }
        };
        let pools: Vec<u32> = std::env::var("CAIRN_BENCH_POOLS")
            .unwrap_or_else(|_| "1,10,100".into())
            .split(',')
            .filter_map(|p| p.trim().parse().ok())
            .collect();
        for pool in pools {
            let rate = median(runs, |run| {
                let dir = dir.path().join(format!("email-{pool}-{run}"));
                let host = host.clone();
                async move {
                    std::fs::create_dir_all(&dir).expect("a folder");
                    let store = Store::open_sqlite_file(&dir.join("cairn.db"))
                        .await
                        .expect("a store");
                    queue(&store, "email", messages).await.expect("queue");
                    let drained = drain(&store, smtp_config(&dir, &host, port, pool))
                        .await
                        .expect("dispatch");
                    assert_eq!(drained.sent as usize, messages, "{drained:?}");
                    store.close().await;
                    messages as f64 / drained.elapsed.as_secs_f64()
                }
            })
            .await;
            println!(
                "email: {rate:>8.0} messages/s to {what}, {pool:>2} pooled connection(s), {messages} messages, median of {runs}"
            );
        }
        let url = sms_sink().await.expect("an SMS provider");
        let rate = median(runs, |run| {
            let dir = dir.path().join(format!("sms-{run}"));
            let url = url.clone();
            async move {
                std::fs::create_dir_all(&dir).expect("a folder");
                let store = Store::open_sqlite_file(&dir.join("cairn.db"))
                    .await
                    .expect("a store");
                queue(&store, "sms", messages).await.expect("queue");
                let drained = drain(&store, sms_config(&dir, &url)).await.expect("dispatch");
                assert_eq!(drained.sent as usize, messages, "{drained:?}");
                store.close().await;
                messages as f64 / drained.elapsed.as_secs_f64()
            }
        })
        .await;
        println!(
            "sms:   {rate:>8.0} messages/s to a JSON provider on loopback, {messages} messages, median of {runs}"
        );
    });
}

async fn median<F, Fut>(runs: usize, mut run: F) -> f64
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = f64>,
{
    let mut rates = Vec::with_capacity(runs);
    for i in 0..runs {
        rates.push(run(i).await);
    }
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}
