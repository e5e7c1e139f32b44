//! TCP deframing: arbitrary streams in arbitrary chunks; frames must come out the same
//! whatever the chunking.
#![no_main]

use datapath::framing::{Deframed, Deframer};
use libfuzzer_sys::fuzz_target;

fn run(stream: &[u8], chunk: usize) -> (Vec<Vec<u8>>, bool) {
    let mut d = Deframer::new();
    let mut frames = Vec::new();
    for c in stream.chunks(chunk.max(1)) {
        let mut input = c;
        while !input.is_empty() {
            match d.deframe(input) {
                Ok((used, r)) => {
                    assert!(used <= input.len() && used > 0);
                    match r {
                        Deframed::NeedMore => {}
                        Deframed::InInput(range) => frames.push(input[range].to_vec()),
                        Deframed::Buffered => frames.push(d.buffered().to_vec()),
                    }
                    input = &input[used..];
                }
                Err(_) => return (frames, true),
            }
        }
    }
    (frames, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else { return };
    let whole = run(stream, stream.len().max(1));
    let chunked = run(stream, usize::from(chunk));
    assert_eq!(whole, chunked);
});
