//! A loaded rule set: every rule compiled once (conditions, tag globs), and
//! an index by event type, code and site so that an event is only checked against
//! the rules that can match it.

use std::collections::HashMap;

use globset::{GlobSet, GlobSetBuilder};

use super::{Condition, Rule};
use crate::domain::{EventKind, InboundEvent, glob};

pub struct CompiledRule {
    pub rule: Rule,
    pub condition: Option<Condition>,
    pub tags: Option<GlobSet>,
}

/// Whether a tag matches compiled tag globs.
pub fn tag_matches(globs: &GlobSet, tag: &str) -> bool {
    globs.is_match(glob::path_of(tag))
}

pub fn compile_globs(patterns: &[String]) -> Result<Option<GlobSet>, String> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        // One tag-glob dialect for rules and the events' subject filter.
        b.add(glob::compile(p)?);
    }
    b.build().map(Some).map_err(|e| e.to_string())
}

/// Rules in evaluation order with an index on (type, code, site); the other
/// matchers are checked per candidate.
/// (type, code, site); `None` stands for "any".
type IndexKey = (Option<EventKind>, Option<String>, Option<String>);

#[derive(Default)]
pub struct RuleSet {
    rules: Vec<CompiledRule>,
    /// (type or None for any, code or None for any) → rule positions.
    index: HashMap<IndexKey, Vec<usize>>,
    has_conditions: bool,
}

impl RuleSet {
    /// Compiles enabled rules, already in evaluation order; the first rule
    /// that does not compile is an error.
    pub fn compile(rules: Vec<Rule>) -> Result<Self, String> {
        let (set, errors) = Self::compile_skipping(rules);
        match errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(set),
        }
    }

    /// Compiles what compiles and reports the rest (stored rules were
    /// validated when saved; this guards against a changed expression
    /// language, without stopping ingest).
    pub fn compile_skipping(mut rules: Vec<Rule>) -> (Self, Vec<String>) {
        rules.sort_by_key(|r| r.position); // stable: ties keep their order
        let mut set = RuleSet::default();
        let mut errors = vec![];
        for rule in rules.into_iter().filter(|r| r.enabled) {
            let condition = match rule.when.condition.as_deref().map(Condition::compile).transpose() {
                Ok(c) => c,
                Err(e) => {
                    errors.push(format!("rule {}: when.condition: {e}", rule.name));
                    continue;
                }
            };
            let tags = match compile_globs(&rule.when.tags) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(format!("rule {}: when.tags: {e}", rule.name));
                    continue;
                }
            };
            let pos = set.rules.len();
            let kinds: Vec<Option<EventKind>> = if rule.when.types.is_empty() {
                vec![None]
            } else {
                rule.when.types.iter().copied().map(Some).collect()
            };
            let codes: Vec<Option<String>> = if rule.when.codes.is_empty() {
                vec![None]
            } else {
                rule.when.codes.iter().cloned().map(Some).collect()
            };
            let sites: Vec<Option<String>> = if rule.when.sites.is_empty() {
                vec![None]
            } else {
                rule.when.sites.iter().cloned().map(Some).collect()
            };
            for k in &kinds {
                for c in &codes {
                    for st in &sites {
                        set.index.entry((*k, c.clone(), st.clone())).or_default().push(pos);
                    }
                }
            }
            set.has_conditions |= condition.is_some();
            set.rules.push(CompiledRule { rule, condition, tags });
        }
        (set, errors)
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether any rule has a CEL condition (whose cost is unbounded).
    pub fn has_conditions(&self) -> bool {
        self.has_conditions
    }

    /// The rule at `position` (as given by `candidates`).
    pub fn at(&self, position: usize) -> &CompiledRule {
        &self.rules[position]
    }

    /// The enabled rule with this id, if the set has it.
    pub fn by_id(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().map(|r| &r.rule).find(|r| r.id == id)
    }

    /// The positions of the rules that can match `event`, in evaluation order.
    pub fn candidates(&self, event: &InboundEvent, site: &str) -> Vec<usize> {
        let mut positions: Vec<usize> = vec![];
        for kind in [Some(event.kind), None] {
            for code in [Some(event.code.clone()), None] {
                for st in [Some(site.to_owned()), None] {
                    if let Some(p) = self.index.get(&(kind, code.clone(), st)) {
                        positions.extend_from_slice(p);
                    }
                }
            }
        }
        positions.sort_unstable();
        positions.dedup();
        positions
    }
}
