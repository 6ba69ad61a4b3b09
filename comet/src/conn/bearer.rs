//! The publish token: `Authorization: Bearer <token>` (or a WebSocket's
//! `?token=`), compared in constant time.

/// Whether an `Authorization` value is `Bearer <token>`. The scheme name is
/// case-insensitive (RFC 9110 section 11.1), so `bearer` counts; the token is
/// compared in constant time. The scheme is public, so comparing it normally
/// tells an attacker nothing.
pub(super) fn bearer_matches(authorization: &str, token: &str) -> bool {
    let Some((scheme, credentials)) = authorization.split_once(' ') else {
        return false;
    };
    // `auth-scheme 1*SP token68`: more than one space is still the same value.
    let credentials = credentials.trim_start_matches(' ');
    scheme.eq_ignore_ascii_case("Bearer")
        && constant_time_eq(credentials.as_bytes(), token.as_bytes())
}

/// Whether `given` (a `?token=` value) is `token`, compared in constant time.
pub(super) fn token_matches(given: &str, token: &str) -> bool {
    constant_time_eq(given.as_bytes(), token.as_bytes())
}

/// Compares without an early exit, so timing tells nothing of where a guess is wrong.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() != b.len()) as u8;
    for (i, &y) in b.iter().enumerate() {
        diff |= a.get(i).copied().unwrap_or(0) ^ y;
    }
    diff == 0
}
