//! Correlating findings into incidents: the cost per finding with thousands of active
//! incidents (the correlator runs on every stored batch).
//!
//! `cargo bench -p vigil-respond --bench correlate`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use vigil_core::Finding;
use vigil_respond::correlate::{CorrelationConfig, Correlator};

/// `n` findings over `hosts` hosts, ten kinds of condition, one second apart.
fn findings(n: usize, hosts: usize) -> Vec<Finding> {
    (0..n)
        .map(|i| {
            let mut f = Finding::new(
                format!("analyzer-{}", i % 10),
                40.0 + (i % 50) as f64,
                format!("condition {}: details", i % 10),
            );
            f.host_name = Some(format!("host-{}", i % hosts));
            f.timestamp = format!(
                "2026-11-30T{:02}:{:02}:{:02}Z",
                (i / 3600) % 24,
                (i / 60) % 60,
                i % 60
            );
            f.techniques = vec![format!("T{}", 1000 + i % 30)];
            f
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("correlate");
    for hosts in [100, 10_000] {
        let batch = findings(10_000, hosts);
        group.throughput(Throughput::Elements(batch.len() as u64));
        group.bench_function(format!("10k_findings_{hosts}_hosts"), |b| {
            b.iter(|| {
                let mut c = Correlator::new(CorrelationConfig::default());
                black_box(c.absorb(black_box(&batch)))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
