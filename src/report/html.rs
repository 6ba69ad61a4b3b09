//! Text into HTML: escaping, and the few shapes every section uses.
//!
//! The report is written as polyglot HTML (also well-formed XML: void
//! elements closed with `/>`, no named entity but the five of XML), so that
//! a test can read it with an XML parser and a browser reads it as HTML.

/// `s` safe as element text and as a quoted attribute value.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0, nor useful here.
            c if c.is_control() && !matches!(c, '\n' | '\t') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A `<dl>` of (term, definition) pairs; definitions are HTML already.
pub fn facts(class: &str, rows: &[(&str, String)]) -> String {
    let mut out = format!("<dl class=\"{class}\">\n");
    for (term, def) in rows {
        out.push_str(&format!("<dt>{}</dt><dd>{def}</dd>\n", esc(term)));
    }
    out.push_str("</dl>\n");
    out
}

/// An argument vector as one shell line: arguments with anything but
/// `[A-Za-z0-9_./=:,+@%-]` in single quotes, so that it can be pasted back.
pub fn shell_line(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_./=:,+@%-".contains(c));
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_elements_and_attributes() {
        let cases = [
            ("plain", "plain"),
            ("<img onerror=x>", "&lt;img onerror=x&gt;"),
            ("a & b", "a &amp; b"),
            (r#"" onmouseover='x'"#, "&quot; onmouseover=&#39;x&#39;"),
            ("</script>", "&lt;/script&gt;"),
            ("bell\u{7}", "bell\u{FFFD}"),
            ("two\nlines", "two\nlines"),
        ];
        for (input, want) in cases {
            assert_eq!(esc(input), want, "{input:?}");
        }
    }

    #[test]
    fn shell_lines_quote_what_the_shell_would_split() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases = [
            (v(&["cometbench", "run", "a.toml"]), "cometbench run a.toml"),
            (v(&["--steps", "1,2"]), "--steps 1,2"),
            (v(&["--target", "http://h/{c}"]), "--target 'http://h/{c}'"),
            (v(&["it's"]), r"'it'\''s'"),
            (v(&[""]), "''"),
        ];
        for (args, want) in cases {
            assert_eq!(shell_line(&args), want, "{args:?}");
        }
    }
}
