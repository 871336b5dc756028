//! Which Loghub groups Drain gets wrong, for one system: clusters that mix ground-truth
//! events, and events split over clusters.
//!
//!     cargo run -p vigil-logs --example loghub_groups -- ../shared/data/loghub-2k Linux

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use vigil_logs::loghub::{read_truth, system};
use vigil_logs::{Drain, DrainConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: loghub_groups LOGHUB_DIR SYSTEM"));
    let name = args.next().unwrap_or_else(|| "Linux".into());
    let sys = system(&name).expect("a Loghub system Vigil knows");
    let csv = dir
        .join(sys.name)
        .join(format!("{}_2k.log_structured.csv", sys.name));
    let truth = read_truth(&csv).expect("the structured CSV reads");
    let mut d = Drain::new(DrainConfig::default());
    let ids: Vec<u32> = truth.iter().map(|t| d.parse(&t.content).id).collect();
    let mut by_id: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        by_id.entry(*id).or_default().push(i);
    }
    for (id, lines) in &by_id {
        let events: BTreeSet<&str> = lines.iter().map(|&i| truth[i].event_id.as_str()).collect();
        if events.len() > 1 {
            let template = d.cluster(*id).map(|c| c.template()).unwrap_or_default();
            println!(
                "cluster {id} ({} lines) {template:?} mixes {events:?}",
                lines.len()
            );
        }
    }
    let mut by_event: HashMap<&str, BTreeSet<u32>> = HashMap::new();
    for (i, t) in truth.iter().enumerate() {
        by_event
            .entry(t.event_id.as_str())
            .or_default()
            .insert(ids[i]);
    }
    for (event, clusters) in by_event {
        if clusters.len() > 1 {
            let n = truth.iter().filter(|t| t.event_id == event).count();
            println!("event {event} ({n} lines) split over clusters {clusters:?}");
        }
    }
}
