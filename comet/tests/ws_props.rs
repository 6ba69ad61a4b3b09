//! Property tests of the WebSocket codec: any message round-trips byte for
//! byte, however it is fragmented, chunked and masked, in both directions;
//! and the decoder's answer never depends on how its input was cut.

use bytes::Bytes;
use comet::ws::{apply_mask, client, encode, Decoder, Error, Event, Header, Opcode};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

/// Any text: mostly short and of any characters, sometimes long enough to
/// need the 64-bit length form.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        9 => vec(any::<char>(), 0..300).prop_map(String::from_iter),
        1 => (any::<char>(), 65_000usize..66_000)
            .prop_map(|(c, n)| c.to_string().repeat(n / c.len_utf8())),
    ]
}

/// One client message and how it travels: fragment sizes (the last fragment
/// takes the rest), a ping or none after each fragment, and a mask per frame.
#[derive(Debug, Clone)]
struct Sent {
    text: String,
    cuts: Vec<usize>,
    pings: Vec<Option<Vec<u8>>>,
    masks: Vec<[u8; 4]>,
}

fn sent() -> impl Strategy<Value = Sent> {
    (
        text(),
        vec(0usize..2_000, 0..6),
        vec(option::of(vec(any::<u8>(), 0..=125)), 0..7),
        vec(any::<[u8; 4]>(), 1..8),
    )
        .prop_map(|(text, cuts, pings, masks)| Sent {
            text,
            cuts,
            pings,
            masks,
        })
}

/// The client's frames for `s`, and the events the server must see.
fn client_frames(s: &Sent, out: &mut Vec<u8>, expect: &mut Vec<Event>) {
    let bytes = s.text.as_bytes();
    let mut masks = s.masks.iter().copied().cycle();
    let mut at = 0;
    let mut pieces = Vec::new();
    for &cut in &s.cuts {
        let end = (at + cut).min(bytes.len());
        pieces.push(&bytes[at..end]);
        at = end;
    }
    pieces.push(&bytes[at..]);
    let last = pieces.len() - 1;
    for (i, piece) in pieces.iter().enumerate() {
        let opcode = if i == 0 {
            Opcode::Text
        } else {
            Opcode::Continuation
        };
        out.extend_from_slice(&client::frame(
            i == last,
            opcode,
            piece,
            masks.next().unwrap(),
        ));
        // A control frame may come between fragments, not after the last.
        if let Some(Some(p)) = s.pings.get(i).filter(|_| i < last) {
            out.extend_from_slice(&client::ping(p, masks.next().unwrap()));
            expect.push(Event::Ping(Bytes::copy_from_slice(p)));
        }
    }
    expect.push(Event::Text(s.text.clone()));
}

/// Feeds `bytes` to `d` in pieces of the sizes `cuts` (cycled).
fn feed_cut(d: &mut Decoder, bytes: &[u8], cuts: &[usize]) -> (Vec<Event>, Result<(), Error>) {
    let mut out = Vec::new();
    let mut rest = bytes;
    for &cut in cuts.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(cut.min(rest.len()));
        rest = tail;
        if let Err(e) = d.feed(piece, &mut out) {
            return (out, Err(e));
        }
    }
    (out, Ok(()))
}

/// Any frame a hostile or broken peer might send: the first byte mostly one
/// that is meaningful, the mask present or not.
fn rough_frame() -> impl Strategy<Value = Vec<u8>> {
    let first = prop_oneof![
        Just(0x81u8),
        Just(0x01),
        Just(0x80),
        Just(0x00),
        Just(0x89),
        Just(0x8A),
        Just(0x88),
        any::<u8>(),
    ];
    let payload = prop_oneof![
        3 => vec(any::<u8>(), 0..130),
        1 => any::<String>().prop_map(String::into_bytes),
    ];
    (first, payload, option::of(any::<[u8; 4]>())).prop_map(|(first, payload, mask)| {
        let mut f = Header::new(false, Opcode::Continuation, payload.len() as u64, mask)
            .as_bytes()
            .to_vec();
        f[0] = first;
        let start = f.len();
        f.extend_from_slice(&payload);
        if let Some(key) = mask {
            apply_mask(&mut f[start..], key, 0);
        }
        f
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn client_messages_round_trip_through_the_server_decoder(
        messages in vec(sent(), 1..4),
        chunks in vec(1usize..300, 1..12),
        slack in 0usize..3,
    ) {
        let mut wire = Vec::new();
        let mut expect = Vec::new();
        for m in &messages {
            client_frames(m, &mut wire, &mut expect);
        }
        wire.extend_from_slice(&client::close(1000, "done", [9, 8, 7, 6]));
        expect.push(Event::Close { code: Some(1000), reason: "done".into() });
        // The largest message exactly at the max, or a little under it.
        let max = messages.iter().map(|m| m.text.len()).max().unwrap() + slack;
        let mut d = Decoder::server(max);
        let (got, r) = feed_cut(&mut d, &wire, &chunks);
        prop_assert_eq!(r, Ok(()));
        prop_assert_eq!(got, expect);
        prop_assert!(d.is_closed());
        prop_assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn a_message_one_byte_above_the_max_is_refused(s in sent(), chunks in vec(1usize..300, 1..12)) {
        prop_assume!(!s.text.is_empty());
        let mut wire = Vec::new();
        client_frames(&s, &mut wire, &mut Vec::new());
        let mut d = Decoder::server(s.text.len() - 1);
        let (got, r) = feed_cut(&mut d, &wire, &chunks);
        prop_assert_eq!(r, Err(Error::TooBig));
        prop_assert!(got.iter().all(|e| !matches!(e, Event::Text(_))));
    }

    #[test]
    fn server_frames_round_trip_through_the_client_decoder(
        messages in vec((text(), any::<bool>()), 1..4),
        pings in vec(vec(any::<u8>(), 0..=125), 0..3),
        code in prop_oneof![1000u16..=1003, 1007u16..=1014, 3000u16..=4999],
        reason in vec(any::<char>(), 0..130).prop_map(String::from_iter),
        chunks in vec(1usize..300, 1..12),
    ) {
        let mut wire = Vec::new();
        let mut expect = Vec::new();
        for (i, (text, shared)) in messages.iter().enumerate() {
            if *shared {
                // A payload held once for every subscriber, behind its own header.
                wire.extend_from_slice(encode::text_header(text.len()).as_bytes());
                wire.extend_from_slice(text.as_bytes());
            } else {
                wire.extend_from_slice(&encode::text(text));
            }
            expect.push(Event::Text(text.clone()));
            if let Some(p) = pings.get(i) {
                wire.extend_from_slice(&encode::ping(p));
                wire.extend_from_slice(&encode::pong(p));
                expect.push(Event::Ping(Bytes::copy_from_slice(p)));
                expect.push(Event::Pong(Bytes::copy_from_slice(p)));
            }
        }
        wire.extend_from_slice(&encode::close(code, &reason));
        // The reason is cut to fit a control frame, at a character boundary.
        let mut cut = reason.len().min(123);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        expect.push(Event::Close { code: Some(code), reason: reason[..cut].to_string() });
        let max = messages.iter().map(|(t, _)| t.len()).max().unwrap();
        let mut d = Decoder::client(max);
        let (got, r) = feed_cut(&mut d, &wire, &chunks);
        prop_assert_eq!(r, Ok(()));
        prop_assert_eq!(got, expect);
    }

    #[test]
    fn the_answer_does_not_depend_on_how_bytes_are_cut(
        frames in vec(rough_frame(), 1..8),
        tail in vec(any::<u8>(), 0..20),
        a in vec(1usize..40, 1..8),
        b in vec(1usize..40, 1..8),
        server in any::<bool>(),
        max in 0usize..300,
    ) {
        let mut wire = frames.concat();
        wire.extend_from_slice(&tail);
        let new = || if server { Decoder::server(max) } else { Decoder::client(max) };
        let (ea, ra) = feed_cut(&mut new(), &wire, &a);
        let (eb, rb) = feed_cut(&mut new(), &wire, &b);
        prop_assert_eq!(&ea, &eb);
        prop_assert_eq!(ra, rb);
        for e in &ea {
            if let Event::Text(t) = e {
                prop_assert!(t.len() <= max);
            }
        }
        if let Err(e) = ra {
            prop_assert!([1002, 1003, 1007, 1009].contains(&e.close_code()));
        }
    }
}
