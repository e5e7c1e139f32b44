//! Key-file parsing: arbitrary text; a parsed file re-encodes to text that parses the same.
#![no_main]

use datapath::keyfile::KeyFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(kf) = KeyFile::parse(data) {
        let mut buf = [0u8; 96];
        let text = kf.encode(&mut buf).to_owned();
        assert_eq!(KeyFile::parse(text.as_bytes()).unwrap(), kf);
        let _ = kf.directions(0).unwrap();
        let _ = kf.directions(1).unwrap();
    }
});
