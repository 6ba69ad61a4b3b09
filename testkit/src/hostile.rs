//! Messages that try to break out of the iframe transport's `<script>`
//! element. Each would set `parent.pwned` (or `window.pwned`) if any part of it
//! ran as script. Used by `dispatchers/tests/security.rs` (raw bytes) and
//! the root `tests/browser.rs` (a real browser).

/// The hostile messages, in the order they are published.
pub fn hostile_messages() -> Vec<String> {
    let mut v: Vec<String> = [
        "</script><script>parent.pwned=1;window.pwned=1</script>",
        "</SCRIPT ><script>parent.pwned=2</script >",
        "</script\t><script>parent.pwned=3</script/>",
        "</ScRiPt\n><img src=x onerror=\"parent.pwned=4\">",
        "<!--<script>parent.pwned=5</script>-->",
        "<!--<script>",
        "-->--!><script>parent.pwned=6</script>",
        "]]><script>parent.pwned=7</script><![CDATA[",
        "line\u{2028}separator\u{2029}paragraph\u{2028}');parent.pwned=8;//",
        // Literal escapes as text: must stay text, not be decoded by the server.
        "\\u003c/script\\u003e\\u003cscript\\u003eparent.pwned=9\\u003c/script\\u003e",
        "\\x3c/script\\x3e <\\/script> \\\\u003c",
        // Quotes and backslashes that would end the JSON string or the call.
        "\"});parent.pwned=10;({\"a\":\"",
        "'\"`\\\"\\\\\"\\'});parent.pwned=11;//",
        "\\\"});parent.pwned=12;//\\",
        // Invalid-looking surrogates as literal text, and real astral characters.
        "\\ud800 \\udfff \\uD83D\\uDE00 \\uDC00\\uD800",
        "😀 𝄞 \u{10FFFF} \u{FEFF} \u{FFFD}",
        // Entities, and things that look like chunk or HTTP framing.
        "&lt;/script&gt;&#60;/script&#62;&amp;&#x3C;",
        "0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<script>parent.pwned=13</script>",
        "",
        "<svg onload=parent.pwned=14>",
        "<iframe srcdoc=\"<script>parent.parent.pwned=15</script>\"></iframe>",
        "</title></head><body onload=parent.pwned=16>",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    // Every control character but NUL.
    v.push((1u8..=0x1f).chain([0x7f]).map(char::from).collect());
    // Very long lines, hostile all along.
    v.push(
        "</script><script>parent.pwned=17</script>"
            .repeat(400)
            .chars()
            .take(16_000)
            .collect(),
    );
    v.push(format!(
        "{}</script>{}",
        "x".repeat(30_000),
        "<&>".repeat(1000)
    ));
    v
}
