//! Syslog datagrams and TCP frames come from anyone who can reach the port: any bytes must
//! become a message (malformed or not) and an ECS event, never a panic, within the bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let m = vigil_logs::syslog::parse(data);
    assert!(m.message.len() <= vigil_logs::syslog::MAX_MESSAGE);
    if let Some(p) = m.priority {
        assert!(p <= 191);
    }
    let e = m.to_ecs(data, None);
    assert_eq!(e["event"]["category"][0], "log");
});
