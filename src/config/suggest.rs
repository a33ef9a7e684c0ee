//! "did you mean": the known key closest to a typo.

/// The candidate nearest to `word`, when it is near enough to be the intended one: at
/// most one edit per three characters of `word` (at least one), where swapping two
/// neighbouring characters is one edit (`imgae` is one from `image`). ASCII case is
/// ignored.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    // ASCII only: keys are, and Unicode case tables would weigh more than they help.
    let word = word.to_ascii_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (distance(&word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and
/// transpositions of neighbours, each one edit.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: the distance between a[..i] and b[..j].
    let mut d = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("image", "image"), 0);
        assert_eq!(distance("imgae", "image"), 1);
        assert_eq!(distance("imag", "image"), 1);
        assert_eq!(distance("memroy", "memory"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggests_only_what_is_close() {
        let keys = [
            "image",
            "name",
            "env",
            "env_file",
            "stop_timeout",
            "timeout",
        ];
        assert_eq!(closest("imgae", &keys), Some("image"));
        assert_eq!(closest("Image", &keys), Some("image"));
        assert_eq!(closest("stop-timeout", &keys), Some("stop_timeout"));
        assert_eq!(closest("envfile", &keys), Some("env_file"));
        assert_eq!(closest("nmae", &keys), Some("name"));
        assert_eq!(closest("grants", &keys), None);
        assert_eq!(closest("x", &keys), None);
    }
}
