//! Prints the static report of files as JSON: `cargo run -p vigil-file --example report -- FILE…`.
fn main() {
    for path in std::env::args().skip(1) {
        match std::fs::read(&path) {
            Ok(bytes) => {
                let r = vigil_file::analyze(&bytes, &vigil_file::Limits::default());
                println!("{}", serde_json::to_string(&r).expect("serializable"));
            }
            Err(e) => eprintln!("{path}: {e}"),
        }
    }
}
