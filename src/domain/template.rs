//! Title, description, dedup-key and body templates (MiniJinja).

use std::sync::OnceLock;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // A missing field renders empty rather than failing the decision;
        // a typo in a template shows up as an empty field in the order.
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        // An absent field (null, e.g. an event without `subject`) renders
        // empty too, never as "none" in an order's text.
        env.set_formatter(
            |out, state, value| {
                if value.is_none() { Ok(()) } else { minijinja::escape_formatter(out, state, value) }
            },
        );
        env.set_recursion_limit(64);
        // A hostile or mistaken template (a huge loop) runs out of fuel
        // instead of holding a worker: instructions and allocations count.
        env.set_fuel(Some(100_000));
        env
    })
}

/// Compiles `src` to find syntax errors.
pub fn check(src: &str) -> Result<(), String> {
    if src.len() > 16 * 1024 {
        return Err("template longer than 16 KiB".into());
    }
    env().template_from_str(src).map(|_| ()).map_err(|e| e.to_string())
}

pub fn render(src: &str, ctx: impl Serialize) -> Result<String, String> {
    if is_literal(src) {
        // A literal: nothing to compile.
        return Ok(src.to_owned());
    }
    render_value(src, minijinja::Value::from(minijinja::value::Serde(ctx)))
}

fn is_literal(src: &str) -> bool {
    !src.contains("{{") && !src.contains("{%") && !src.contains("{#")
}

fn render_value(src: &str, ctx: minijinja::Value) -> Result<String, String> {
    env().render_str(src, ctx).map_err(|e| e.to_string())
}

/// Renders every string leaf of a JSON template. A leaf that is one
/// expression alone (`"{{ order.priority }}"`) keeps the expression's type,
/// so numbers stay numbers and objects stay objects.
pub fn render_json(template: &serde_json::Value, ctx: &serde_json::Value) -> Result<serde_json::Value, String> {
    // The context becomes MiniJinja's once for all the leaves (converting it
    // took most of a body's rendering when it was done for each leaf).
    render_json_leaves(template, &minijinja::Value::from(minijinja::value::Serde(ctx)))
}

fn render_json_leaves(template: &serde_json::Value, ctx: &minijinja::Value) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    Ok(match template {
        Value::String(s) => {
            let t = s.trim();
            let single = t.starts_with("{{") && t.ends_with("}}") && t.matches("{{").count() == 1 && !t.contains("{%");
            if single {
                let expr = env().compile_expression(&t[2..t.len() - 2]).map_err(|e| e.to_string())?;
                let v = expr.eval(ctx.clone()).map_err(|e| e.to_string())?;
                if v.is_undefined() || v.is_none() {
                    Value::Null
                } else {
                    serde_json::to_value(&v).map_err(|e| e.to_string())?
                }
            } else if is_literal(s) {
                Value::String(s.clone())
            } else {
                Value::String(render_value(s, ctx.clone())?)
            }
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| render_json_leaves(i, ctx)).collect::<Result<_, _>>()?)
        }
        Value::Object(map) => Value::Object(
            map.iter().map(|(k, v)| Ok((k.clone(), render_json_leaves(v, ctx)?))).collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_templates_keep_types_and_render_strings() {
        let ctx = json!({"order": {"priority": 2, "title": "Pump \"P-101\""}, "asset": {"id": "P-101"}});
        let out = render_json(
            &json!({"p": "{{ order.priority }}", "t": "{{ order.title }}", "s": "WO for {{ asset.id }}", "n": 5, "missing": "{{ order.nope }}"}),
            &ctx,
        )
        .unwrap();
        assert_eq!(out, json!({"p": 2, "t": "Pump \"P-101\"", "s": "WO for P-101", "n": 5, "missing": null}));
    }

    #[test]
    fn runaway_templates_run_out_of_fuel() {
        let err = render(
            "{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}",
            serde_json::json!({}),
        )
        .unwrap_err();
        assert!(err.to_lowercase().contains("fuel"), "{err}");
        assert_eq!(render("{{ 1 + 1 }}", serde_json::json!({})).unwrap(), "2");
    }

    #[test]
    fn null_renders_empty() {
        let ctx = json!({"event": {"subject": null, "code": "X"}});
        assert_eq!(render("[{{ event.subject }}|{{ event.nope }}|{{ event.code }}]", &ctx).unwrap(), "[||X]");
        let description = render(crate::domain::rule::DEFAULT_DESCRIPTION, &ctx).unwrap();
        assert!(!description.contains("Tag:") && !description.contains("First event:"), "{description}");
        assert!(!description.to_lowercase().contains("none"), "{description}");
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(check("{{ event.code ").is_err());
        assert!(check("{{ event.code }}").is_ok());
    }
}
