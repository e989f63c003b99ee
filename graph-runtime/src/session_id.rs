//! What a session id may be, checked where an id enters the runner.

use crate::{Error, Result};

/// The longest session id the runner accepts, in bytes of UTF-8: 255.
///
/// Long enough for any id an application derives from its own keys (a UUID is 36 bytes, a
/// tenant, a kind and a UUID fit several times over), and short enough to stay a cheap index
/// key in every store, to fit the common 255-byte limit of file names and message keys should
/// an id ever become one, and to keep log lines and error messages readable. Every
/// [`Runner`](crate::Runner) method that takes a session id refuses a longer one with
/// [`Error::InvalidSessionId`], as it refuses an empty one or one with a NUL byte (which C
/// libraries and some databases cut short), before the store is asked anything.
///
/// ```
/// use graph_runtime::prelude::*;
/// use graph_runtime::{Error, MAX_SESSION_ID_BYTES};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Default, Serialize, Deserialize, StateSchema)] pub struct S;
/// # #[workflow(state = S)]
/// # pub mod flow {
/// #     use super::*;
/// #     edge!(START -> only);
/// #     edge!(only -> END);
/// #     #[node] async fn only(s: &mut S) {}
/// # }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Error> {
/// let runner = Runner::new(flow::Workflow, MemoryStore::new());
/// let longest = "x".repeat(MAX_SESSION_ID_BYTES);
/// runner.start(&longest, S).await?;
///
/// let too_long = "x".repeat(MAX_SESSION_ID_BYTES + 1);
/// let e = runner.start(&too_long, S).await.unwrap_err();
/// assert!(matches!(e, Error::InvalidSessionId { .. }), "{e}");
/// assert!(matches!(runner.state("").await, Err(Error::InvalidSessionId { .. })));
/// # Ok(()) }
/// ```
pub const MAX_SESSION_ID_BYTES: usize = 255;

/// How many characters of a bad id its error shows.
const SHOWN_CHARS: usize = 32;

/// Refuses an id that is empty, has a NUL byte or is longer than [`MAX_SESSION_ID_BYTES`].
pub(crate) fn check(id: &str) -> Result<()> {
    let reason = if id.is_empty() {
        "a session id must not be empty"
    } else if id.len() > MAX_SESSION_ID_BYTES {
        "a session id must be at most 255 bytes (`MAX_SESSION_ID_BYTES`)"
    } else if id.as_bytes().contains(&0) {
        "a session id must not contain a NUL byte"
    } else {
        return Ok(());
    };
    Err(Error::InvalidSessionId {
        id: shown(id),
        reason,
    })
}

/// The first [`SHOWN_CHARS`] characters of `id`, and `…` if there were more.
fn shown(id: &str) -> String {
    match id.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{}…", &id[..cut]),
        None => id.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(id: &str) -> Option<&'static str> {
        match check(id) {
            Ok(()) => None,
            Err(Error::InvalidSessionId { reason, .. }) => Some(reason),
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn accepts_ids_up_to_the_cap() {
        assert_eq!(reason("a"), None);
        assert_eq!(reason("order-42/é/🦀"), None);
        assert_eq!(reason(&"x".repeat(MAX_SESSION_ID_BYTES)), None);
        // The cap counts bytes, not characters: 63 four-byte characters fit, 64 do not.
        assert_eq!(reason(&"🦀".repeat(63)), None);
        assert!(reason(&"🦀".repeat(64)).unwrap().contains("255 bytes"));
    }

    #[test]
    fn refuses_empty_nul_and_long_ids() {
        assert_eq!(reason(""), Some("a session id must not be empty"));
        assert_eq!(
            reason("a\0b"),
            Some("a session id must not contain a NUL byte")
        );
        assert!(
            reason(&"x".repeat(MAX_SESSION_ID_BYTES + 1))
                .unwrap()
                .contains("at most 255 bytes")
        );
    }

    #[test]
    fn the_error_shows_a_short_escaped_id() {
        let e = check(&"é".repeat(1000)).unwrap_err();
        let Error::InvalidSessionId { id, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(id, &format!("{}…", "é".repeat(32)));
        assert_eq!(
            e.to_string(),
            format!(
                "invalid session id \"{}…\": a session id must be at most 255 bytes \
                 (`MAX_SESSION_ID_BYTES`)",
                "é".repeat(32)
            )
        );
        let e = check("a\0b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid session id \"a\\0b\": a session id must not contain a NUL byte"
        );
    }
}
