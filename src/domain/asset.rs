//! The asset registry's input and output shapes, and their validation.

use chrono::{DateTime, Utc};
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub const MAX_ID_LEN: usize = 128;
pub const MAX_TEXT_LEN: usize = 512;
pub const MAX_TAGS: usize = 256;
/// The criticalities an asset may have.
pub const CRITICALITIES: &[&str] = &["A", "B", "C", "1", "2", "3", "4", "5"];

/// An asset as rules and templates see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Asset {
    /// External id, as the EAM knows it (e.g. `P-101`).
    pub id: String,
    pub site: String,
    pub name: String,
    /// e.g. PUMP, MOTOR, TRANSMITTER.
    pub class: String,
    /// A/B/C or 1–5.
    pub criticality: Option<String>,
    /// The parent in the hierarchy site → area → asset → component.
    pub parent: Option<String>,
    /// Which EAM holds this asset (e.g. `maximo`).
    pub eam_system: Option<String>,
}

/// An asset with its historian tags, as the API returns it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssetView {
    #[serde(flatten)]
    pub asset: Asset,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Create or replace an asset.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssetInput {
    /// External id; on `PUT /v1/assets/{id}` taken from the path, and if
    /// given here it must be equal to it (422 otherwise).
    #[serde(default)]
    pub id: Option<String>,
    pub site: String,
    pub name: String,
    pub class: String,
    #[serde(default)]
    pub criticality: Option<String>,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub eam_system: Option<String>,
    /// Historian tags of this asset; each tag belongs to one asset.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A validated asset with its tags.
#[derive(Debug, Clone)]
pub struct ValidAsset {
    pub asset: Asset,
    pub tags: Vec<String>,
}

fn required(field: &str, v: &str, max: usize) -> Result<String, String> {
    crate::domain::ident::check_name(field, v, max).map(str::to_owned)
}

/// An id that is a path segment of the API (`/v1/assets/{id}`).
fn segment(field: &str, v: &str, max: usize) -> Result<String, String> {
    crate::domain::ident::check_segment_name(field, v, max).map(str::to_owned)
}

fn optional(field: &str, v: Option<&str>, max: usize) -> Result<Option<String>, String> {
    Ok(crate::domain::ident::check_optional(field, v, max)?.map(str::to_owned))
}

impl AssetInput {
    /// Checks every field; `path_id` (from `PUT /v1/assets/{id}`) wins over the body.
    pub fn validate(self, path_id: Option<&str>) -> Result<ValidAsset, String> {
        let id = match (path_id, self.id.as_deref()) {
            (Some(p), Some(b)) if p != b.trim() => {
                return Err(format!("id {b:?} in the body differs from {p:?} in the path"));
            }
            (Some(p), _) => p,
            (None, Some(b)) => b,
            (None, None) => return Err("id is required".into()),
        };
        // Exactly one of the values (the document's enum); absent or null: none.
        let criticality = self.criticality.clone();
        if let Some(c) = &criticality
            && !CRITICALITIES.contains(&c.as_str())
        {
            return Err(format!("criticality must be A, B, C or 1 to 5, got {c:?}"));
        }
        if self.tags.len() > MAX_TAGS {
            return Err(format!("at most {MAX_TAGS} tags per asset"));
        }
        let mut tags = Vec::with_capacity(self.tags.len());
        for t in &self.tags {
            let t = required("tag", t, MAX_TEXT_LEN)?;
            if tags.contains(&t) {
                return Err(format!("tag {t:?} is listed twice"));
            }
            tags.push(t);
        }
        Ok(ValidAsset {
            asset: Asset {
                id: segment("id", id, MAX_ID_LEN)?,
                site: segment("site", &self.site, MAX_ID_LEN)?,
                name: required("name", &self.name, MAX_TEXT_LEN)?,
                class: required("class", &self.class, MAX_ID_LEN)?,
                criticality,
                parent: optional("parent", self.parent.as_deref(), MAX_ID_LEN)?
                    .map(|p| crate::domain::ident::check_segment("parent", &p).map(|()| p))
                    .transpose()?,
                eam_system: optional("eam_system", self.eam_system.as_deref(), MAX_ID_LEN)?,
            },
            tags,
        })
    }
}

/// One CSV row: `external_id,site,name,class,criticality,parent,eam_system,tags`
/// with tags joined by `;`.
#[derive(Debug, Deserialize)]
pub struct CsvAssetRow {
    pub external_id: String,
    pub site: String,
    pub name: String,
    pub class: String,
    #[serde(default)]
    pub criticality: Option<String>,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub eam_system: Option<String>,
    #[serde(default)]
    pub tags: Option<String>,
}

impl From<CsvAssetRow> for AssetInput {
    fn from(r: CsvAssetRow) -> Self {
        AssetInput {
            id: Some(r.external_id),
            site: r.site,
            name: r.name,
            class: r.class,
            criticality: r.criticality.filter(|c| !c.trim().is_empty()).map(|c| c.trim().to_owned()),
            parent: r.parent,
            eam_system: r.eam_system,
            tags: r
                .tags
                .unwrap_or_default()
                .split(';')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

/// A stored tag pattern.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TagPattern {
    pub id: String,
    /// A regular expression matched against the whole tag.
    pub pattern: String,
    /// The asset id built from the captures: `{name}` or `{1}`.
    pub asset_template: String,
    /// Patterns are tried in ascending position.
    pub position: i32,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagPatternInput {
    /// e.g. `PLANT_A\.(?P<asset>P\d+)\..*`; anchored to the whole tag.
    pub pattern: String,
    /// e.g. `P-{asset}`.
    pub asset_template: String,
    #[serde(default)]
    pub position: i32,
}

impl TagPatternInput {
    pub fn validate(&self) -> Result<(), String> {
        let regex = compile_pattern(&self.pattern).map_err(|e| format!("pattern: {e}"))?;
        let template = required("asset_template", &self.asset_template, MAX_ID_LEN)?;
        // Every `{name}` in the template must be a capture of the pattern.
        let names: Vec<&str> = regex.capture_names().flatten().collect();
        let mut rest = template.as_str();
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                return Err("asset_template has an unclosed '{'".into());
            };
            let name = &rest[open + 1..open + close];
            let known = match name.parse::<usize>() {
                Ok(n) => n >= 1 && n < regex.captures_len(),
                Err(_) => names.contains(&name),
            };
            if !known {
                return Err(format!("asset_template refers to {{{name}}}, which the pattern does not capture"));
            }
            rest = &rest[open + close + 1..];
        }
        Ok(())
    }
}

/// Tag patterns are anchored to the whole tag and size-limited, since they
/// come from users.
pub fn compile_pattern(pattern: &str) -> Result<Regex, regex::Error> {
    if pattern.chars().count() > MAX_TEXT_LEN {
        return Err(regex::Error::Syntax(format!("longer than {MAX_TEXT_LEN} characters")));
    }
    RegexBuilder::new(&format!("^(?:{pattern})$")).size_limit(1 << 20).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> AssetInput {
        AssetInput {
            id: Some("P-101".into()),
            site: "BEDFORD".into(),
            name: "Pump 101".into(),
            class: "PUMP".into(),
            criticality: Some("A".into()),
            parent: None,
            eam_system: Some("maximo".into()),
            tags: vec!["BEDFORD.PUMPING.P101.VIB_X".into()],
        }
    }

    #[test]
    fn validates_assets() {
        assert!(input().validate(None).is_ok());
        let mut bad = input();
        bad.criticality = Some("Z".into());
        assert!(bad.validate(None).unwrap_err().contains("criticality"));
        let mut dup = input();
        dup.tags.push("BEDFORD.PUMPING.P101.VIB_X".into());
        assert!(dup.validate(None).unwrap_err().contains("twice"));
        assert!(input().validate(Some("P-999")).unwrap_err().contains("differs"));
        let mut empty = input();
        empty.site = " ".into();
        assert!(empty.validate(None).unwrap_err().contains("site"));
    }

    #[test]
    fn pattern_templates_must_use_known_captures() {
        let ok = TagPatternInput {
            pattern: r"A\.(?P<asset>P\d+)\..*".into(),
            asset_template: "P-{asset}".into(),
            position: 0,
        };
        assert!(ok.validate().is_ok());
        let unknown = TagPatternInput { asset_template: "P-{nope}".into(), ..ok.clone() };
        assert!(unknown.validate().unwrap_err().contains("nope"));
        let bad = TagPatternInput { pattern: "(".into(), ..ok };
        assert!(bad.validate().unwrap_err().starts_with("pattern"));
    }
}
