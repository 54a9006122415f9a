//! The "Coming from Bytewax" guide (`src/guide/coming_from_bytewax.md`) maps every row of
//! Bytewax 0.21.1's feature inventory (`src/guide/bytewax_inventory.md`, section 2 of the
//! project's Bytewax reference) to bwx. These tests list every row the guide's tables miss.
//!
//! What counts as covered:
//! - a table row of the inventory: each name in backticks in its name column (`operator`,
//!   `item`, `API`, `module`, `class`, `entry`; the next column when that one has none), up
//!   to its arguments, must be in backticks in the first column of a table row of the
//!   guide (`EventClock(ts_getter, ...)` needs `` `EventClock` ``);
//! - a bullet of the inventory that starts in bold (`**Partitions.**`): its bold text
//!   (without `[saw]`-style tags and the final stop) must be in the first column of a table
//!   row of the guide;
//! - every `BYTEWAX_*` and `OTEL_*` environment variable of the inventory must be named
//!   somewhere in the guide.
//!
//! To check the copy of the inventory against a newer reference, set
//! `BWX_BYTEWAX_REFERENCE=path/to/REFERENCE.md`.

use std::collections::BTreeSet;

const INVENTORY: &str = include_str!("../src/guide/bytewax_inventory.md");
const GUIDE: &str = include_str!("../src/guide/coming_from_bytewax.md");

/// One thing the guide must cover, and where the inventory says it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Need {
    /// A name from a table row.
    Name {
        name: String,
        section: String,
        row: String,
    },
    /// The bold lead of a bullet.
    Lead { lead: String, section: String },
    /// An environment variable.
    Variable { name: String },
}

impl std::fmt::Display for Need {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Need::Name { name, section, row } => write!(f, "{section}: `{name}` (row: {row})"),
            Need::Lead { lead, section } => write!(f, "{section}: concept \"{lead}\""),
            Need::Variable { name } => write!(f, "environment variable {name}"),
        }
    }
}

/// The cells of a Markdown table row; `\|` inside a cell is a literal bar.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                out.last_mut().unwrap().push('|');
            }
            '|' => out.push(String::new()),
            _ => out.last_mut().unwrap().push(c),
        }
    }
    out.into_iter().map(|c| c.trim().to_string()).collect()
}

fn is_separator(cells: &[String]) -> bool {
    cells
        .iter()
        .all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':')))
}

/// The spans in backticks of a cell.
fn code_spans(cell: &str) -> Vec<String> {
    cell.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

/// A name as the guide must show it: the span up to its arguments, type parameters or arrow.
fn name_of(span: &str) -> String {
    let end = ["(", "[", "→", " ->"]
        .iter()
        .filter_map(|stop| span.find(stop))
        .min()
        .unwrap_or(span.len());
    span[..end].trim().to_string()
}

/// Bold text without `[saw]`-style tags, backticks and the final stop or colon.
fn lead_of(bold: &str) -> String {
    let mut text = String::new();
    let mut depth = 0;
    for c in bold.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '`' => {}
            _ if depth == 0 => text.push(c),
            _ => {}
        }
    }
    text.trim().trim_end_matches(['.', ':']).trim().to_string()
}

/// Everything section 2 of the reference asks the guide to cover.
fn needs(inventory: &str) -> BTreeSet<Need> {
    const NAME_COLUMNS: [&str; 6] = ["operator", "item", "api", "module", "class", "entry"];
    let mut needs = BTreeSet::new();
    let mut section = String::from("2");
    let mut header: Option<Vec<String>> = None;
    for line in inventory.lines() {
        let trimmed = line.trim_start();
        if let Some(heading) = trimmed.strip_prefix("### ") {
            section = heading.split(':').next().unwrap_or(heading).trim().to_string();
        }
        if !trimmed.starts_with('|') {
            header = None;
            if let Some(rest) = trimmed.strip_prefix("- **")
                && let Some(end) = rest.find("**")
            {
                needs.insert(Need::Lead {
                    lead: lead_of(&rest[..end]),
                    section: section.clone(),
                });
            }
            continue;
        }
        let row = cells(trimmed);
        let Some(columns) = &header else {
            header = Some(row.iter().map(|c| c.to_lowercase()).collect());
            continue;
        };
        if is_separator(&row) {
            continue;
        }
        let name_columns: Vec<usize> = (0..columns.len())
            .filter(|&i| NAME_COLUMNS.contains(&columns[i].as_str()))
            .collect();
        let mut spans: Vec<String> = name_columns
            .iter()
            .filter_map(|&i| row.get(i))
            .flat_map(|c| code_spans(c))
            .collect();
        if spans.is_empty() {
            // A row named in plain words ("helpers", "ABCs") lists its names in the next column.
            let next = name_columns.last().map_or(1, |i| i + 1);
            spans = row.get(next).map(|c| code_spans(c)).unwrap_or_default();
        }
        let label: String = name_columns
            .iter()
            .filter_map(|&i| row.get(i))
            .filter(|c| !c.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        for span in spans {
            let name = name_of(&span);
            if !name.is_empty() {
                needs.insert(Need::Name {
                    name,
                    section: section.clone(),
                    row: label.clone(),
                });
            }
        }
    }
    for word in inventory.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("BYTEWAX_") || word.starts_with("OTEL_") {
            needs.insert(Need::Variable {
                name: word.to_string(),
            });
        }
    }
    needs
}

/// What the guide's tables show: the names in backticks and the plain text of each row's
/// first column.
fn guide_first_columns(guide: &str) -> (BTreeSet<String>, Vec<String>) {
    let mut names = BTreeSet::new();
    let mut texts = Vec::new();
    for line in guide.lines().filter(|l| l.trim_start().starts_with('|')) {
        let row = cells(line);
        if is_separator(&row) {
            continue;
        }
        let first = row.first().cloned().unwrap_or_default();
        names.extend(code_spans(&first).iter().map(|s| name_of(s)));
        texts.push(first.replace('`', "").to_lowercase());
    }
    (names, texts)
}

/// The needs the guide does not cover.
fn missing(inventory: &str, guide: &str) -> Vec<Need> {
    let (names, texts) = guide_first_columns(guide);
    needs(inventory)
        .into_iter()
        .filter(|need| match need {
            Need::Name { name, .. } => !names.contains(name),
            Need::Lead { lead, .. } => {
                let lead = lead.to_lowercase();
                !texts.iter().any(|t| t.contains(&lead))
            }
            Need::Variable { name } => !guide.contains(name.as_str()),
        })
        .collect()
}

#[test]
fn the_guide_covers_every_row_of_the_bytewax_inventory() {
    let missing = missing(INVENTORY, GUIDE);
    let list: Vec<String> = missing.iter().map(|n| format!("- {n}")).collect();
    assert!(
        missing.is_empty(),
        "src/guide/coming_from_bytewax.md misses {} rows of the Bytewax inventory:\n{}",
        missing.len(),
        list.join("\n")
    );
}

#[test]
fn the_inventory_is_read_whole() {
    let needs = needs(INVENTORY);
    let count = |f: fn(&Need) -> bool| needs.iter().filter(|n| f(n)).count();
    // Every table of sections 2.1-2.5 and every bold bullet of 2.2 and 2.6-2.8.
    assert!(count(|n| matches!(n, Need::Name { .. })) >= 120, "{needs:#?}");
    assert!(count(|n| matches!(n, Need::Lead { .. })) >= 20, "{needs:#?}");
    assert!(count(|n| matches!(n, Need::Variable { .. })) >= 10, "{needs:#?}");
    let has_name = |name: &str| {
        needs
            .iter()
            .any(|n| matches!(n, Need::Name { name: m, .. } if m == name))
    };
    for name in [
        "stateful_batch",
        "flatten",
        "TTLCache",
        "EventClock",
        "ClockLogic",
        "batch_async",
        "connectors.files",
        "DirSink",
        "python -m bytewax.visualize IMPORT_STR -o mermaid|json|plantuml",
        "-w/--workers-per-process N",
        "cli_main",
    ] {
        assert!(has_name(name), "{name} not read from the inventory: {needs:#?}");
    }
    let has_lead = |lead: &str| {
        needs
            .iter()
            .any(|n| matches!(n, Need::Lead { lead: l, .. } if l == lead))
    };
    assert!(has_lead("Partitions"), "{needs:#?}");
    assert!(has_lead(
        "Replaying historical data with the default EventClock is costly"
    ));
    assert!(has_lead("Metrics only exist when the API server is on"));
}

#[test]
fn a_guide_without_a_row_is_reported() {
    let inventory = "\
### 2.9 Things: here
| operator | signature |
|---|---|
| `map`, `filter` | `(up, fn)` |
| helpers | `TTLCache`, `gone(x)` |

- **Late items [saw].** Go to `late`.
- **Startup.** Set `BYTEWAX_PROCESS_ID`.
";
    let guide = "\
| Bytewax | bwx |
|---|---|
| `map` | `Stream::map` |
| `TTLCache(getter)` | `TtlCache` |
| Late items | the `late` stream |

`BYTEWAX_PROCESS_ID` is read.
";
    let missing: Vec<String> = missing(inventory, guide)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        missing,
        vec![
            "2.9 Things: `filter` (row: `map`, `filter`)",
            "2.9 Things: `gone` (row: helpers)",
            "2.9 Things: concept \"Startup\"",
        ]
    );
}

#[test]
fn the_inventory_matches_the_reference_when_given() {
    let Some(path) = std::env::var_os("BWX_BYTEWAX_REFERENCE") else {
        eprintln!("BWX_BYTEWAX_REFERENCE is not set: the copy of the inventory is not compared");
        return;
    };
    let reference = std::fs::read_to_string(&path).unwrap();
    let section: String = reference
        .lines()
        .skip_while(|l| !l.starts_with("## 2."))
        .take_while(|l| !l.starts_with("## 3."))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!section.is_empty(), "no section 2 in {path:?}");
    let (ours, theirs) = (needs(INVENTORY), needs(&section));
    let only_theirs: Vec<String> = theirs.difference(&ours).map(ToString::to_string).collect();
    let only_ours: Vec<String> = ours.difference(&theirs).map(ToString::to_string).collect();
    assert!(
        only_theirs.is_empty() && only_ours.is_empty(),
        "src/guide/bytewax_inventory.md differs from {path:?}: copy its section 2 again.\n\
         only in the reference: {only_theirs:#?}\nonly in the copy: {only_ours:#?}"
    );
}
