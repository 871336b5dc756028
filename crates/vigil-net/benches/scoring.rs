//! Scoring cost of the network model: one live connection (features against baselines,
//! k-NN or Isolation Forest, reasons), and batches of NSL-KDD-shaped rows.
//!
//! `cargo bench -p vigil-net --bench scoring`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use vigil_net::model::{
    Method, ModelParams, NetModel, NumericColumn, Sample, Schema, TrainingInfo,
};

/// Deterministic pseudo-random numbers in [0, 1).
fn rng(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed;
    move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// 38 numeric columns (heavy-tailed ones log-scaled) and 3 categories, like NSL-KDD.
fn data(n: usize, seed: u64) -> (Schema, Vec<Sample>) {
    let schema = Schema {
        numeric: (0..38)
            .map(|i| NumericColumn {
                name: format!("x{i}"),
                log: i % 3 == 0,
            })
            .collect(),
        categorical: vec!["protocol".into(), "service".into(), "flag".into()],
    };
    let mut r = rng(seed);
    let samples = (0..n)
        .map(|_| Sample {
            numeric: (0..38)
                .map(|i| {
                    if i % 3 == 0 {
                        (r() * 12.0).exp()
                    } else if i % 5 == 0 {
                        0.0
                    } else {
                        r()
                    }
                })
                .collect(),
            categorical: vec![
                ["tcp", "udp", "icmp"][(r() * 3.0) as usize].into(),
                format!("svc{}", (r() * r() * 60.0) as usize),
                ["SF", "S0", "REJ"][(r() * r() * 3.0) as usize].into(),
            ],
        })
        .collect();
    (schema, samples)
}

fn bench(c: &mut Criterion) {
    let (schema, normal) = data(12_000, 1);
    let (_, test) = data(20_000, 2);
    let mut g = c.benchmark_group("nsl_kdd_shaped_batch");
    g.throughput(Throughput::Elements(test.len() as u64));
    g.sample_size(10);
    for method in [Method::Knn, Method::Iforest] {
        let params = ModelParams {
            method,
            ..ModelParams::default()
        };
        let model = NetModel::train(&schema, &normal, &params, TrainingInfo::default()).unwrap();
        g.bench_function(format!("{}_1_thread", method.as_str()), |b| {
            b.iter(|| black_box(model.score_all(black_box(&test), 1).unwrap()))
        });
    }
    g.finish();

    // One live connection through the detector (features, score, reasons).
    use vigil_net::detector::{NetConfig, NetDetector, train};
    use vigil_net::record::{ConnectionRecord, Direction, Protocol};
    let mut r = rng(3);
    let records: Vec<ConnectionRecord> = (0..5000)
        .map(|i| ConnectionRecord {
            timestamp: chrono::DateTime::from_timestamp(1_800_000_000 + i * 3, 0).unwrap(),
            host: format!("ws-{}", i % 4),
            process_id: Some(1),
            process_name: ["chrome.exe", "outlook.exe", "svchost.exe"][(r() * 3.0) as usize].into(),
            local_ip: None,
            local_port: None,
            remote_ip: format!("142.250.0.{}", (r() * 30.0) as u8).parse().unwrap(),
            remote_port: Some(443),
            protocol: Protocol::Tcp,
            direction: Direction::Outbound,
            state: None,
            bytes_sent: (r() * 5000.0) as u64,
            bytes_received: (r() * 90000.0) as u64,
            duration_secs: r() * 10.0,
        })
        .collect();
    let model = train(
        &records,
        &ModelParams::default(),
        &Default::default(),
        "bench",
    )
    .unwrap();
    let d = NetDetector::new(NetConfig::default()).unwrap();
    d.install(model, true).unwrap();
    let mut one = records[42].clone();
    c.bench_function("live_connection_analyze", |b| {
        b.iter(|| {
            one.timestamp += chrono::Duration::milliseconds(10);
            black_box(d.analyze(black_box(&one)))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
