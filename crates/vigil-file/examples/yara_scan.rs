//! Prints the default rules that match each file: `cargo run -p vigil-file --example yara_scan -- FILE…`.
fn main() {
    let set = vigil_file::yara::RuleSet::compile(&[], true).expect("the default rules compile");
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).expect("readable");
        let found = set
            .scan(&bytes, std::time::Duration::from_secs(5))
            .expect("scan");
        let names: Vec<_> = found.iter().map(|m| m.rule.as_str()).collect();
        println!("{path}: {names:?}");
    }
}
