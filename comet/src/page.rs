//! The chat page, `GET /` and `GET /chat`: one HTML file with its CSS and
//! JavaScript inline, embedded in the binary and served as it is, so a
//! person who starts `cometbench serve` has something to open. It fetches
//! nothing from elsewhere; what it does is in `docs/DESIGN.md`, "The chat
//! page".

/// The page, byte for byte.
pub const CHAT: &str = include_str!("page/chat.html");

/// Its `Content-Security-Policy`: inline script and style only, no image
/// but the empty favicon, so a message that became markup by some mistake
/// could still load nothing. Requests, sockets and frames may go to any
/// server, since `?server=` names another origin.
pub const POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
    style-src 'unsafe-inline'; img-src data:; connect-src *; frame-src *; \
    base-uri 'none'; form-action 'none'";
