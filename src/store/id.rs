//! Run IDs and names: IDs are `run_` + 12 lowercase hex digits from the OS's random
//! source; names are `adjective-animal` unless the user gives one.

use std::io::Read;

pub const ID_PREFIX: &str = "run_";

const ADJECTIVES: &[&str] = &[
    "able", "amber", "bold", "brave", "brisk", "calm", "clever", "cosmic", "crisp", "curious",
    "daring", "eager", "early", "fancy", "fast", "fierce", "gentle", "glad", "golden", "grand",
    "happy", "hardy", "humble", "jolly", "keen", "kind", "lively", "lucky", "merry", "mighty",
    "misty", "noble", "plucky", "polite", "proud", "quick", "quiet", "rapid", "rusty", "shiny",
    "silent", "sly", "smart", "snowy", "solid", "spry", "steady", "stormy", "sunny", "swift",
    "tidy", "tiny", "vivid", "warm", "wise", "witty", "young", "zesty",
];

const ANIMALS: &[&str] = &[
    "badger", "beaver", "bison", "bobcat", "crane", "coyote", "dingo", "dolphin", "eagle",
    "falcon", "ferret", "finch", "fox", "gecko", "heron", "ibex", "jackal", "koala", "lemur",
    "lynx", "marmot", "marten", "mole", "moose", "newt", "ocelot", "orca", "osprey", "otter",
    "owl", "panda", "puffin", "quail", "rabbit", "raven", "seal", "shrew", "sloth", "stoat",
    "swan", "tapir", "tern", "toad", "vole", "walrus", "weasel", "wolf", "wombat", "yak", "zebra",
];

/// `n` bytes from the OS's random source.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    if let Err(e) = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)) {
        // Without a random source moat cannot make IDs that other runs won't collide with;
        // every Unix system has one, so this is an invariant of the platform.
        panic!("cannot read /dev/urandom: {e}");
    }
    buf
}

pub fn new_run_id() -> String {
    let mut id = String::from(ID_PREFIX);
    for b in random_bytes::<6>() {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

pub fn random_name() -> String {
    let [a, b, c, d] = random_bytes::<4>();
    let adjective = ADJECTIVES[usize::from(u16::from_le_bytes([a, b])) % ADJECTIVES.len()];
    let animal = ANIMALS[usize::from(u16::from_le_bytes([c, d])) % ANIMALS.len()];
    format!("{adjective}-{animal}")
}

/// Whether `s` is a full run ID. Only such strings ever become directory names.
pub fn is_run_id(s: &str) -> bool {
    s.len() == ID_PREFIX.len() + 12
        && s.starts_with(ID_PREFIX)
        && s[ID_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Check a user-given run name: letters, digits, `_`, `.`, `-`, starting with a letter or
/// digit, at most 63 characters (the rule container names follow).
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid run name {name:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit, at most 63 characters"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_well_formed_and_differ() {
        let a = new_run_id();
        let b = new_run_id();
        assert!(is_run_id(&a), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn rejects_path_like_ids() {
        for bad in [
            "../x",
            "run_0123456789aB",
            "run_0123456789a",
            "run_../../etc",
            "",
        ] {
            assert!(!is_run_id(bad), "{bad}");
        }
        assert!(is_run_id("run_0123456789ab"));
    }

    #[test]
    fn names() {
        let n = random_name();
        assert!(validate_name(&n).is_ok(), "{n}");
        assert!(validate_name("my-run.1_a").is_ok());
        for bad in ["", "../x", "-x", "a/b", "a b", &"x".repeat(64)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
