//! Rules as code: a YAML file of rules, validated offline
//! (`workbridge rules validate FILE`) and applied at start-up.

use serde::Deserialize;

use super::RuleInput;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    rules: Vec<RuleInput>,
}

/// Parses and validates a rules file. Errors name the line and the field,
/// e.g. `line 12: rules[1].action: unknown field …` or
/// `line 20 (rule "hot-bearings"): when.condition: line 1, column 9: …`.
pub fn parse(text: &str) -> Result<Vec<RuleInput>, Vec<String>> {
    let file: RulesFile = yaml_serde::from_str(text).map_err(|e| {
        let line = e.location().map(|l| format!("line {}: ", l.line())).unwrap_or_default();
        vec![format!("{line}{e}")]
    })?;
    let mut errors = vec![];
    let mut seen = std::collections::HashSet::new();
    for (i, rule) in file.rules.iter().enumerate() {
        let at = locate(text, i, rule);
        if !seen.insert(rule.name.trim().to_owned()) {
            errors.push(format!("{at}: the name is used twice"));
        }
        if let Err(e) = rule.validate() {
            errors.push(format!("{at}: {e}"));
        }
    }
    if errors.is_empty() { Ok(file.rules) } else { Err(errors) }
}

/// Where a rule is: `line 12 (rules[1], "hot-bearings")`.
fn locate(text: &str, i: usize, rule: &RuleInput) -> String {
    match line_of_rule(text, &rule.name) {
        Some(l) => format!("line {l} (rules[{i}], \"{}\")", rule.name),
        None => format!("rules[{i}] (\"{}\")", rule.name),
    }
}

/// The rules (parsed from `text`) whose action creates through a connector
/// that `exists` does not know, one error each, as the API words it:
/// `line 4 (rules[1], "pumps"): action.connector: connector maximo does not exist`.
pub fn check_connectors(text: &str, rules: &[RuleInput], exists: impl Fn(&str) -> bool) -> Vec<String> {
    rules
        .iter()
        .enumerate()
        .filter_map(|(i, rule)| match &rule.action {
            super::Action::Create(c) if !exists(&c.connector) => {
                Some(format!("{}: action.connector: connector {} does not exist", locate(text, i, rule), c.connector))
            }
            _ => None,
        })
        .collect()
}

/// The line of `name: <name>` in the file (1-based), to point errors there.
fn line_of_rule(text: &str, name: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start().trim_start_matches("- ").trim();
            l.strip_prefix("name:")
                .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'') == name.trim())
                .unwrap_or(false)
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_is_valid() {
        let rules = parse(include_str!("../../docker/rules.example.yaml")).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(rules.len() >= 4);
        assert!(
            rules.iter().any(|r| r.when.types.contains(&crate::domain::EventKind::DataQuality)),
            "the example has a rule for data-quality events"
        );
    }

    #[test]
    fn rules_naming_an_unknown_connector_are_reported_with_line_and_field() {
        let text = "rules:\n  - name: a\n    action: {kind: create, connector: sandbox}\n  - name: b\n    action: {kind: create, connector: maximo}\n  - name: c\n    action: {kind: ignore}\n";
        let rules = parse(text).unwrap();
        assert!(check_connectors(text, &rules, |c| c == "sandbox" || c == "maximo").is_empty());
        assert_eq!(
            check_connectors(text, &rules, |c| c == "sandbox"),
            ["line 4 (rules[1], \"b\"): action.connector: connector maximo does not exist"]
        );
    }

    #[test]
    fn errors_give_line_and_field() {
        let text = "rules:\n  - name: a\n    action:\n      kind: create\n      connector: eam\n      nope: 1\n";
        let e = parse(text).unwrap_err();
        assert!(e[0].starts_with("line "), "{e:?}");
        assert!(e[0].contains("nope"), "{e:?}");

        let text = "rules:\n  - name: ok\n    action: {kind: ignore}\n  - name: bad-cel\n    when:\n      condition: \"event.value >\"\n    action: {kind: ignore}\n  - name: ok\n    action: {kind: ignore}\n";
        let e = parse(text).unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("line 4 (rules[1], \"bad-cel\"): when.condition: line 1, column"), "{e:?}");
        assert!(e[1].contains("used twice"), "{e:?}");
    }
}
