//! The iframe transport's escaping, for any message: each message is exactly
//! one `<script>parent.comet(JSON);</script>` whose script text holds no `<`,
//! `>`, `&`, U+2028 or U+2029 (so nothing in it can end the element, open a
//! comment or end a JavaScript line), and whose JSON gives back the message.

use comet::transport::{encode_event, missed_notice, Transport};
use proptest::prelude::*;

/// The script text of one iframe event, checked for shape and inertness.
fn script_text(event: &[u8]) -> String {
    let text = std::str::from_utf8(event).expect("UTF-8");
    let inner = text
        .strip_prefix("<script>parent.comet(")
        .and_then(|s| s.strip_suffix(");</script>\n"))
        .unwrap_or_else(|| panic!("not one script element: {text:?}"));
    assert!(
        !inner.contains(['<', '>', '&', '\u{2028}', '\u{2029}']),
        "{inner:?}"
    );
    inner.to_string()
}

/// Strings made mostly of the characters that matter to HTML and JavaScript.
fn hostile() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("<".to_string()),
        Just(">".to_string()),
        Just("&".to_string()),
        Just("/".to_string()),
        Just("\\".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("\u{2028}".to_string()),
        Just("\u{2029}".to_string()),
        Just("</script>".to_string()),
        Just("</SCRIPT ".to_string()),
        Just("<!--".to_string()),
        Just("-->".to_string()),
        Just("]]>".to_string()),
        Just("\\u003c".to_string()),
        Just("\\ud800".to_string()),
        "[\\x01-\\x1f\\x7f]",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..64).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn hostile_messages_stay_inside_their_script(data in hostile(), id in 1u64..u64::MAX) {
        let inner = script_text(&encode_event(Transport::Iframe, id, &data));
        let v: serde_json::Value = serde_json::from_str(&inner).expect("JSON");
        prop_assert_eq!(v["id"].as_u64(), Some(id));
        prop_assert_eq!(v["data"].as_str(), Some(data.as_str()));
    }

    #[test]
    fn any_message_stays_inside_its_script(data in any::<String>()) {
        let inner = script_text(&encode_event(Transport::Iframe, 1, &data));
        let v: serde_json::Value = serde_json::from_str(&inner).expect("JSON");
        prop_assert_eq!(v["data"].as_str(), Some(data.as_str()));
    }
}

#[test]
fn missed_notice_is_inert_too() {
    let n = missed_notice(Transport::Iframe, 7, false);
    let inner = script_text(&n);
    assert_eq!(inner, "{\"missed\":7}");
}
