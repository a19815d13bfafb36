use super::*;

#[test]
fn shipped_scripts_load() {
    let s = Scripts::parse(EMBEDDED_MESSAGES, Path::new("messages.toml")).unwrap();
    assert!(s.is_help("帮助"));
    assert!(s.is_help(" HELP "));
    assert!(!s.is_help("帮助我"));
    assert!(s.fallback.is_some());
}

#[test]
fn init_writes_the_defaults_and_never_overwrites_the_operators_files() {
    let dir = tempfile::tempdir().unwrap();
    let scripts = dir.path().join("bot-scripts");
    assert!(!holds_scripts(&scripts));
    assert!(
        Scripts::load(&scripts).unwrap().source.is_none(),
        "built-in copy"
    );
    let first = write_defaults(&scripts).unwrap();
    assert_eq!(first.written.len(), DEFAULT_FILES.len());
    assert!(first.kept.is_empty());
    let loaded = Scripts::load(&scripts).unwrap();
    assert_eq!(loaded.source.as_deref(), Some(scripts.as_path()));
    let embedded = Scripts::embedded().unwrap();
    assert_eq!(loaded.adoption, embedded.adoption);
    assert_eq!(loaded.keywords.rules(), embedded.keywords.rules());
    // A folder with script files but no messages.toml is refused, not quietly replaced by
    // the built-in copy.
    let messages = scripts.join(MESSAGES_FILE);
    let kept = std::fs::read_to_string(&messages).unwrap();
    std::fs::remove_file(&messages).unwrap();
    let err = Scripts::load(&scripts).unwrap_err();
    assert!(err.to_string().contains("messages.toml"), "{err}");
    assert!(err.to_string().contains("keywords.toml is there"), "{err}");
    std::fs::write(&messages, kept).unwrap();
    // The operator edits one file and removes another; init again keeps the edit and
    // writes back only what is missing.
    let edited = std::fs::read_to_string(&messages).unwrap() + "\n# 我们自己的版本\n";
    std::fs::write(&messages, &edited).unwrap();
    std::fs::remove_file(scripts.join("content/queue.toml")).unwrap();
    let again = write_defaults(&scripts).unwrap();
    assert_eq!(again.written, [scripts.join("content/queue.toml")]);
    assert_eq!(again.kept.len(), DEFAULT_FILES.len() - 1);
    assert_eq!(std::fs::read_to_string(&messages).unwrap(), edited);
}

#[test]
fn line_index_agrees_with_counting() {
    let text = "a\n\nbc\n发票\n";
    let src = Source::new(text, Path::new("x"));
    for offset in 0..=text.len() {
        if text.is_char_boundary(offset) {
            assert_eq!(src.line_of(offset), line_col(text, offset).0, "{offset}");
        }
    }
}

#[test]
fn errors_name_file_line_and_column() {
    let text = "[adoption]\nformat = \"text\"\ncontent = \"hi\"\n\n[help]\nformat = \"txt\"\ncontent = \"x\"\ntriggers = [\"帮助\"]\n";
    let err = Scripts::parse(text, Path::new("bot-scripts/messages.toml")).unwrap_err();
    assert_eq!(err.line, 6, "{err}");
    assert!(
        err.to_string().starts_with("bot-scripts/messages.toml:6:"),
        "{err}"
    );
    assert!(err.reason.contains("txt"), "{err}");
}

#[test]
fn empty_content_and_missing_triggers_are_refused() {
    let text = "[adoption]\nformat = \"text\"\ncontent = \"  \"\n[help]\nformat = \"text\"\ncontent = \"x\"\ntriggers = [\"a\"]\n";
    let err = Scripts::parse(text, Path::new("m.toml")).unwrap_err();
    assert_eq!(
        (err.line, err.reason.contains("adoption")),
        (3, true),
        "{err}"
    );
    let text = "[adoption]\nformat = \"text\"\ncontent = \"x\"\n[help]\nformat = \"text\"\ncontent = \"x\"\ntriggers = [\" \"]\n";
    let err = Scripts::parse(text, Path::new("m.toml")).unwrap_err();
    assert_eq!(err.line, 4, "{err}");
}

#[test]
fn customer_group_welcome_templates_are_checked() {
    let parse = |text: &str| {
        let mut templates = crate::engine::template::Templates::default();
        welcome::parse(
            &Source::new(text, Path::new("welcome.toml")),
            &mut templates,
        )
    };
    let shipped = parse(EMBEDDED_WELCOME).unwrap();
    assert_eq!(shipped.wecom_templates.len(), 1);
    assert!(shipped.wecom_templates[0].text.contains("%NICKNAME%"));
    let ok =
        parse("[[wecom_template]]\nname = \"a\"\ncontent = \"  欢迎 %NICKNAME%  \"\n").unwrap();
    assert_eq!(ok.wecom_templates[0].text, "欢迎 %NICKNAME%", "trimmed");
    for (bad, why) in [
        (
            "[[wecom_template]]\nname = \"a\"\ncontent = \"欢迎 {{ mentions }}\"\n",
            "as written",
        ),
        (
            "[[wecom_template]]\nname = \"a\"\ncontent = \" \"\n",
            "empty",
        ),
        (
            "[[wecom_template]]\nname = \"\"\ncontent = \"x\"\n",
            "1 to 64",
        ),
        (
            "[[wecom_template]]\nname = \"a\"\ncontent = \"x\"\n[[wecom_template]]\nname = \"a\"\ncontent = \"y\"\n",
            "twice",
        ),
    ] {
        let err = parse(bad).unwrap_err();
        assert!(err.reason.contains(why), "{bad}: {err}");
    }
    let long = format!(
        "[[wecom_template]]\nname = \"a\"\ncontent = \"{}\"\n",
        "欢".repeat(1001)
    );
    assert!(parse(&long).unwrap_err().reason.contains("3000"));
}
