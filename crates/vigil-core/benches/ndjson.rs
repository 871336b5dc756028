//! Parsing and normalizing NDJSON batches: the CPU cost of every ingested event.
//!
//! `cargo bench -p vigil-core --bench ndjson`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn batch(n: usize, dotted: bool) -> Vec<u8> {
    let mut out = String::new();
    for i in 0..n {
        let line = if dotted {
            format!(
                r#"{{"@timestamp":"2026-11-24T10:00:00.{i:06}Z","event.category":"process","host.name":"host-{h}","agent.id":"agent-{h}","process.pid":{i},"process.name":"bash","process.command_line":"bash -c id {i}","source.ip":"10.0.0.{b}","source.port":443,"message":"event {i}"}}"#,
                h = i % 200,
                b = i % 250
            )
        } else {
            format!(
                r#"{{"@timestamp":"2026-11-24T10:00:00.{i:06}Z","event":{{"category":"process"}},"host":{{"name":"host-{h}"}},"agent":{{"id":"agent-{h}"}},"process":{{"pid":{i},"name":"bash","command_line":"bash -c id {i}"}},"source":{{"ip":"10.0.0.{b}","port":443}},"message":"event {i}"}}"#,
                h = i % 200,
                b = i % 250
            )
        };
        out.push_str(&line);
        out.push('\n');
    }
    out.into_bytes()
}

fn bench(c: &mut Criterion) {
    let now = chrono::Utc::now();
    let mut group = c.benchmark_group("ndjson_parse_batch");
    for (name, dotted) in [("nested", false), ("dotted", true)] {
        let body = batch(5000, dotted);
        group.throughput(Throughput::Elements(5000));
        group.bench_function(name, |b| {
            b.iter(|| vigil_core::ndjson::parse_batch(black_box(&body), 10_000, now).unwrap())
        });
        // The floor: serde_json alone, no normalization or validation.
        group.bench_function(format!("{name}_serde_json_only"), |b| {
            b.iter(|| {
                for line in black_box(&body)
                    .split(|c| *c == b'\n')
                    .filter(|l| !l.is_empty())
                {
                    black_box(serde_json::from_slice::<serde_json::Value>(line).unwrap());
                }
            })
        });
        // What parse_batch uses: the same, refusing duplicate keys (issue 22).
        group.bench_function(format!("{name}_strict_json_only"), |b| {
            b.iter(|| {
                for line in black_box(&body)
                    .split(|c| *c == b'\n')
                    .filter(|l| !l.is_empty())
                {
                    black_box(vigil_core::strict_json::from_slice(line).unwrap());
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
