//! The binary protocol's frame decoder on arbitrary bytes: a frame, "need more", or an
//! error, never a panic; a decoded frame re-encodes to the bytes it consumed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_file::protocol::{decode, decode_reply, encode_request};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((frame, used))) = decode(data, 1 << 20) {
        let fields: Vec<&[u8]> = frame.fields.iter().map(Vec::as_slice).collect();
        assert_eq!(encode_request(frame.command, &fields), &data[..used]);
    }
    let _ = decode_reply(data);
});
