//! The `trumpet` binary itself: `keygen`, `check`, `credentials`, and `serve` on the embedded
//! defaults (credentials printed once, graceful stop on SIGTERM).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use trumpet::config::validate_token;
use trumpet::wire::wecom::crypto::EncodingAesKey;

fn trumpet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trumpet"))
}

fn value_after(output: &str, label: &str) -> String {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_owned()))
        .unwrap_or_else(|| panic!("no {label} in {output}"))
}

#[test]
fn keygen_prints_a_valid_pair() {
    let out = trumpet().arg("keygen").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    validate_token(&value_after(&text, "Token")).unwrap();
    EncodingAesKey::parse(&value_after(&text, "EncodingAESKey")).unwrap();
}

/// `trumpet check` run in `dir` on the scripts in `scripts`: its exit code and what it printed
/// on stderr.
fn check_in(dir: &std::path::Path, scripts: &std::path::Path) -> (Option<i32>, String) {
    let out = trumpet()
        .arg("check")
        .current_dir(dir)
        .env("TRUMPET_SCRIPTS__DIR", scripts)
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn check_names_the_bad_key_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[[bots]]\nid = \"x\"\nchannel = \"wecom-robot\"\ntoken = \"abc123\"\nencoding_aes_key = \"short\"\n",
    )
    .unwrap();
    let out = trumpet()
        .arg("--config")
        .arg(&config)
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("bots[0].encoding_aes_key"), "{err}");
    assert!(err.contains("43"), "{err}");
}

#[test]
fn check_reports_a_broken_script_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let scripts = dir.path().join("scripts");
    std::fs::create_dir(&scripts).unwrap();
    std::fs::write(
        scripts.join("messages.toml"),
        "[adoption]\nformat = \"text\"\ncontent = \"hi\"\n[help]\nformat = \"txt\"\ncontent = \"x\"\ntriggers = [\"帮助\"]\n",
    )
    .unwrap();
    let (code, err) = check_in(dir.path(), &scripts);
    assert_eq!(code, Some(2));
    assert!(err.contains("messages.toml:5:"), "{err}");
    assert!(err.contains("txt"), "{err}");

    let good = trumpet()
        .arg("check")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let shown = String::from_utf8(good.stdout).unwrap();
    assert!(shown.contains(" moderation checks, "), "{shown}");

    // A broken moderation rule is reported with its file and line too.
    let copy = dir.path().join("copy");
    crate::helpers::copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scripts/defaults"),
        &copy,
    );
    let moderation = copy.join("moderation.toml");
    let mut text = std::fs::read_to_string(&moderation).unwrap();
    text.push_str("\n[[check]]\nid = \"bad\"\nkind = \"words\"\nmatch = \"regex\"\naction = \"warn\"\nreason = \"x\"\nwords = [\"(\"]\n");
    std::fs::write(&moderation, text).unwrap();
    let (code, err) = check_in(dir.path(), &copy);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("moderation.toml:") && err.contains("regex"),
        "{err}"
    );
}

#[test]
fn check_renders_templates_and_reports_a_misspelt_variable_and_a_command_clash() {
    let dir = tempfile::tempdir().unwrap();
    let scripts = dir.path().join("scripts");
    crate::helpers::copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scripts/defaults"),
        &scripts,
    );
    let check = || check_in(dir.path(), &scripts);
    let keywords = scripts.join("keywords.toml");
    let original = std::fs::read_to_string(&keywords).unwrap();
    // The first rule's reply gets a misspelt variable on its second line.
    let broken = original.replacen(
        "content = \"\"\"\n",
        "content = \"\"\"\n你好\n{{ membr.name }}\n",
        1,
    );
    let line = broken.lines().position(|l| l.contains("membr")).unwrap() + 1;
    std::fs::write(&keywords, broken).unwrap();
    let (code, err) = check();
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("keywords.toml:"), "{err}");
    assert!(err.contains("undefined"), "{err}");
    assert!(err.contains("filing-deadline"), "names the rule: {err}");
    assert!(
        err.contains(&format!("keywords.toml:{line}:")),
        "line {line}: {err}"
    );

    std::fs::write(&keywords, &original).unwrap();
    let commands = scripts.join("commands.toml");
    let text = std::fs::read_to_string(&commands)
        .unwrap()
        .replace("triggers = [\"群规\"]", "triggers = [\"帮助\"]");
    std::fs::write(&commands, text).unwrap();
    let (code, err) = check();
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("commands.toml") && err.contains("帮助"),
        "{err}"
    );
}

/// A running `trumpet serve`, started in `dir` on the embedded defaults (on a free port).
struct Running {
    child: std::process::Child,
    printed: std::thread::JoinHandle<String>,
    drain: std::thread::JoinHandle<usize>,
}

fn start(dir: &std::path::Path) -> Running {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = trumpet()
        .arg("serve")
        .current_dir(dir)
        .env("TRUMPET_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let printed = std::thread::spawn(move || {
        let mut all = String::new();
        std::io::Read::read_to_string(&mut BufReader::new(stdout), &mut all).unwrap();
        all
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = stderr.lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("serving") {
            break;
        }
        assert!(Instant::now() < deadline, "never started");
    }
    let drain = std::thread::spawn(move || lines.count());
    Running {
        child,
        printed,
        drain,
    }
}

/// Stops gracefully, as systemd does, and returns what the service printed on stdout.
fn stop(mut running: Running) -> String {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(running.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = running.child.wait().unwrap();
    running.drain.join().unwrap();
    assert!(exit.success(), "graceful stop exits 0: {exit:?}");
    running.printed.join().unwrap()
}

fn serve_once(dir: &std::path::Path) -> String {
    stop(start(dir))
}

#[test]
fn a_store_held_by_a_running_service_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path());
    let started = Instant::now();
    let out = trumpet()
        .arg("credentials")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "no hang");
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("in use by another process"), "{err}");
    stop(running);
}

#[test]
fn first_start_prints_generated_credentials_once_and_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let first = serve_once(dir.path());
    let url = value_after(&first, "URL");
    assert!(url.ends_with("/wecom/robot/trumpet"), "{url}");
    let token = value_after(&first, "Token");
    let key = value_after(&first, "EncodingAESKey");
    validate_token(&token).unwrap();
    EncodingAesKey::parse(&key).unwrap();
    assert!(
        dir.path().join("data/trumpet.redb").exists(),
        "store under ./data"
    );

    let second = serve_once(dir.path());
    assert!(
        !second.contains(&token),
        "printed only on first start: {second}"
    );

    let shown = trumpet()
        .arg("credentials")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let shown = String::from_utf8(shown.stdout).unwrap();
    assert_eq!(value_after(&shown, "Token"), token);
    assert_eq!(value_after(&shown, "EncodingAESKey"), key);
}

/// `trumpet simulate --group wrkX --from zhangsan [--mention] TEXT` in `dir`: whether it
/// succeeded, and what it printed.
fn simulate(dir: &std::path::Path, mention: bool, text: &str) -> (bool, String) {
    let mut args = vec!["simulate", "--group", "wrkX", "--from", "zhangsan"];
    if mention {
        args.push("--mention");
    }
    args.push(text);
    let out = trumpet().args(args).current_dir(dir).output().unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap())
}

#[test]
fn simulate_shows_the_rule_and_the_reply_without_touching_anything() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = simulate(dir.path(), true, "@会计小喇叭 ＣＰＡ报名");
    assert!(ok);
    assert!(text.contains("keyword rule \"cpa-exam\""), "{text}");
    assert!(text.contains("@zhangsan"), "{text}");
    assert!(text.contains("注册会计师"), "{text}");
    assert!(!dir.path().join("data").exists(), "no store is created");

    // A group the store does not know is simulated on the group robot, which hears only
    // @-mentions.
    let (_, text) = simulate(dir.path(), false, "随便聊聊");
    assert!(
        text.contains("the group robot hears only messages that @-mention it"),
        "{text}"
    );
    let (_, text) = simulate(dir.path(), true, "@会计小喇叭 随便聊聊");
    assert!(text.contains("moderation clean"), "{text}");
    assert!(
        !text.contains("StartCooldown"),
        "readable, not Debug: {text}"
    );

    let (_, text) = simulate(dir.path(), true, "@会计小喇叭 加 V❤信 领资料：kj12345");
    // Each cue with its weight, then the learned layer's part.
    let finding = text
        .lines()
        .find(|l| l.starts_with("finding ad-intent (intent): intent "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        finding.contains("≥ 4: 拉人私加(+4): 加微信; 广告句式(+4): 加微信领; learned(+")
            && finding.ends_with(" → warn"),
        "{text}"
    );
    assert!(text.contains("moderation warn (warning 1/3)"), "{text}");
    // What the service would do, from the same engine path: the warning to the member, and —
    // the robot deleting nothing — the admins told so.
    assert!(text.contains("(moderation_warning)"), "{text}");
    assert!(text.contains("机器人无法撤回这条消息"), "{text}");
    assert!(text.contains("the bot does not answer it"), "{text}");
}

/// Issue 27 §12: a scripts directory the operator chose that does not exist is an error for
/// `check` and `serve` alike — not a silent start on the built-in rules. Only the default
/// `bot-scripts` may be missing.
#[test]
fn a_chosen_scripts_dir_that_does_not_exist_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (command, code) in [("check", 2), ("serve", 1)] {
        let out = trumpet()
            .arg(command)
            .current_dir(dir.path())
            .env("TRUMPET_SCRIPTS__DIR", "my-scripts")
            .env("TRUMPET_STORAGE__PATH", dir.path().join("s.redb"))
            .env("TRUMPET_SERVER__LISTEN", "127.0.0.1:0")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{command}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains("scripts.dir my-scripts does not exist"),
            "{command}: {err}"
        );
    }
    // The default may be missing: the built-in copy is used.
    let out = trumpet()
        .arg("check")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("built-in copy"), "{stdout}");
}

/// Issue 27 §13: `trumpet credentials` run where there is no store says so and creates none.
#[test]
fn credentials_in_the_wrong_directory_create_no_store() {
    let dir = tempfile::tempdir().unwrap();
    let out = trumpet()
        .arg("credentials")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("no store at"), "{err}");
    assert!(
        !dir.path().join("data").exists(),
        "a store was created: {:?}",
        std::fs::read_dir(dir.path()).unwrap().collect::<Vec<_>>()
    );
}

/// Issue 27 §13: a first start that cannot listen (its port taken) prints no credentials — the
/// URL it would print is wrong — and the next good start prints them, once.
#[test]
fn credentials_are_shown_once_the_service_listens() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let failed = trumpet()
        .arg("serve")
        .current_dir(dir.path())
        .env("TRUMPET_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert!(!failed.status.success());
    let printed = String::from_utf8(failed.stdout).unwrap();
    assert!(!printed.contains("Token"), "{printed}");
    let err = String::from_utf8(failed.stderr).unwrap();
    assert!(err.contains("cannot listen"), "{err}");
    drop(taken);

    let first = serve_once(dir.path());
    let token = value_after(&first, "Token");
    validate_token(&token).unwrap();
    let again = serve_once(dir.path());
    assert!(!again.contains(&token), "shown once: {again}");
}

/// `trumpet init` writes the shipped bot-scripts where the service reads them (`scripts.dir`,
/// `bot-scripts` by default), and running it again keeps the operator's edits.
#[test]
fn init_writes_the_defaults_once_and_keeps_the_operators_edits() {
    let dir = tempfile::tempdir().unwrap();
    let out = trumpet()
        .arg("init")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("11 written, 0 kept"), "{text}");
    let scripts = dir.path().join("bot-scripts");
    let keywords = scripts.join("keywords.toml");
    let edited = std::fs::read_to_string(&keywords)
        .unwrap()
        .replace("发票", "开票");
    std::fs::write(&keywords, &edited).unwrap();

    let out = trumpet()
        .arg("init")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("0 written, 11 kept"), "{text}");
    assert_eq!(std::fs::read_to_string(&keywords).unwrap(), edited);
    // The service reads them from there: `check` says so.
    let out = trumpet()
        .arg("check")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("bot-scripts: ok"), "{text}");
    assert!(!text.contains("built-in"), "{text}");
    // A directory that cannot be written is a clear error.
    let out = trumpet()
        .args(["init", "/proc/trumpet-cannot-write-here"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("cannot write bot-scripts")
    );
}

/// A reader that goes away (`trumpet simulate … | head -1`) ends the output quietly: exit 0,
/// no panic.
#[test]
fn simulate_survives_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = trumpet()
        .args([
            "simulate",
            "--group",
            "g",
            "--from",
            "u",
            "--mention",
            "@会计小喇叭 帮助",
        ])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}

/// Issue 27 §12 through `trumpet check`: what would silently misbehave is refused before the
/// service starts, naming the file (or key) and what is wrong — an unknown outbox purpose, a URL
/// where a domain is wanted, a mistyped check kind, a cron that never fires, a number out of a
/// cron field's range, quiet hours over every slot of a job.
#[test]
fn check_refuses_settings_that_would_silently_misbehave() {
    let defaults = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scripts/defaults");
    let check = |file: &str, edit: &dyn Fn(String) -> String, config: &str| {
        let dir = tempfile::tempdir().unwrap();
        let scripts = dir.path().join("scripts");
        crate::helpers::copy_dir(&defaults, &scripts);
        let path = scripts.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, edit(text)).unwrap();
        std::fs::write(dir.path().join("trumpet.toml"), config).unwrap();
        check_in(dir.path(), &scripts)
    };
    let unchanged = |text: String| text;
    let (code, err) = check(
        "messages.toml",
        &unchanged,
        "[outbox.expire_after_minutes]\nwelcom = 5\n",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("outbox.expire_after_minutes.welcom"), "{err}");
    // §7: a log filter that names no level and no target of the service would silence it.
    let (code, err) = check("messages.toml", &unchanged, "[log]\nlevel = \"verbose\"\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("log.level") && err.contains("verbose"),
        "{err}"
    );
    assert_eq!(check("messages.toml", &unchanged, "").0, Some(0));
    for (file, from, to, expected) in [
        (
            "moderation.toml",
            "allow = [\n",
            "allow = [\n  \"https://etax.chinatax.gov.cn/web\",\n",
            "write the host alone",
        ),
        (
            "moderation.toml",
            "kind = \"words\"",
            "kind = \"word\"",
            "kind \"word\" must be",
        ),
        (
            "schedules.toml",
            "cron = \"30 7 * * *\"",
            "cron = \"30 7 30 2 *\"",
            "never fires",
        ),
        (
            "schedules.toml",
            "cron = \"30 7 * * *\"",
            "cron = \"30 25 * * *\"",
            "the hour field is 25",
        ),
        (
            "schedules.toml",
            "cron = \"30 7 * * *\"",
            "cron = \"30 23 * * *\"",
            "would never send",
        ),
    ] {
        let edit = |text: String| {
            assert!(text.contains(from), "{file} has no {from:?}");
            text.replacen(from, to, 1)
        };
        let (code, err) = check(file, &edit, "");
        assert_eq!(code, Some(2), "{to}: {err}");
        assert!(err.contains(file) && err.contains(expected), "{to}: {err}");
    }
}

/// `trumpet operator …` in `dir` with `stdin` as its input: exit code, stdout, stderr.
fn operator(dir: &std::path::Path, args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    use std::io::Write;
    let mut child = trumpet()
        .arg("operator")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Issue 18: operator accounts from the command line — the password from stdin, hashed
/// (argon2id) in the store, never printed; refusals exit 2 with the reason; the last admin
/// stays; while the service runs the command says so instead of waiting or failing obscurely.
#[test]
fn operator_accounts_are_managed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (code, _, err) = operator(dir, &["list"], "");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no store at"), "{err}");
    assert!(!dir.join("data").exists(), "listing created a store");

    let (code, out, err) = operator(dir, &["add", "boss", "--role", "admin"], "a long secret\n");
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("operator boss added (admin)"), "{out}");
    let (code, _, err) = operator(
        dir,
        &["add", "boss", "--role", "viewer"],
        "another secret\n",
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("exists already"), "{err}");
    let (code, _, err) = operator(dir, &["add", "li", "--role", "viewer"], "short\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("too short"), "{err}");
    let (code, _, err) = operator(dir, &["add", "li", "--role", "boss"], "a long secret\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("not a role"), "{err}");
    let (code, _, err) = operator(
        dir,
        &["add", "li wang", "--role", "viewer"],
        "a long secret\n",
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("not allowed"), "{err}");
    assert_eq!(
        operator(dir, &["add", "li", "--role", "viewer"], "viewer secret\r\n").0,
        Some(0)
    );

    let (code, out, _) = operator(dir, &["list"], "");
    assert_eq!(code, Some(0));
    assert!(out.contains("boss") && out.contains("admin"), "{out}");
    assert!(out.contains("li") && out.contains("viewer"), "{out}");
    assert!(!out.contains("secret") && !out.contains("argon2"), "{out}");

    assert_eq!(
        operator(dir, &["reset-password", "boss"], "a new long secret\n").0,
        Some(0)
    );
    let (code, _, err) = operator(dir, &["reset-password", "nobody"], "a new long secret\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("no operator"), "{err}");
    let (code, _, err) = operator(dir, &["remove", "boss"], "");
    assert_eq!(code, Some(2));
    assert!(err.contains("last admin"), "{err}");
    assert_eq!(operator(dir, &["remove", "li"], "").0, Some(0));

    // The store holds the hash, not the password.
    let store = std::fs::read(dir.join("data/trumpet.redb")).unwrap();
    let text = String::from_utf8_lossy(&store);
    assert!(text.contains("$argon2id$"), "no argon2id hash stored");
    assert!(
        !text.contains("a new long secret"),
        "the password is in the store"
    );

    // Each change is in the audit trail, by the command line, never with a password.
    let store = trumpet::store::Store::open(&dir.join("data/trumpet.redb")).unwrap();
    let audit = store
        .audit_log(&trumpet::store::AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "operator remove li",
            "operator reset-password boss",
            "operator add li (viewer)",
            "operator add boss (admin)"
        ]
    );
    assert!(audit.iter().all(|e| e.actor == "cli"));
    drop(store);

    let running = start(dir);
    let (code, _, err) = operator(dir, &["list"], "");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("the service is running"), "{err}");
    stop(running);
}

/// `trumpet moderation-eval FILE`: the shipped moderation measured on an operator's labelled
/// file — the figures, the misses and the false positives with what fired; a bad line is named.
#[test]
fn moderation_eval_measures_a_labelled_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("labelled.tsv");
    std::fs::write(
        &file,
        "spam\t加我微信领取免费会计资料\nspam\t今晚八点直播间见\nham\t请问个税汇算几号截止？\n",
    )
    .unwrap();
    let out = trumpet()
        .current_dir(dir.path())
        .args(["moderation-eval", "labelled.tsv", "--show", "5"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("spam          2  caught     1  recall     50.0 %"),
        "{text}"
    );
    assert!(text.contains("ordinary      1  acted on   0"), "{text}");
    assert!(text.contains("  今晚八点直播间见"), "{text}");

    std::fs::write(&file, "spam\tx\nperhaps\ty\n").unwrap();
    let out = trumpet()
        .current_dir(dir.path())
        .args(["moderation-eval", "labelled.tsv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("line 2"), "{err}");
}
