//! "Did you mean …?": the closest known name to a misspelt one, for the messages of `parse`
//! (unknown keys), `model` (a typo read as the name it is close to) and `check` (unknown
//! nodes, join parameters). A leaf module: it imports nothing of the crate, so every stage can
//! use it without importing another stage.

/// The closest of `candidates` to `name`, if it is close enough to be a likely typo: a small
/// edit distance, or the same name in another case (`start` for `START`).
pub(crate) fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (name.chars().count().max(3) / 3).max(1);
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        if candidate == name {
            continue;
        }
        if candidate.eq_ignore_ascii_case(name) {
            return Some(candidate);
        }
        let distance = edit_distance(name, candidate);
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// The number of single-character insertions, deletions, substitutions and swaps of two
/// neighbours between `a` and `b` (optimal string alignment): `chrage` is one swap from
/// `charge`, the most common typo of all.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: the distance between the first i chars of a and the first j chars of b.
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
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
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("charge", "charge"), 0);
        assert_eq!(edit_distance("chrage", "charge"), 1);
        assert_eq!(edit_distance("chage", "charge"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("ca", "abc"), 3);
        assert_eq!(edit_distance("réview", "review"), 1);
    }

    #[test]
    fn suggestions() {
        let nodes = ["validate", "review", "charge", "ship", "cancel"];
        assert_eq!(did_you_mean("chrage", nodes), Some("charge"));
        assert_eq!(did_you_mean("shp", nodes), Some("ship"));
        assert_eq!(did_you_mean("validat", nodes), Some("validate"));
        assert_eq!(did_you_mean("refund", nodes), None);
        assert_eq!(did_you_mean("x", nodes), None);
        assert_eq!(did_you_mean("end", ["END", "START"]), Some("END"));
        assert_eq!(did_you_mean("Start", ["END", "START"]), Some("START"));
        assert_eq!(
            did_you_mean("retyr", ["interrupt", "retry", "timeout_ms"]),
            Some("retry")
        );
        assert_eq!(
            did_you_mean("timeout_sm", ["interrupt", "retry", "timeout_ms"]),
            Some("timeout_ms")
        );
    }
}
