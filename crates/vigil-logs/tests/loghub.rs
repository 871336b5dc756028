//! Drain's grouping accuracy on the Loghub 2k sets, which live outside the repository
//! (`loghub-2k/` under `$VIGIL_SHARED_DATA`, `../shared/data` beside the repository, or
//! `/work/shared/data`). Without them the test is skipped with a warning, unless
//! `VIGIL_REQUIRE_DATA=1`, which makes missing data a failure.

use std::path::PathBuf;

use vigil_logs::loghub::{SYSTEMS, evaluate, systems_in};

fn loghub_dir() -> Option<PathBuf> {
    let beside = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    let dir = std::env::var_os("VIGIL_SHARED_DATA")
        .map(PathBuf::from)
        .into_iter()
        .chain([beside, PathBuf::from("/work/shared/data")])
        .map(|d| d.join("loghub-2k"))
        .find(|d| d.is_dir());
    if dir.is_none() {
        if std::env::var_os("VIGIL_REQUIRE_DATA").is_some_and(|v| v == "1") {
            panic!("VIGIL_REQUIRE_DATA=1 but loghub-2k is missing");
        }
        eprintln!(
            "\n*** SKIPPED: loghub-2k not found (VIGIL_REQUIRE_DATA=1 makes this a failure) ***\n"
        );
    }
    dir
}

#[test]
fn drain_groups_loghub_lines_about_as_well_as_published() {
    let Some(dir) = loghub_dir() else { return };
    let mut total = 0.0;
    let found = systems_in(&dir).unwrap();
    assert_eq!(found.len(), SYSTEMS.len(), "{found:?}");
    for sys in SYSTEMS {
        let r = evaluate(&dir, sys.name).unwrap();
        eprintln!(
            "{:10} accuracy {:.4} tuned {:.4} published {:.4} templates {}/{} mismatches {} {:.0} lines/s",
            r.system,
            r.accuracy,
            r.accuracy_tuned,
            sys.published,
            r.templates,
            r.true_templates,
            r.content_mismatches,
            r.lines_per_second
        );
        assert_eq!(r.lines, 2000);
        assert_eq!(
            r.content_mismatches, 0,
            "{}: the header format cuts lines as Loghub did",
            r.system
        );
        total += r.accuracy;
    }
    let mean = total / SYSTEMS.len() as f64;
    eprintln!("mean accuracy {mean:.4}");
    // Drain's published figures average 0.9127 over these eight; Vigil's defaults (one
    // setting for all systems) lose Linux's tuned depth and threshold.
    assert!(mean > 0.85, "mean grouping accuracy {mean:.4}");
    let r = evaluate(&dir, "HDFS").unwrap();
    assert!(r.accuracy > 0.99, "HDFS {}", r.accuracy);
}

/// Golden templates: the HDFS 2k sample mined with the defaults. A change here changes the
/// ids and templates users see; update it only on purpose.
#[test]
fn golden_hdfs_templates() {
    use vigil_logs::format::LogFormat;
    use vigil_logs::{Drain, DrainConfig};
    let Some(dir) = loghub_dir() else { return };
    let text = std::fs::read_to_string(dir.join("HDFS/HDFS_2k.log")).unwrap();
    let format = LogFormat::new("<Date> <Time> <Pid> <Level> <Component>: <Content>").unwrap();
    let mut d = Drain::new(DrainConfig::default());
    for line in text.lines() {
        d.parse(format.split(line).unwrap().content);
    }
    let got: Vec<(u32, u64, String)> = d
        .clusters()
        .iter()
        .take(11)
        .map(|c| (c.id, c.count, c.template()))
        .collect();
    let want = [
        (1, 311, "PacketResponder <*> for block blk_<*> terminating"),
        (
            2,
            314,
            "BLOCK* NameSystem.addStoredBlock: blockMap updated: <*> is added to blk_<*> size <*>",
        ),
        (3, 292, "Received block blk_<*> of size <*> from /<*>"),
        (
            4,
            292,
            "Receiving block blk_<*> src: /<*>:<*> dest: /<*>:<*>",
        ),
        (5, 115, "BLOCK* NameSystem.allocateBlock: <*>. blk_<*>"),
        (6, 20, "Verification succeeded for blk_<*>"),
        (7, 263, "Deleting block blk_<*> file <*>"),
        (8, 80, "<*> Served block blk_<*> to /<*>"),
        (
            9,
            80,
            "<*>:<*>:Got exception while serving blk_<*> to /<*>:",
        ),
        (
            10,
            224,
            "BLOCK* NameSystem.delete: blk_<*> is added to invalidSet of <*>",
        ),
        (
            11,
            1,
            "<*> Starting thread to transfer block blk_<*> to <*>",
        ),
    ];
    let want: Vec<(u32, u64, String)> = want
        .iter()
        .map(|(i, n, t)| (*i, *n, t.to_string()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(d.clusters().len(), 16);
}
