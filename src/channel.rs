//! Channel names and lists: what a valid name is, checked wherever a name enters
//! (`send`/`comment`, an `onConnect` result, `?channel=`), and the one
//! spelling of a list of them ([`normalize`]).
//!
//! A name is opaque to the engine, but it travels: it is a key in the hub,
//! part of a Redis key with the backplane, and shown in `stats()`. So it must
//! be non-empty, hold no control characters (no CR, LF, NUL, …, which would
//! break logs and protocols it is written into) and stay short.

/// The longest channel name accepted, in bytes of UTF-8.
pub const MAX_CHANNEL_NAME_BYTES: usize = 256;

/// Why a channel name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadName {
    /// The name is the empty string.
    Empty,
    /// The name holds a control character (U+0000–U+001F, U+007F–U+009F).
    Control,
    /// The name is longer than [`MAX_CHANNEL_NAME_BYTES`].
    TooLong,
}

impl std::fmt::Display for BadName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadName::Empty => f.write_str("must not be empty"),
            BadName::Control => {
                f.write_str("must not contain control characters (CR, LF, NUL, tab, …)")
            }
            BadName::TooLong => write!(f, "must be at most {MAX_CHANNEL_NAME_BYTES} bytes long"),
        }
    }
}

impl std::error::Error for BadName {}

/// Accepts `name` as a channel name, or says what is wrong with it.
pub fn check_name(name: &str) -> Result<(), BadName> {
    if name.is_empty() {
        Err(BadName::Empty)
    } else if name.chars().any(char::is_control) {
        Err(BadName::Control)
    } else if name.len() > MAX_CHANNEL_NAME_BYTES {
        Err(BadName::TooLong)
    } else {
        Ok(())
    }
}

/// The name of the channel that events without an explicit channel go to,
/// and that clients subscribe to unless told otherwise.
pub const DEFAULT_CHANNEL: &str = "default";

/// A list of channels as the hub and the backplane use it: sorted, each
/// once, and the default channel when the list is empty. One rule for
/// senders and subscribers, so "the same channels" means the same thing.
pub fn normalize<S: AsRef<str>>(channels: &[S]) -> Vec<&str> {
    if channels.is_empty() {
        return vec![DEFAULT_CHANNEL];
    }
    let mut names: Vec<&str> = channels.iter().map(AsRef::as_ref).collect();
    names.sort_unstable();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_list_is_sorted_deduplicated_and_never_empty() {
        assert_eq!(normalize::<&str>(&[]), vec![DEFAULT_CHANNEL]);
        assert_eq!(normalize(&["b", "a", "b"]), vec!["a", "b"]);
        assert_eq!(normalize(&["x".to_owned()]), vec!["x"]);
    }

    #[test]
    fn ordinary_names_are_accepted() {
        for name in ["default", "user:42", "ticker/ACME", "news é 新闻", "a b"] {
            assert_eq!(check_name(name), Ok(()), "{name}");
        }
        assert_eq!(check_name(&"x".repeat(MAX_CHANNEL_NAME_BYTES)), Ok(()));
    }

    #[test]
    fn empty_names_are_refused() {
        assert_eq!(check_name(""), Err(BadName::Empty));
    }

    #[test]
    fn control_characters_are_refused() {
        for name in ["a\nb", "a\rb", "a\0b", "tab\there", "del\u{7f}", "c1\u{85}"] {
            assert_eq!(check_name(name), Err(BadName::Control), "{name:?}");
        }
    }

    #[test]
    fn names_longer_than_the_maximum_are_refused() {
        assert_eq!(
            check_name(&"x".repeat(MAX_CHANNEL_NAME_BYTES + 1)),
            Err(BadName::TooLong)
        );
        // Bytes, not characters: 86 three-byte characters are 258 bytes.
        assert_eq!(check_name(&"新".repeat(86)), Err(BadName::TooLong));
    }
}
