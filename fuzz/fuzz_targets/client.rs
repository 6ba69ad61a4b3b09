//! The client side: every decoder the load generator trusts with a server's bytes.
#![no_main]

use comet::client::{
    parse_longpoll, parse_response_head, ChunkedDecoder, SseDecoder, StreamDecoder, Subscriber,
};
use comet::Transport;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (cut, body) = match data.split_first() {
        Some((c, rest)) => ((*c as usize % 64) + 1, rest),
        None => return,
    };
    for t in Transport::ALL {
        let mut s = Subscriber::new(t);
        let mut out = Vec::new();
        for piece in body.chunks(cut) {
            if s.feed(piece, &mut out).is_err() {
                break;
            }
        }
        if t != Transport::Longpoll {
            let mut d = StreamDecoder::new(t);
            for piece in body.chunks(cut) {
                if d.feed(piece, &mut Vec::new()).is_err() {
                    break;
                }
            }
        }
    }
    let _ = parse_response_head(body);
    let _ = parse_longpoll(body);
    SseDecoder::default().feed(body, &mut Vec::new());
    let _ = ChunkedDecoder::default().feed(body, &mut Vec::new());
});
