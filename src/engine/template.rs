//! Templates operators write in `bot-scripts/` (minijinja). Operators are not programmers and a
//! template runs on the request path, so every template is compiled when the scripts load and
//! rendered with a fuel limit (no endless loops), a recursion limit (no runaway macros) and
//! strict undefined variables (a misspelt `{{ membr.name }}` is an error that `trumpet check`
//! reports, not an empty hole in a message members read).
//!
//! A message without template syntax is kept as a literal and costs nothing to "render".

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

/// Instructions one rendering may execute.
pub const FUEL: u64 = 50_000;
/// Nesting depth of loops, includes and macro calls.
pub const RECURSION_LIMIT: usize = 32;
/// The longest rendered text; WeCom refuses far shorter messages, this only stops runaways.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// One operator-written message body, compiled. Two templates are equal when their text is.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    source: String,
    literal: bool,
    /// The file and line the template starts at, when it came from a file.
    origin: Option<(std::path::PathBuf, usize)>,
}

impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Template {}

impl Template {
    /// A template that is plain text (used by tests and built-in messages).
    pub fn literal(text: impl Into<String>) -> Self {
        Self {
            name: String::new(),
            source: text.into(),
            literal: true,
            origin: None,
        }
    }

    /// Where the template was written (file and first line).
    pub fn origin(&self) -> Option<(&std::path::Path, usize)> {
        self.origin.as_ref().map(|(f, l)| (f.as_path(), *l))
    }

    pub(crate) fn set_origin(&mut self, file: &std::path::Path, line: usize) {
        self.origin = Some((file.to_owned(), line));
    }

    /// The text as the operator wrote it.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The name it was compiled under (`file#entry`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it has no template syntax at all.
    pub fn is_literal(&self) -> bool {
        self.literal
    }
}

/// A template that does not compile, with the line inside the template (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template line {line}: {reason}")]
pub struct TemplateError {
    pub line: usize,
    pub reason: String,
}

/// A template that failed while rendering (fuel exhausted, an undefined variable, a filter
/// applied to the wrong type).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template {name}: {reason}")]
pub struct RenderError {
    pub name: String,
    pub reason: String,
    /// The line inside the template, when minijinja knows it.
    pub line: Option<usize>,
}

/// All compiled templates of one version of the scripts.
pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("count", &self.env.templates().count())
            .finish()
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

fn describe(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    }
}

impl Templates {
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_fuel(Some(FUEL));
        env.set_recursion_limit(RECURSION_LIMIT);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Chat messages are not HTML: nothing is escaped.
        env.set_auto_escape_callback(|_| AutoEscape::None);
        // Multi-line TOML strings end with a newline the operator sees as part of the text.
        env.set_keep_trailing_newline(true);
        Self { env }
    }

    /// Compiles `source` under `name` (`file#entry`, unique within one version of the scripts).
    pub fn compile(&mut self, name: &str, source: &str) -> Result<Template, TemplateError> {
        let literal = !["{{", "{%", "{#"].iter().any(|m| source.contains(m));
        if !literal {
            self.env
                .add_template_owned(name.to_owned(), source.to_owned())
                .map_err(|e| TemplateError {
                    line: e.line().unwrap_or(1),
                    reason: describe(&e),
                })?;
        }
        Ok(Template {
            name: name.to_owned(),
            source: source.to_owned(),
            literal,
            origin: None,
        })
    }

    /// Renders `template`; `vars` is only built when the template has variables.
    pub fn render(
        &self,
        template: &Template,
        vars: impl FnOnce() -> Value,
    ) -> Result<String, RenderError> {
        if template.literal {
            return Ok(template.source.clone());
        }
        let fail = |reason: String| RenderError {
            name: template.name.clone(),
            reason,
            line: None,
        };
        let compiled = self
            .env
            .get_template(&template.name)
            .map_err(|e| fail(describe(&e)))?;
        let text = compiled.render(vars()).map_err(|e| {
            let line = e
                .line()
                .map(|l| format!(" (template line {l})"))
                .unwrap_or_default();
            // The expression that failed, as the operator wrote it: `membr.name`, not only
            // "undefined value".
            let written = e
                .range()
                .and_then(|range| template.source.get(range))
                .map(str::trim)
                .filter(|expr| !expr.is_empty() && expr.chars().count() <= 80)
                .map(|expr| format!(" in `{expr}`"))
                .unwrap_or_default();
            RenderError {
                line: e.line(),
                ..fail(format!("{}{written}{line}", describe(&e)))
            }
        })?;
        if text.len() > MAX_OUTPUT_BYTES {
            return Err(fail(format!(
                "rendered {} bytes; at most {MAX_OUTPUT_BYTES}",
                text.len()
            )));
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    #[test]
    fn literals_skip_the_engine_and_variables_render() {
        let mut t = Templates::new();
        let plain = t.compile("a#1", "你好 100%").unwrap();
        assert!(plain.is_literal());
        assert_eq!(t.render(&plain, || unreachable!()).unwrap(), "你好 100%");
        let hello = t.compile("a#2", "你好，{{ member.name }}！\n").unwrap();
        let out = t
            .render(
                &hello,
                || context! { member => context! { name => "张三" } },
            )
            .unwrap();
        assert_eq!(out, "你好，张三！\n");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let mut t = Templates::new();
        let e = t
            .compile("a#1", "第一行\n{% if x %}\n没有结束")
            .unwrap_err();
        assert!(e.line >= 2, "{e}");
        assert!(e.reason.contains("syntax"), "{e}");
    }

    #[test]
    fn runaway_templates_and_misspelt_variables_fail_cleanly() {
        let mut t = Templates::new();
        let spin = t
            .compile(
                "a#1",
                "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            )
            .unwrap();
        let e = t.render(&spin, || context! {}).unwrap_err();
        assert!(e.reason.contains("fuel"), "{e}");
        let deep = t
            .compile(
                "a#2",
                "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            )
            .unwrap();
        let e = t.render(&deep, || context! {}).unwrap_err();
        assert!(e.reason.contains("recursion"), "{e}");
        let typo = t.compile("a#3", "{{ membr.name }}").unwrap();
        let e = t
            .render(&typo, || context! { member => context! { name => "张三" } })
            .unwrap_err();
        assert!(e.reason.contains("undefined"), "{e}");
        assert!(
            e.reason.contains("`membr.name`"),
            "names what was written: {e}"
        );
    }
}
