//! Event → asset (docs/spec.md §3): a known `data.asset` hint wins, then an exact
//! historian tag, then the first tag pattern (in position order) whose
//! captures name a known asset.

use regex::Regex;
use sea_orm::ConnectionTrait;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{Asset, InboundEvent, TagPattern};
use crate::store::{StoreError, assets as store};

/// How an event found its asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MappedBy {
    Hint,
    Tag,
    Pattern,
}

impl MappedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hint => "hint",
            Self::Tag => "tag",
            Self::Pattern => "pattern",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Mapping {
    pub asset: Asset,
    pub by: MappedBy,
    /// For patterns: which pattern, for the decision trace.
    pub detail: Option<String>,
}

/// A compiled tag pattern.
#[derive(Debug, Clone)]
pub struct CompiledPattern {
    pub id: String,
    pub regex: Regex,
    pub asset_template: String,
}

impl CompiledPattern {
    pub fn compile(p: &TagPattern) -> Result<Self, regex::Error> {
        Ok(Self {
            id: p.id.clone(),
            regex: crate::domain::asset::compile_pattern(&p.pattern)?,
            asset_template: p.asset_template.clone(),
        })
    }

    /// The asset id this pattern derives from `tag`, if it matches.
    pub fn asset_id_for(&self, tag: &str) -> Option<String> {
        let caps = self.regex.captures(tag)?;
        let mut out = String::with_capacity(self.asset_template.len() + 8);
        caps.expand(&self.asset_template.replace('{', "${"), &mut out);
        Some(out)
    }
}

/// Finds the asset of `event`, or `None` when nothing maps it.
pub async fn map_event<C: ConnectionTrait>(conn: &C, event: &InboundEvent) -> Result<Option<Mapping>, StoreError> {
    if let Some(hint) = &event.asset_hint
        && let Some(asset) = store::get(conn, &hint.id).await?
    {
        return Ok(Some(Mapping { asset, by: MappedBy::Hint, detail: None }));
    }
    let Some(tag) = event.subject.as_deref() else {
        return Ok(None);
    };
    if let Some(asset) = store::by_tag(conn, tag).await? {
        return Ok(Some(Mapping { asset, by: MappedBy::Tag, detail: None }));
    }
    for pattern in store::list_patterns(conn).await? {
        // Patterns were validated when stored; one that no longer compiles
        // (a newer regex crate, say) is skipped rather than stopping ingest.
        let Ok(compiled) = CompiledPattern::compile(&pattern) else {
            tracing::warn!(pattern = %pattern.id, "stored tag pattern does not compile");
            continue;
        };
        if let Some(id) = compiled.asset_id_for(tag)
            && let Some(asset) = store::get(conn, &id).await?
        {
            return Ok(Some(Mapping {
                asset,
                by: MappedBy::Pattern,
                detail: Some(format!("pattern {} → {id}", pattern.pattern)),
            }));
        }
    }
    Ok(None)
}

/// `map_event` for a batch, with a fixed number of statements whatever its
/// size: the hinted and tagged assets in one go, the tag patterns read once
/// and the assets they name in one more.
pub async fn map_events<C: ConnectionTrait>(
    conn: &C,
    events: &[&InboundEvent],
) -> Result<Vec<Option<Mapping>>, StoreError> {
    let tags: Vec<&str> = events.iter().filter_map(|e| e.subject.as_deref()).collect();
    let owners = if tags.is_empty() { Default::default() } else { store::owners_of_tags(conn, &tags).await? };
    let mut wanted: Vec<&str> = events.iter().filter_map(|e| e.asset_hint.as_ref().map(|h| h.id.as_str())).collect();
    wanted.extend(owners.values().map(String::as_str));
    wanted.sort_unstable();
    wanted.dedup();
    let known = if wanted.is_empty() { Default::default() } else { store::get_many(conn, &wanted).await? };
    let mut out: Vec<Option<Mapping>> = events
        .iter()
        .map(|e| {
            if let Some(asset) = e.asset_hint.as_ref().and_then(|h| known.get(&h.id)) {
                return Some(Mapping { asset: asset.clone(), by: MappedBy::Hint, detail: None });
            }
            let asset = known.get(owners.get(e.subject.as_deref()?)?)?;
            Some(Mapping { asset: asset.clone(), by: MappedBy::Tag, detail: None })
        })
        .collect();
    // Tag patterns, for what is left: every candidate id, then the first
    // pattern (in position order) whose candidate is a known asset.
    let left: Vec<usize> = (0..events.len()).filter(|&i| out[i].is_none() && events[i].subject.is_some()).collect();
    if left.is_empty() {
        return Ok(out);
    }
    let mut patterns = Vec::new();
    for pattern in store::list_patterns(conn).await? {
        match CompiledPattern::compile(&pattern) {
            Ok(compiled) => patterns.push((pattern.pattern, compiled)),
            Err(_) => tracing::warn!(pattern = %pattern.id, "stored tag pattern does not compile"),
        }
    }
    if patterns.is_empty() {
        return Ok(out);
    }
    let candidates: Vec<Vec<(usize, String)>> = left
        .iter()
        .map(|&i| {
            let tag = events[i].subject.as_deref().unwrap_or_default();
            patterns.iter().enumerate().filter_map(|(p, (_, c))| c.asset_id_for(tag).map(|id| (p, id))).collect()
        })
        .collect();
    let mut ids: Vec<&str> = candidates.iter().flatten().map(|(_, id)| id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let known = if ids.is_empty() { Default::default() } else { store::get_many(conn, &ids).await? };
    for (&i, candidates) in left.iter().zip(&candidates) {
        out[i] = candidates.iter().find_map(|(p, id)| {
            known.get(id).map(|asset| Mapping {
                asset: asset.clone(),
                by: MappedBy::Pattern,
                detail: Some(format!("pattern {} → {id}", patterns[*p].0)),
            })
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_captures_build_the_asset_id() {
        let p = CompiledPattern::compile(&TagPattern {
            id: "p1".into(),
            pattern: r"PLANT_A\.(?P<asset>P\d+)\..*".into(),
            asset_template: "P-{asset}".into(),
            position: 0,
        })
        .unwrap();
        assert_eq!(p.asset_id_for("PLANT_A.P101.VIB_X").as_deref(), Some("P-P101"));
        assert_eq!(p.asset_id_for("PLANT_B.P101.VIB_X"), None);
        // anchored: a pattern must match the whole tag
        assert_eq!(p.asset_id_for("X.PLANT_A.P101.VIB_X"), None);
    }

    #[test]
    fn numbered_captures_work_too() {
        let p = CompiledPattern::compile(&TagPattern {
            id: "p2".into(),
            pattern: r"BEDFORD\.PUMPING\.P(\d+)\..*".into(),
            asset_template: "P-{1}".into(),
            position: 0,
        })
        .unwrap();
        assert_eq!(p.asset_id_for("BEDFORD.PUMPING.P101.FLOW").as_deref(), Some("P-101"));
    }
}
