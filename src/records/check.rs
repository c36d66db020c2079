//! `strata records check`: the documents against the records. Every generated block of
//! README.md and BENCHMARKS.md must be exactly what the records give today, and no table outside
//! a generated block may hold a figure, so a figure without a record fails the check.

use super::tables::{generate, BLOCKS};
use std::path::Path;

/// A document's text cut at its generated blocks.
#[derive(Debug, PartialEq)]
pub enum Part<'a> {
    /// Text written by hand.
    Prose(&'a str),
    /// A generated block: its name and current text (without the markers).
    Block(&'a str, &'a str),
}

/// Cuts `text` into prose and `<!-- records:NAME -->` ... `<!-- /records:NAME -->` blocks; an
/// unclosed or unknown block is an error naming its line.
pub fn parts(text: &str) -> Result<Vec<Part<'_>>, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<!-- records:") {
        let line = text[..text.len() - rest.len() + start].lines().count() + 1;
        parts.push(Part::Prose(&rest[..start]));
        let after = &rest[start + "<!-- records:".len()..];
        let end_of_marker = after
            .find("-->")
            .ok_or(format!("line {line}: an unclosed records marker"))?;
        let name = after[..end_of_marker].trim();
        if !BLOCKS.contains(&name) {
            return Err(format!(
                "line {line}: no generated table is called {name:?}"
            ));
        }
        let body_start = end_of_marker + 3;
        let closing = format!("<!-- /records:{name} -->");
        let body_end = after[body_start..]
            .find(&closing)
            .ok_or(format!("line {line}: the block {name} has no {closing}"))?;
        let body = &after[body_start..body_start + body_end];
        parts.push(Part::Block(name, body.trim_matches('\n')));
        rest = &after[body_start + body_end + closing.len()..];
    }
    parts.push(Part::Prose(rest));
    Ok(parts)
}

/// Whether `line` holds a figure: a digit that does not continue a name (`f16`, `sm_80`,
/// `x86`, `LeNet-5` and `AVX-512` are names, not figures).
fn holds_figure(line: &str) -> bool {
    let (mut before, mut previous) = (' ', ' ');
    for c in line.chars() {
        let continues_name = previous.is_alphanumeric()
            || previous == '_'
            || (previous == '-' && before.is_alphabetic());
        if c.is_ascii_digit() && !continues_name {
            return true;
        }
        (before, previous) = (previous, c);
    }
    false
}

/// Table rows (lines starting with `|`) of hand-written text that hold a figure.
fn stray_figures(prose: &str) -> Vec<&str> {
    prose
        .lines()
        .filter(|l| l.trim_start().starts_with('|') && holds_figure(l))
        .collect()
}

/// The document with every block regenerated from `results`.
pub fn regenerate(text: &str, results: &Path) -> Result<String, String> {
    let mut out = String::new();
    for part in parts(text)? {
        match part {
            Part::Prose(p) => out += p,
            Part::Block(name, _) => {
                out += &format!(
                    "<!-- records:{name} -->\n{}\n<!-- /records:{name} -->",
                    generate(name, results)?.trim_end_matches('\n')
                );
            }
        }
    }
    Ok(out)
}

/// Every problem of document `name` (`text`) against the records: blocks that differ from what
/// the records give, and figures in tables outside the blocks.
pub fn problems(name: &str, text: &str, results: &Path) -> Result<Vec<String>, String> {
    let mut found = Vec::new();
    for part in parts(text).map_err(|e| format!("{name}: {e}"))? {
        match part {
            Part::Prose(p) => {
                for row in stray_figures(p) {
                    found.push(format!(
                        "{name}: a table row with a figure outside a generated table: {row}"
                    ));
                }
            }
            Part::Block(block, current) => {
                let want = generate(block, results).map_err(|e| format!("{name}: {e}"))?;
                let want = want.trim_matches('\n');
                if current != want {
                    let differs = current
                        .lines()
                        .zip(want.lines())
                        .find(|(a, b)| a != b)
                        .map_or("a different number of lines".to_string(), |(a, b)| {
                            format!("{a:?}, the records give {b:?}")
                        });
                    found.push(format!(
                        "{name}: the {block} table differs from its records: {differs}"
                    ));
                }
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_digits_that_do_not_continue_a_name() {
        assert!(holds_figure("| lenet5 | 61,706 |"));
        assert!(holds_figure("| 1024³ | x |"));
        assert!(!holds_figure(
            "| half_precision (f16, bf16) | `kernels/x86.rs` | sm_80 |"
        ));
    }

    #[test]
    fn blocks_are_found_and_stray_figures_reported() {
        let doc = "intro\n<!-- records:networks -->\n| a | 1 |\n<!-- /records:networks -->\n| op | 42 ms |\n";
        let p = parts(doc).unwrap();
        assert_eq!(p[1], Part::Block("networks", "| a | 1 |"));
        assert_eq!(
            stray_figures(doc.split("-->").last().unwrap()),
            vec!["| op | 42 ms |"]
        );
        assert!(parts("<!-- records:networks -->\nno end").is_err());
        assert!(parts("<!-- records:nonsense -->x<!-- /records:nonsense -->").is_err());
    }

    /// The networks block comes from the zoo alone, so it can be checked without records: a
    /// copy with one figure changed must be reported, the regenerated one must not.
    #[test]
    fn a_changed_figure_in_a_block_is_reported() {
        let results = Path::new("/nonexistent");
        let doc = "<!-- records:networks -->\n<!-- /records:networks -->\n";
        let good = regenerate(doc, results).unwrap();
        assert!(good.contains("| lenet5 | 61,706 |"), "{good}");
        assert_eq!(
            problems("README.md", &good, results).unwrap(),
            Vec::<String>::new()
        );
        let bad = good.replace("| lenet5 | 61,706 |", "| lenet5 | 61,707 |");
        let found = problems("README.md", &bad, results).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("61,707"), "{found:?}");
    }
}
