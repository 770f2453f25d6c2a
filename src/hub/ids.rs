//! Automatic ids: how a hub spells an event's place in its global order as
//! an `id:` line, and reads a `Last-Event-ID` back into that place.

use crate::clock::unix_time;

/// The spelling of automatic ids: `<epoch>-<n>`, where `n` is a hub sequence
/// number minus `offset`. The epoch is unique per hub (or per backplane data
/// set), so an id from another process or an older data set is recognised as
/// foreign instead of misread as a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdSpace {
    /// The prefix before the dash.
    pub epoch: String,
    /// Hub sequence number of `n = 0`.
    pub offset: u64,
}

impl IdSpace {
    /// A space of its own for a hub that numbers its events: the epoch is
    /// the time it was made (milliseconds, base 36), so a restarted process
    /// does not read its predecessor's ids as its own.
    pub fn fresh() -> Self {
        IdSpace {
            epoch: radix36(unix_time().as_millis()),
            offset: 0,
        }
    }

    /// No space yet (a hub fed by a backplane, before the backplane says
    /// which data set it serves): every id is foreign.
    pub fn unknown() -> Self {
        IdSpace {
            epoch: String::new(),
            offset: 0,
        }
    }

    /// The automatic id of hub sequence number `gseq`.
    pub fn spell(&self, gseq: u64) -> String {
        format!("{}-{}", self.epoch, gseq.saturating_sub(self.offset))
    }

    /// The hub sequence number `id` names, when it is an automatic id of
    /// this space (whether that number was issued yet is the hub's to say).
    pub fn parse(&self, id: &str) -> Option<u64> {
        let (epoch, n) = id.split_once('-')?;
        if self.epoch.is_empty() || epoch != self.epoch {
            return None;
        }
        n.parse::<u64>().ok()?.checked_add(self.offset)
    }
}

/// `n` in base 36, lowercase: short epochs.
fn radix36(mut n: u128) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_reads_back_to_the_number_it_spells() {
        let ids = IdSpace {
            epoch: "k3".into(),
            offset: 10,
        };
        assert_eq!(ids.spell(15), "k3-5");
        assert_eq!(ids.parse("k3-5"), Some(15));
        assert_eq!(ids.spell(3), "k3-0", "before the offset saturates");
    }

    #[test]
    fn foreign_malformed_and_unknown_space_ids_name_nothing() {
        let ids = IdSpace {
            epoch: "k3".into(),
            offset: 0,
        };
        for id in [
            "k4-1",
            "k3",
            "k3-x",
            "k3--1",
            "-1",
            "",
            "k3-99999999999999999999",
        ] {
            assert_eq!(ids.parse(id), None, "{id:?}");
        }
        assert_eq!(IdSpace::unknown().parse("-1"), None);
        let near_end = IdSpace {
            epoch: "k3".into(),
            offset: u64::MAX,
        };
        assert_eq!(near_end.parse("k3-1"), None, "overflow");
    }

    #[test]
    fn epochs_are_base_36() {
        assert_eq!(radix36(0), "0");
        assert_eq!(radix36(35), "z");
        assert_eq!(radix36(36 * 36 + 1), "101");
        assert!(!IdSpace::fresh().epoch.is_empty());
    }
}
