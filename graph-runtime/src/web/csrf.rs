//! The CSRF token: 32 bytes from the operating system's generator, drawn once per
//! [`router`](super::router) call, written as 64 hex digits into every form the console
//! serves (and into the `x-csrf-token` header of its answers), and required on every POST,
//! as the form field `csrf` or the `x-csrf-token` header, compared in constant time.
//!
//! Why this is enough: another site can make a browser send a POST to the console with the
//! operator's cookies, but cannot read the console's pages (the same-origin policy), so it
//! cannot know the token. The token is the same for every user of one router, which is fine
//! because it guards against other sites, not against users who may use the console anyway.

/// The token of one router, or none when the system's generator failed (then every POST is
/// refused: the console is read-only rather than unguarded).
#[derive(Debug, Clone)]
pub(super) struct Csrf {
    token: Option<String>,
}

/// The form field that carries the token.
pub(super) const FIELD: &str = "csrf";
/// The header that carries the token.
pub(super) const HEADER: &str = "x-csrf-token";

impl Csrf {
    /// A fresh token from the system's generator.
    pub fn new() -> Csrf {
        let mut secret = [0u8; 32];
        match getrandom::fill(&mut secret) {
            Ok(()) => Csrf {
                token: Some(secret.iter().map(|b| format!("{b:02x}")).collect()),
            },
            Err(error) => {
                tracing::error!(
                    %error,
                    "the web console could not draw its CSRF secret: every change is refused"
                );
                Csrf { token: None }
            }
        }
    }

    /// The token to embed in forms ("" when there is none: no form will pass).
    pub fn token(&self) -> &str {
        self.token.as_deref().unwrap_or("")
    }

    /// Whether `given` is the token.
    pub fn check(&self, given: Option<&str>) -> bool {
        match (&self.token, given) {
            (Some(token), Some(given)) => same(token.as_bytes(), given.as_bytes()),
            _ => false,
        }
    }
}

/// Equality of two byte strings in time that depends on their lengths only, not on where they
/// differ (the token's length is public).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_its_own_token_passes() {
        let csrf = Csrf::new();
        let token = csrf.token().to_owned();
        assert_eq!(token.len(), 64);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(csrf.check(Some(&token)));
        assert!(!csrf.check(None));
        assert!(!csrf.check(Some("")));
        assert!(!csrf.check(Some(&token[..63])));
        assert!(!csrf.check(Some(&format!("{token}0"))));
        let other = Csrf::new();
        assert_ne!(other.token(), token, "each router draws its own");
        assert!(!other.check(Some(&token)));
    }

    #[test]
    fn without_a_secret_nothing_passes() {
        let csrf = Csrf { token: None };
        assert!(!csrf.check(Some("")));
        assert!(!csrf.check(None));
    }
}
